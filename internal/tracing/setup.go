package tracing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Provider is the tracing set up from the environment. Its TracerProvider
// is nil when tracing is off; Shutdown is then a no-op.
type Provider struct {
	// TracerProvider goes into server.Options.TracerProvider.
	TracerProvider *sdktrace.TracerProvider
	// Exporter names the exporter in use ("none", "otlp" or "console").
	Exporter string
	// Protocol is the OTLP protocol ("grpc" or "http/protobuf"); empty
	// unless Exporter is "otlp".
	Protocol string
}

// Traces is the provider for server.Options.TracerProvider: nil (not a
// typed nil) when tracing is off.
func (p *Provider) Traces() trace.TracerProvider {
	if p == nil || p.TracerProvider == nil {
		return nil
	}
	return p.TracerProvider
}

// Shutdown flushes the spans not yet exported and stops the exporter,
// giving up when ctx ends. Call it last on the way out, within the
// shutdown timeout.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil || p.TracerProvider == nil {
		return nil
	}
	return p.TracerProvider.Shutdown(ctx)
}

// FromEnv sets tracing up from the standard OpenTelemetry variables:
//
//   - OTEL_SDK_DISABLED=true: off, whatever else is set.
//   - OTEL_TRACES_EXPORTER: "none" (the default: off), "otlp" or "console"
//     (spans as JSON lines on console, for trying it out).
//   - OTEL_EXPORTER_OTLP_PROTOCOL (or OTEL_EXPORTER_OTLP_TRACES_PROTOCOL):
//     "http/protobuf" (default) or "grpc".
//   - OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
//     _HEADERS, _TIMEOUT, _INSECURE, _CERTIFICATE, _COMPRESSION: read by
//     the OTLP exporter itself.
//   - OTEL_SERVICE_NAME (default "pushauthd"), OTEL_RESOURCE_ATTRIBUTES.
//   - OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG (default parentbased_always_on)
//     and OTEL_BSP_*: read by the SDK.
//
// Off, nothing is created and nothing dialed. On, the exporter connects
// lazily, at the first export. version is the service.version.
func FromEnv(ctx context.Context, version string, console io.Writer) (*Provider, error) {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return &Provider{Exporter: "none"}, nil
	}
	name := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")))
	var exp sdktrace.SpanExporter
	p := &Provider{Exporter: name}
	switch name {
	case "", "none":
		p.Exporter = "none"
		return p, nil
	case "otlp":
		p.Protocol = strings.ToLower(strings.TrimSpace(firstEnv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")))
		var err error
		switch p.Protocol {
		case "", "http/protobuf":
			p.Protocol = "http/protobuf"
			exp, err = otlptracehttp.New(ctx)
		case "grpc":
			exp, err = otlptracegrpc.New(ctx)
		default:
			return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", p.Protocol)
		}
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
	case "console":
		if console == nil {
			console = os.Stdout
		}
		var err error
		if exp, err = stdouttrace.New(stdouttrace.WithWriter(console)); err != nil {
			return nil, fmt.Errorf("console trace exporter: %w", err)
		}
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER %q: want none, otlp or console", name)
	}
	// Later options win: the environment overrides the defaults.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("pushauthd"), semconv.ServiceVersion(version)),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("trace resource (OTEL_RESOURCE_ATTRIBUTES?): %w", err)
	}
	// The sampler comes from OTEL_TRACES_SAMPLER, read by the SDK.
	p.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return p, nil
}

func firstEnv(keys ...string) string {
	for _, k := range keys {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ""
}

// noopMeters keeps the contrib instrumentations off the global meter
// provider: pushauth's metrics are Prometheus ones.
func noopMeters() metric.MeterProvider { return metricnoop.NewMeterProvider() }
