package server

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/pushauth/pushauth/internal/tracing"
)

// tracingOptions add otelgrpc's stats handler, which makes a server span
// for every call under the caller's traceparent metadata (the HTTP gateway
// forwards the header). Its metrics go nowhere: the Prometheus ones are
// pushauth's. A nil tp adds nothing.
func tracingOptions(tp trace.TracerProvider) []grpc.ServerOption {
	if tp == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithPropagators(tracing.Propagator()),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
	))}
}
