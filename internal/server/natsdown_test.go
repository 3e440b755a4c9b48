package server_test

import (
	"testing"

	"github.com/pushauth/pushauth/internal/natstest"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// CreateApproval does not wait for NATS: with the NATS server stopped it
// commits the request and answers at once (a hang would end the test at
// its context's deadline); the push, kept in the outbox, goes out when
// NATS is back.
func TestCreateApprovalWithNATSDown(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		cl := natstest.NewCluster(t, 1)
		fcm := servertest.NewFakeFCM(t)
		ts := servertest.NewOnNATS(t, url, cl.URL(), servertest.WithPushSender(fcm.Sender(t)))
		key, _ := paired(t, ts)

		cl.Stop(0)
		ctx := ts.WithToken(servertest.Context(t), key)
		c, err := ts.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatalf("CreateApproval with NATS down: %v", err)
		}
		if _, err := ts.RP.GetRequest(ctx, &pushauthv1.GetRequestRequest{RequestId: c.GetRequestId()}); err != nil {
			t.Fatalf("the request is not there: %v", err)
		}
		cl.Start(0)
		if got := nextPush(t, fcm)["request_id"]; got != c.GetRequestId() {
			t.Fatalf("push for %q after NATS came back, want %q", got, c.GetRequestId())
		}
	})
}
