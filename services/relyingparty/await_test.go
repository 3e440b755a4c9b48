package relyingparty_test

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// AwaitRequest returns the current state when its timeout runs out and the
// final one as soon as there is one, on another replica than the decision.
func TestAwaitRequest(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, nil)
		ctx := w.a.WithToken(servertest.Context(t), w.key)
		c := w.login(t)

		now, err := w.a.RP.AwaitRequest(ctx, &pushauthv1.AwaitRequestRequest{RequestId: c.GetRequestId(), Timeout: durationpb.New(0)})
		if err != nil || now.GetRequest().GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_PENDING {
			t.Fatalf("AwaitRequest(0s) = %v, %v; want PENDING", now, err)
		}

		type result struct {
			r   *pushauthv1.AwaitRequestResponse
			err error
		}
		done := make(chan result, 1)
		go func() {
			r, err := w.a.RP.AwaitRequest(ctx, &pushauthv1.AwaitRequestRequest{RequestId: c.GetRequestId()})
			done <- result{r, err}
		}()
		if _, err := w.b.Decide(t, w.phone, w.b.Pending(t, w.phone), pushauthv1.Decision_DECISION_DENY, ""); err != nil {
			t.Fatal(err)
		}
		got := <-done
		if got.err != nil || got.r.GetRequest().GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_DENIED {
			t.Fatalf("AwaitRequest = %v, %v; want DENIED", got.r, got.err)
		}

		_, err = w.a.RP.AwaitRequest(ctx, &pushauthv1.AwaitRequestRequest{RequestId: c.GetRequestId(), Timeout: durationpb.New(31e9)})
		wantCode(t, err, codes.InvalidArgument, "timeout")
		_, err = w.a.RP.AwaitRequest(ctx, &pushauthv1.AwaitRequestRequest{RequestId: "req_unknown"})
		wantCode(t, err, codes.NotFound, "not found")
	})
}

// An AwaitRequest holds a wait slot like a WaitRequest stream.
func TestAwaitRequestSharesTheWaitCap(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url, func(o *server.Options) { o.Limits.WaitStreamsPerAPIKey = 1 })
		rp := ts.CreateRelyingParty(t, "portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		phone := servertest.NewPhone(t, false)
		ts.Register(t, phone, "+31612345678")
		ts.Pair(t, phone, key, "jan", "jan@example.nl")
		ctx := ts.WithToken(servertest.Context(t), key)
		c, err := ts.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		stream, err := ts.RP.WaitRequest(ctx, &pushauthv1.WaitRequestRequest{RequestId: c.GetRequestId()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil { // the stream holds its slot
			t.Fatal(err)
		}
		_, err = ts.RP.AwaitRequest(ctx, &pushauthv1.AwaitRequestRequest{RequestId: c.GetRequestId(), Timeout: durationpb.New(0)})
		wantCode(t, err, codes.ResourceExhausted, "AwaitRequest")
	})
}
