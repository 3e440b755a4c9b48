package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pushauth/pushauth/client"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// world is a relying party with a client, and a registered phone.
type world struct {
	ts  *servertest.TestServer
	c   *client.Client
	key string
	app *phone.Device
}

func newWorld(t *testing.T, url string, policy *pushauthv1.RelyingPartyPolicy, opts ...grpc.DialOption) *world {
	t.Helper()
	ts := servertest.New(t, url)
	rp := ts.CreateRelyingParty(t, "portal", policy)
	_, key := ts.CreateAPIKey(t, rp.GetId())
	c, err := client.Dial(client.Config{Addrs: []string{ts.Addr}, APIKey: key, DialOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	p := servertest.NewPhone(t, false)
	ts.Register(t, p, "+31612345678")
	return &world{ts: ts, c: c, key: key, app: p.App(ts)}
}

// pair connects the phone to user through the client and the phone package.
func (w *world) pair(t *testing.T, user string) {
	t.Helper()
	ctx := servertest.Context(t)
	words, _, err := w.app.PairingPhrase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := w.c.ClaimPairingPhrase(ctx, strings.ToUpper(words), user, user+"@example.nl", nil)
	if err != nil {
		t.Fatal(err)
	}
	dr, err := w.app.Next(ctx, pushauthv1.RequestKind_REQUEST_KIND_PAIRING)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.app.Approve(ctx, dr, ""); err != nil {
		t.Fatal(err)
	}
	out, err := w.c.Wait(ctx, p)
	if err != nil || !out.Approved() || out.Signed.Kind != "PAIRING" {
		t.Fatalf("pairing: %+v %v", out, err)
	}
}

type result struct {
	out *client.Outcome
	err error
}

// waitFor starts Wait for p; progress arrives on the returned channel.
func (w *world) waitFor(t *testing.T, p *client.Pending) (<-chan *pushauthv1.Progress, <-chan result) {
	t.Helper()
	progress, done := make(chan *pushauthv1.Progress, 16), make(chan result, 1)
	go func() {
		out, err := w.c.Wait(servertest.Context(t), p, client.ProgressTo(progress))
		done <- result{out, err}
	}()
	return progress, done
}

// seen reads progress until the phone has seen the request.
func seen(t *testing.T, progress <-chan *pushauthv1.Progress) {
	t.Helper()
	for pr := range progress {
		if pr.GetKind() == pushauthv1.Progress_KIND_SEEN {
			return
		}
	}
}

func TestLoginWithNumberMatching(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		var keyCalls int
		count := grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if strings.HasSuffix(method, "/GetDeviceKey") {
				keyCalls++
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		})
		w := newWorld(t, url, &pushauthv1.RelyingPartyPolicy{NumberMatching: pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER}, count)
		w.pair(t, "jan")
		ctx := servertest.Context(t)

		p, err := w.c.CreateApproval(ctx, "jan", &pushauthv1.RequestContext{AppName: "Mijn Portal", IpAddress: "192.0.2.7"})
		if err != nil {
			t.Fatal(err)
		}
		if !p.ShowNumber() || len(p.Number) != 2 {
			t.Fatalf("pending %+v: want a 2-digit number to show", p)
		}
		progress, done := w.waitFor(t, p)
		dr, err := w.app.Next(ctx, pushauthv1.RequestKind_REQUEST_KIND_LOGIN)
		if err != nil {
			t.Fatal(err)
		}
		seen(t, progress)
		if _, err := w.app.Approve(ctx, dr, p.Number); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || !r.out.Approved() || r.out.Signed.NumberAnswer != p.Number || r.out.Signed.UserRef != "jan" {
			t.Fatalf("login: %+v %v", r.out, r.err)
		}
		if keyCalls != 1 {
			t.Fatalf("GetDeviceKey called %d times for one device, want 1 (cached)", keyCalls)
		}

		// A wrong number: the phone approved, the request is denied, the
		// signature still verifies and says APPROVE.
		w.ts.Clock.Advance(time.Minute)
		p, err = w.c.CreateApproval(ctx, "jan", nil)
		if err != nil {
			t.Fatal(err)
		}
		dr, err = w.app.Next(ctx, pushauthv1.RequestKind_REQUEST_KIND_LOGIN)
		if err != nil {
			t.Fatal(err)
		}
		wrong := "00"
		if p.Number == wrong {
			wrong = "11"
		}
		if _, err := w.app.Approve(ctx, dr, wrong); err != nil {
			t.Fatal(err)
		}
		out, err := w.c.Wait(ctx, p)
		if err != nil || out.Approved() || out.Reason() != pushauthv1.DecisionReason_DECISION_REASON_NUMBER_MISMATCH || out.Signed.Decision != "APPROVE" {
			t.Fatalf("wrong number: %+v %v", out, err)
		}
	})
}

