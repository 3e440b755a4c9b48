package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pushauth/pushauth/client"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// A login page's second step, after the password: ask the user's phone,
// show the number, follow the progress and let the user in only on a
// verified approval. (It needs a running server; TestLoginWithNumberMatching
// runs the same against one.)
func Example() {
	ctx := context.Background()
	c, err := client.Dial(client.Config{Addrs: []string{"127.0.0.1:8470"}, APIKey: "pak_…"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	p, err := c.CreateApproval(ctx, "jan", &pushauthv1.RequestContext{AppName: "Mijn Portal", IpAddress: "192.0.2.7"})
	switch client.Code(err) {
	case codes.OK:
	case codes.FailedPrecondition:
		fmt.Println("no phone linked: show the page that links the app")
		return
	case codes.ResourceExhausted:
		wait, _ := client.RetryAfter(err)
		fmt.Printf("backed off: try again in %s, or use a code from an authenticator app\n", wait)
		return
	default:
		log.Fatal(err)
	}
	if p.ShowNumber() {
		fmt.Println("Type this number in the app:", p.Number)
	}
	out, err := c.Wait(ctx, p, client.OnProgress(func(pr *pushauthv1.Progress) {
		fmt.Println("progress:", pr.GetKind())
	}))
	if err != nil {
		log.Fatal(err) // client.ErrUntrusted: refuse the login, alert someone
	}
	if out.Approved() {
		fmt.Println("signed in; device", out.Signed.DeviceID, "signed", out.Signed.Decision)
	}
}

// Linking the app: the user types the two words the app shows.
func ExampleClient_ClaimPairingPhrase() {
	ctx := context.Background()
	c, err := client.Dial(client.Config{Addrs: []string{"127.0.0.1:8470"}, APIKey: "pak_…"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p, err := c.ClaimPairingPhrase(ctx, "mango tulip", "jan", "jan@example.nl", nil)
	if client.Code(err) == codes.NotFound {
		fmt.Println("unknown or expired words: check them in the app")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	progress := make(chan *pushauthv1.Progress, 8)
	go func() {
		for pr := range progress {
			fmt.Println("progress:", pr.GetKind())
		}
	}()
	out, err := c.Wait(ctx, p, client.ProgressTo(progress))
	close(progress)
	if err == nil && out.Approved() {
		fmt.Println("linked")
	}
}

func ExampleRetryAfter() {
	st, _ := status.New(codes.ResourceExhausted, "too many denied or unanswered requests for this user; try again in 20s").
		WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(20 * time.Second)})
	wait, ok := client.RetryAfter(st.Err())
	fmt.Println(wait, ok)
	// Output: 20s true
}
