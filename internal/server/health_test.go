package server

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestHealthTransitions(t *testing.T) {
	var log bytes.Buffer
	dbUp, natsUp := false, false
	natsCalls := 0
	h := newHealth([]Check{
		{Name: "database", Check: func(context.Context) error {
			if !dbUp {
				return errors.New("db down")
			}
			return nil
		}},
		{Name: "nats", Check: func(context.Context) error {
			natsCalls++
			if !natsUp {
				return errors.New("nats down")
			}
			return nil
		}},
	}, []string{"svc.A"}, slog.New(slog.NewTextHandler(&log, nil)))

	status := func(svc string) healthpb.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := h.srv.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("Check(%q): %v", svc, err)
		}
		return resp.GetStatus()
	}
	if h.Ready() || status("") != healthpb.HealthCheckResponse_NOT_SERVING || status("svc.A") != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatal("a new Health must not be serving")
	}

	ctx := context.Background()
	h.CheckNow(ctx)
	h.CheckNow(ctx)
	if natsCalls != 0 {
		t.Errorf("nats checked %d times while the database was down; checks stop at the first failure", natsCalls)
	}
	if n := strings.Count(log.String(), "dependency not ready"); n != 1 {
		t.Errorf("logged %d times for one unchanged failure, want 1:\n%s", n, log.String())
	}

	dbUp = true
	h.CheckNow(ctx)
	if !strings.Contains(log.String(), "dependency=nats") {
		t.Errorf("a different failing dependency is not logged:\n%s", log.String())
	}
	if h.Ready() {
		t.Error("ready while nats is down")
	}

	natsUp = true
	h.CheckNow(ctx)
	h.CheckNow(ctx)
	if !h.Ready() || status("") != healthpb.HealthCheckResponse_SERVING || status("svc.A") != healthpb.HealthCheckResponse_SERVING {
		t.Error("not serving with every check passing")
	}
	if n := strings.Count(log.String(), "dependencies ready; serving"); n != 1 {
		t.Errorf("logged becoming ready %d times, want 1", n)
	}

	dbUp = false
	h.CheckNow(ctx)
	if h.Ready() || status("svc.A") != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Error("still serving after a check failed")
	}
	if n := strings.Count(log.String(), "dependency=database"); n != 2 {
		t.Errorf("database failure after recovery logged %d times in all, want 2", n)
	}

	dbUp = true
	h.Shutdown()
	h.CheckNow(ctx)
	if h.Ready() || status("") != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Error("a check after Shutdown made the server ready again")
	}
}
