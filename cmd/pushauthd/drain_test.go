package main

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// A replica told to stop ends its open streams with Unavailable at once,
// however long shutdown_timeout is: with an hour here, a stream left open
// would hang the test at Recv.
func TestShutdownEndsStreams(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			r := start(t, "--data-dir", t.TempDir(), "--database-url", b.url(t), "--secret-key", testKey(9), "--shutdown-timeout", "1h")
			conn := dial(t, r.addr)
			waitServing(t, conn)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := watch.Recv(); err != nil {
				t.Fatal(err)
			}
			r.stop()
			for {
				_, err := watch.Recv()
				if err == nil {
					continue // NOT_SERVING comes first
				}
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("stream ended with %v, want Unavailable", err)
				}
				break
			}
			r.shutdown(t)
		})
	}
}
