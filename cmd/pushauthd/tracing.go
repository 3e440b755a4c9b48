package main

import (
	"context"
	"fmt"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/pushauth/pushauth/internal/tracing"
)

// startTracing sets tracing up from the standard OTEL_* variables; off
// without them, when nothing is created or dialed. It returns the provider
// for server.Options (nil when off) and flush, which exports the spans not
// yet sent within shutdown_timeout: defer it before anything that makes
// spans, so it runs after they have stopped.
func startTracing(ctx context.Context, cfg Config, log *slog.Logger) (tp trace.TracerProvider, flush func(), err error) {
	traces, err := tracing.FromEnv(ctx, version, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	if traces.Exporter != "none" {
		log.Info("tracing", "exporter", traces.Exporter, "protocol", traces.Protocol)
	}
	return traces.Traces(), func() {
		fctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := traces.Shutdown(fctx); err != nil {
			log.Warn("flush traces", "err", err)
		}
	}, nil
}
