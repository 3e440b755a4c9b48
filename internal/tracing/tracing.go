// Package tracing holds pushauth's OpenTelemetry plumbing: the one
// propagation format (W3C trace context), carriers for the hops that are
// not gRPC (NATS headers, the push outbox's stored job, outgoing HTTP), and
// the exporter set up from the standard OTEL_* environment variables.
//
// Tracing is off unless OTEL_TRACES_EXPORTER names an exporter. Off, the
// server is given a nil trace.TracerProvider and every hook here does
// nothing: no span is made, no header written, nothing dialed. No global
// provider or propagator is installed or read: the provider is passed in
// (server.Options.TracerProvider), so tests and embedders decide.
package tracing

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Name names pushauth's tracer (the instrumentation scope).
const Name = "github.com/pushauth/pushauth"

// Propagator is the format trace context travels in on every hop: W3C
// traceparent and tracestate. It is stateless; pushauth never reads the
// global one, so an embedding program's choice cannot change the wire.
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// Tracer is pushauth's tracer from tp; a nil tp gives a no-op tracer.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return noop.NewTracerProvider().Tracer(Name)
	}
	return tp.Tracer(Name)
}

// On reports whether ctx carries a span context worth passing on. With
// tracing off it never does, so callers skip all carrier work.
func On(ctx context.Context) bool { return trace.SpanContextFromContext(ctx).IsValid() }

// natsCarrier adapts nats.Header (a map of canonical-cased keys to values)
// to the propagator; W3C keys are lower case, so Get and Set go through the
// Header methods, which canonicalise.
type natsCarrier nats.Header

func (c natsCarrier) Get(key string) string { return nats.Header(c).Get(key) }
func (c natsCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }
func (c natsCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// InjectNATS adds ctx's trace context to h (allocating h if needed) and
// returns it; with no span in ctx it returns h unchanged, so a message
// without tracing carries no headers at all.
func InjectNATS(ctx context.Context, h nats.Header) nats.Header {
	if !On(ctx) {
		return h
	}
	if h == nil {
		h = nats.Header{}
	}
	Propagator().Inject(ctx, natsCarrier(h))
	return h
}

// ExtractNATS returns ctx with the remote span context of a message's
// headers, if they carry one.
func ExtractNATS(ctx context.Context, h nats.Header) context.Context {
	if len(h) == 0 {
		return ctx
	}
	return Propagator().Extract(ctx, natsCarrier(h))
}

// SpanContextOf returns the span context in a message's headers (invalid
// when there is none).
func SpanContextOf(h nats.Header) trace.SpanContext {
	if len(h) == 0 {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(ExtractNATS(context.Background(), h))
}

// Stored is a trace context as W3C writes it, for carriers that are
// stored or serialised, such as a push job in the outbox. It is comparable;
// the zero value means none.
type Stored struct {
	Traceparent string `json:"traceparent,omitempty"`
	Tracestate  string `json:"tracestate,omitempty"`
}

// Store returns ctx's trace context; zero when ctx has none.
func Store(ctx context.Context) Stored {
	if !On(ctx) {
		return Stored{}
	}
	m := propagation.MapCarrier{}
	Propagator().Inject(ctx, m)
	return Stored{Traceparent: m["traceparent"], Tracestate: m["tracestate"]}
}

// Context returns ctx with s as its remote span context; ctx itself when s
// is zero or does not parse.
func (s Stored) Context(ctx context.Context) context.Context {
	if s.Traceparent == "" {
		return ctx
	}
	m := propagation.MapCarrier{"traceparent": s.Traceparent}
	if s.Tracestate != "" {
		m["tracestate"] = s.Tracestate
	}
	return Propagator().Extract(ctx, m)
}

// InjectHTTP writes ctx's trace context into the headers of an outgoing
// HTTP request (traceparent, tracestate), so the receiver can join the
// trace. Call it on requests pushauth makes to parties it trusts with the
// trace id, e.g. webhook deliveries:
//
//	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
//	tracing.InjectHTTP(ctx, req.Header)
//
// It does nothing when ctx has no span. For a client span around each
// request as well, wrap the client's transport with Transport.
func InjectHTTP(ctx context.Context, h http.Header) {
	if On(ctx) {
		Propagator().Inject(ctx, propagation.HeaderCarrier(h))
	}
}

// Transport wraps base (nil: http.DefaultTransport) so that every request
// gets a client span under the caller's context and carries traceparent.
// With a nil tp it returns base unchanged: no wrapper, no cost.
func Transport(tp trace.TracerProvider, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if tp == nil {
		return base
	}
	return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(Propagator()),
		otelhttp.WithMeterProvider(noopMeters()))
}
