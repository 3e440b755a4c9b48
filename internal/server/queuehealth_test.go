package server_test

import (
	"context"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pushauth/pushauth/internal/natstest"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
)

// waitStatus reads a health Watch stream until it reports want.
func waitStatus(t *testing.T, w healthpb.Health_WatchClient, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	for {
		resp, err := w.Recv()
		if err != nil {
			t.Fatalf("health watch waiting for %v: %v", want, err)
		}
		if resp.GetStatus() == want {
			return
		}
	}
}

// Readiness covers the push queue: when its 3-replica stream loses quorum
// (two of three NATS nodes stop) the server turns NOT_SERVING and logs why,
// although its own NATS connection still works; with the nodes back it
// turns SERVING again.
func TestHealthCoversPushQueue(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		cl := natstest.NewCluster(t, 3)
		// The server talks to node 0 only, which stays up.
		ts := servertest.NewOnNATS(t, url, cl.NodeURL(0), func(o *server.Options) { o.PushQueue.Replicas = 3 })
		ctx, cancel := context.WithTimeout(servertest.Context(t), 2*time.Minute)
		ran := make(chan struct{})
		go func() { defer close(ran); ts.Server.Health.Run(ctx, 200*time.Millisecond) }()
		defer func() { cancel(); <-ran }()
		w, err := ts.Health.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, w, healthpb.HealthCheckResponse_SERVING)

		cl.Stop(1)
		cl.Stop(2)
		waitStatus(t, w, healthpb.HealthCheckResponse_NOT_SERVING)
		if !ts.Logs.Wait(ctx, "dependency=push_queue") {
			t.Fatal("the failing push queue was not logged")
		}
		cl.Start(1)
		cl.Start(2)
		waitStatus(t, w, healthpb.HealthCheckResponse_SERVING)
	})
}