func TestDenyExpireAndBackoff(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, &pushauthv1.RelyingPartyPolicy{ApprovalTtl: durationpb.New(30 * time.Second)})
		w.pair(t, "jan")
		ctx := servertest.Context(t)

		p, err := w.c.CreateApproval(ctx, "jan", nil)
		if err != nil {
			t.Fatal(err)
		}
		dr, err := w.app.Next(ctx, pushauthv1.RequestKind_REQUEST_KIND_LOGIN)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.app.Deny(ctx, dr); err != nil {
			t.Fatal(err)
		}
		out, err := w.c.Wait(ctx, p)
		if err != nil || out.Approved() || out.Status() != pushauthv1.RequestStatus_REQUEST_STATUS_DENIED || out.Signed.Decision != "DENY" {
			t.Fatalf("deny: %+v %v", out, err)
		}

		// Right after a denial the user is backed off, with the wait.
		_, err = w.c.CreateApproval(ctx, "jan", nil)
		if wait, ok := client.RetryAfter(err); client.Code(err) != codes.ResourceExhausted || !ok || wait != 10*time.Second {
			t.Fatalf("CreateApproval after a denial: %v (retry after %v, %v)", err, wait, ok)
		}
		f, err := w.c.Factors(ctx, "jan")
		if err != nil || f.GetState().GetPushBackoffUntil() == nil || len(f.GetPushDevices()) != 1 {
			t.Fatalf("factors: %v %v", f, err)
		}

		// Expiry: nobody answers; the outcome has no signed decision.
		w.ts.Clock.Advance(10 * time.Second)
		p, err = w.c.CreateApproval(ctx, "jan", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, done := w.waitFor(t, p)
		if _, err := w.app.Next(ctx, pushauthv1.RequestKind_REQUEST_KIND_LOGIN); err != nil {
			t.Fatal(err)
		}
		w.ts.Clock.Advance(31 * time.Second)
		if _, err := w.ts.Server.Engine.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || r.out.Approved() || r.out.Status() != pushauthv1.RequestStatus_REQUEST_STATUS_EXPIRED || r.out.Signed != nil {
			t.Fatalf("expiry: %+v %v", r.out, r.err)
		}
	})
}

// Check refuses what a login server must not believe.
func TestCheckRefusesForgeries(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, nil)
		w.pair(t, "jan")
		ctx := servertest.Context(t)
		p, err := w.c.CreateApproval(ctx, "jan", nil)
		if err != nil {
			t.Fatal(err)
		}
		dr, err := w.app.Next(ctx, pushauthv1.RequestKind_REQUEST_KIND_LOGIN)
		if err != nil {
			t.Fatal(err)
		}
		r, err := w.app.Approve(ctx, dr, "")
		if err != nil {
			t.Fatal(err)
		}
		final, err := w.c.Get(ctx, r.GetId())
		if err != nil {
			t.Fatal(err)
		}
		if out, err := w.c.Check(ctx, p, final); err != nil || !out.Approved() {
			t.Fatalf("Check of the real request: %+v %v", out, err)
		}
		for name, change := range map[string]func(r *pushauthv1.Request, p *client.Pending){
			"no signature": func(r *pushauthv1.Request, _ *client.Pending) { r.SignedDecision = nil },
			"changed payload": func(r *pushauthv1.Request, _ *client.Pending) {
				r.SignedDecision.Payload[len(r.SignedDecision.Payload)-1] ^= 1
			},
			"denial as approve": func(r *pushauthv1.Request, _ *client.Pending) {
				r.Status = pushauthv1.RequestStatus_REQUEST_STATUS_DENIED
			},
			"other user":   func(r *pushauthv1.Request, p *client.Pending) { r.UserRef, p.UserRef = "piet", "piet" },
			"other device": func(r *pushauthv1.Request, _ *client.Pending) { r.DecidingDeviceId = "dev_other" },
			"number not shown": func(_ *pushauthv1.Request, p *client.Pending) {
				p.NumberMatching, p.Number = pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER, "42"
			},
		} {
			r, pp := proto.Clone(final).(*pushauthv1.Request), *p
			r.Status = pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED
			change(r, &pp)
			if r.GetStatus() == pushauthv1.RequestStatus_REQUEST_STATUS_DENIED {
				r.Reason = pushauthv1.DecisionReason_DECISION_REASON_USER
			}
			if out, err := w.c.Check(ctx, &pp, r); !errors.Is(err, client.ErrUntrusted) {
				t.Errorf("%s: Check = %+v, %v; want ErrUntrusted", name, out, err)
			}
		}
	})
}

