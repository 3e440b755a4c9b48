package server_test

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// recvUntilErr reads a stream until it ends and returns its error.
func recvUntilErr[T any](s grpc.ServerStreamingClient[T]) error {
	for {
		if _, err := s.Recv(); err != nil {
			return err
		}
	}
}

// When shutdown begins, open WatchRequests, WaitRequest and AwaitRequest
// calls end at once with Unavailable (the client re-attaches elsewhere) and
// new ones are refused the same way; GracefulStop then returns without
// waiting for them. Nothing here waits on a clock: a missing drain would
// hang the test at the receives.
func TestDrainEndsWaitingCalls(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		key, phone := paired(t, ts)
		ctx := servertest.Context(t)
		rctx, dctx := ts.WithToken(ctx, key), ts.WithToken(ctx, phone.Credential)
		c, err := ts.RP.CreateApproval(rctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatal(err)
		}

		watch, err := ts.Device.WatchRequests(dctx, &pushauthv1.WatchRequestsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := watch.Recv(); err != nil { // the pending request: the handler runs
			t.Fatal(err)
		}
		wait, err := ts.RP.WaitRequest(rctx, &pushauthv1.WaitRequestRequest{RequestId: c.GetRequestId()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wait.Recv(); err != nil { // the current state
			t.Fatal(err)
		}
		await := make(chan error, 1)
		go func() {
			_, err := ts.RP.AwaitRequest(rctx, &pushauthv1.AwaitRequestRequest{RequestId: c.GetRequestId()})
			await <- err
		}()

		ts.Server.Drain()
		for name, err := range map[string]error{
			"WatchRequests": recvUntilErr(watch),
			"WaitRequest":   recvUntilErr(wait),
			"AwaitRequest":  <-await,
		} {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("%s after Drain: %v, want Unavailable", name, err)
			}
		}
		// New waits are refused; other calls still work.
		again, err := ts.Device.WatchRequests(dctx, &pushauthv1.WatchRequestsRequest{})
		if err == nil {
			err = recvUntilErr(again)
		}
		if status.Code(err) != codes.Unavailable {
			t.Errorf("WatchRequests after Drain: %v, want Unavailable", err)
		}
		if _, err := ts.RP.GetRequest(rctx, &pushauthv1.GetRequestRequest{RequestId: c.GetRequestId()}); err != nil {
			t.Errorf("a unary call after Drain: %v", err)
		}
		ts.Server.GRPC.GracefulStop()
	})
}
