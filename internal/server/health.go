package server

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Check is one dependency the server cannot serve without.
type Check struct {
	Name  string
	Check func(context.Context) error
}

// Health keeps grpc.health.v1 and /readyz in step with the dependencies: it
// says NOT_SERVING until every check has passed, and again whenever one fails.
type Health struct {
	srv      *health.Server
	checks   []Check
	services []string
	log      *slog.Logger
	ready    atomic.Bool
	failing  atomic.Pointer[string]
	// mu orders status changes after the checks with Shutdown, which is
	// final: a check finishing after it must not report ready again.
	mu       sync.Mutex
	shutdown bool
}

func newHealth(checks []Check, services []string, log *slog.Logger) *Health {
	h := &Health{srv: health.NewServer(), checks: checks, services: services, log: log}
	h.set(healthpb.HealthCheckResponse_NOT_SERVING)
	return h
}

func (h *Health) set(st healthpb.HealthCheckResponse_ServingStatus) {
	h.srv.SetServingStatus("", st)
	for _, s := range h.services {
		h.srv.SetServingStatus(s, st)
	}
}

// CheckNow runs every check once and updates the status.
func (h *Health) CheckNow(ctx context.Context) {
	for _, c := range h.checks {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.Check(cctx)
		cancel()
		if err != nil {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.shutdown {
				return
			}
			name := c.Name
			if h.ready.Swap(false) || h.failing.Load() == nil || *h.failing.Load() != name {
				h.log.WarnContext(ctx, "dependency not ready", "dependency", name, "err", err)
			}
			h.failing.Store(&name)
			h.set(healthpb.HealthCheckResponse_NOT_SERVING)
			return
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shutdown {
		return
	}
	if !h.ready.Swap(true) {
		h.log.InfoContext(ctx, "dependencies ready; serving")
	}
	h.failing.Store(nil)
	h.set(healthpb.HealthCheckResponse_SERVING)
}

// Ready reports whether the last checks all passed.
func (h *Health) Ready() bool { return h.ready.Load() }

// Run checks every interval until ctx ends.
func (h *Health) Run(ctx context.Context, interval time.Duration) {
	h.CheckNow(ctx)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.CheckNow(ctx)
		}
	}
}

// Shutdown makes every service report NOT_SERVING so balancers drain first.
// It is final: checks that finish later change nothing.
func (h *Health) Shutdown() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.shutdown = true
	h.ready.Store(false)
	h.srv.Shutdown()
}