// A Wait whose replica stops goes on at another replica.
func TestWaitReattachesToAnotherReplica(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		reps := servertest.NewCluster(t, url, 2)
		a := reps[0]
		rp := a.CreateRelyingParty(t, "portal", nil)
		_, key := a.CreateAPIKey(t, rp.GetId())
		streams := make(chan string, 8)
		onPeer := grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			s, err := streamer(ctx, desc, cc, method, opts...)
			if err == nil && strings.HasSuffix(method, "/WaitRequest") {
				if pr, ok := peer.FromContext(s.Context()); ok {
					streams <- pr.Addr.String()
				}
			}
			return s, err
		})
		c, err := client.Dial(client.Config{Addrs: []string{reps[0].Addr, reps[1].Addr}, APIKey: key, DialOptions: []grpc.DialOption{onPeer}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p := servertest.NewPhone(t, false)
		a.Register(t, p, "+31612345678")
		w := &world{ts: a, c: c, key: key, app: p.App(a)}
		w.pair(t, "jan")
		for len(streams) > 0 {
			<-streams
		}

		ctx := servertest.Context(t)
		pending, err := c.CreateApproval(ctx, "jan", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, done := w.waitFor(t, pending)
		first := <-streams
		var stopped, other *servertest.TestServer
		for i, r := range reps {
			if r.Addr == first {
				stopped, other = r, reps[1-i]
			}
		}
		if stopped == nil {
			t.Fatalf("the wait went to %s, not a replica", first)
		}
		stopped.Server.GRPC.Stop()
		select {
		case second := <-streams:
			if second != other.Addr {
				t.Fatalf("the wait re-attached to %s, want %s", second, other.Addr)
			}
		case r := <-done:
			t.Fatalf("the wait ended when its replica stopped: %+v %v", r.out, r.err)
		}
		app := p.App(other)
		dr, err := app.Next(ctx, pushauthv1.RequestKind_REQUEST_KIND_LOGIN)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := app.Approve(ctx, dr, ""); err != nil {
			t.Fatal(err)
		}
		if r := <-done; r.err != nil || !r.out.Approved() {
			t.Fatalf("after re-attach: %+v %v", r.out, r.err)
		}
	})
}

func TestDialRefusesPlaintextToRemote(t *testing.T) {
	for _, addrs := range [][]string{{"pushauth.example.com:8470"}, {"127.0.0.1:8470", "10.0.0.2:8470"}} {
		if _, err := client.Dial(client.Config{Addrs: addrs, APIKey: "pak_x"}); err == nil || !strings.Contains(err.Error(), "unencrypted") {
			t.Errorf("Dial(%v) = %v", addrs, err)
		}
	}
	for _, addrs := range [][]string{{"127.0.0.1:8470"}, {"localhost:8470", "[::1]:8470"}, {"unix:/run/pushauth.sock"}} {
		c, err := client.Dial(client.Config{Addrs: addrs, APIKey: "pak_x"})
		if err != nil {
			t.Errorf("Dial(%v) = %v", addrs, err)
			continue
		}
		_ = c.Close()
	}
	if _, err := client.Dial(client.Config{Addrs: []string{"127.0.0.1:8470"}}); err == nil {
		t.Error("Dial without an API key")
	}
}
