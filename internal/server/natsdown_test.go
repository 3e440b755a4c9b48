package server_test

import (
	"context"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pushauth/pushauth/internal/server"

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

// A scan whose publish the queue refused (NATS down) gives its jobs back:
// once NATS is back, the next scan publishes them, without waiting out the
// hold it put on them (30 s, on a clock that here does not move).
func TestRelayRetriesAsSoonAsNATSIsBack(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		cl := natstest.NewCluster(t, 1)
		fcm := servertest.NewFakeFCM(t)
		ts := servertest.NewOnNATS(t, url, cl.URL(), servertest.WithPushSender(fcm.Sender(t)),
			func(o *server.Options) {
				o.Relay.ScanEvery = time.Hour // scans only when called
				// No hand-over: only the scans publish, as after a
				// replica died with the job in its outbox.
				o.Relay.Fault = func(stage string) bool { return stage == "handoff" }
			})
		key, _ := paired(t, ts)

		cl.Stop(0)
		ctx := ts.WithToken(servertest.Context(t), key)
		c, err := ts.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		ts.Clock.Advance(6 * time.Second) // past the grace: the scan takes it
		pctx, cancel := context.WithTimeout(servertest.Context(t), 2*time.Second)
		n, err := ts.Server.Engine.RelayOutbox(pctx)
		cancel()
		if err != nil || n != 0 {
			t.Fatalf("RelayOutbox with NATS down = %d, %v; want 0, nil", n, err)
		}

		cl.Start(0)
		hctx, hcancel := context.WithTimeout(servertest.Context(t), time.Minute)
		defer hcancel()
		ran := make(chan struct{})
		go func() { defer close(ran); ts.Server.Health.Run(hctx, 100*time.Millisecond) }()
		defer func() { hcancel(); <-ran }()
		w, err := ts.Health.Watch(hctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, w, healthpb.HealthCheckResponse_SERVING)
		// The login's job and the pairing's (never handed over either).
		if n, err := ts.Server.Engine.RelayOutbox(servertest.Context(t)); err != nil || n != 2 {
			t.Fatalf("RelayOutbox once NATS is back, at the same time = %d, %v; want 2 (the failed scan must give its jobs back)", n, err)
		}
		if got := nextPush(t, fcm)["request_id"]; got != c.GetRequestId() {
			t.Fatalf("push for %q, want %q", got, c.GetRequestId())
		}
	})
}
