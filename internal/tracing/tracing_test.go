package tracing

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// otelVars are cleared for every test, so the machine's environment cannot
// switch tracing on.
var otelVars = []string{
	"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG",
}

func cleanEnv(t *testing.T) {
	for _, k := range otelVars {
		t.Setenv(k, "")
	}
}

// collector is a local OTLP/HTTP endpoint that counts connections and
// trace exports.
type collector struct {
	url            string
	conns, exports atomic.Int64
}

func newCollector(t *testing.T) *collector {
	c := &collector{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" {
			c.exports.Add(1)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

// TestOffByDefault: with no OTEL_* variables (or an endpoint but no
// exporter, or the SDK disabled) there is no provider and nothing dials the
// endpoint, even through Shutdown.
func TestOffByDefault(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"nothing set":        {},
		"endpoint only":      {"OTEL_EXPORTER_OTLP_ENDPOINT": ""},
		"exporter none":      {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": ""},
		"sdk disabled":       {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": ""},
		"sampler, no export": {"OTEL_TRACES_SAMPLER": "always_on"},
	} {
		t.Run(name, func(t *testing.T) {
			cleanEnv(t)
			col := newCollector(t)
			for k, v := range env {
				if k == "OTEL_EXPORTER_OTLP_ENDPOINT" {
					v = col.url
				}
				t.Setenv(k, v)
			}
			p, err := FromEnv(context.Background(), "test", nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.Traces() != nil || p.TracerProvider != nil || p.Exporter != "none" {
				t.Fatalf("tracing on: %+v", p)
			}
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := col.conns.Load(); n != 0 {
				t.Fatalf("%d connections to the collector with tracing off", n)
			}
		})
	}
}

// TestOTLPExportsOnShutdown: with OTEL_TRACES_EXPORTER=otlp nothing is
// dialed until spans are exported, and Shutdown flushes them.
func TestOTLPExportsOnShutdown(t *testing.T) {
	cleanEnv(t)
	col := newCollector(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.url)
	t.Setenv("OTEL_SERVICE_NAME", "pushauthd-test")
	p, err := FromEnv(context.Background(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Exporter != "otlp" || p.Protocol != "http/protobuf" || p.Traces() == nil {
		t.Fatalf("provider %+v", p)
	}
	if n := col.conns.Load(); n != 0 {
		t.Fatalf("%d connections before any span", n)
	}
	_, span := Tracer(p.Traces()).Start(context.Background(), "x")
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if col.exports.Load() == 0 {
		t.Fatal("Shutdown exported nothing")
	}
}

func TestConsoleAndBadSettings(t *testing.T) {
	cleanEnv(t)
	t.Setenv("OTEL_TRACES_EXPORTER", "console")
	var out bytes.Buffer
	p, err := FromEnv(context.Background(), "test", &out)
	if err != nil {
		t.Fatal(err)
	}
	_, span := Tracer(p.Traces()).Start(context.Background(), "console-span")
	span.End()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"console-span"`) || !strings.Contains(out.String(), "pushauthd") {
		t.Fatalf("console output %q", out.String())
	}

	for k, v := range map[string]string{"OTEL_TRACES_EXPORTER": "zipkin", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"} {
		cleanEnv(t)
		t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
		t.Setenv(k, v)
		if _, err := FromEnv(context.Background(), "test", nil); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: err %v, want one naming it", k, v, err)
		}
	}
}

// TestCarriers: without a span nothing is written; with one, each carrier
// gives back the same span context.
func TestCarriers(t *testing.T) {
	ctx := context.Background()
	if h := InjectNATS(ctx, nil); h != nil {
		t.Fatalf("headers without a span: %v", h)
	}
	if s := Store(ctx); s != (Stored{}) {
		t.Fatalf("stored without a span: %v", s)
	}
	hh := http.Header{}
	InjectHTTP(ctx, hh)
	if len(hh) != 0 {
		t.Fatalf("HTTP headers without a span: %v", hh)
	}
	if Transport(nil, http.DefaultTransport) != http.DefaultTransport {
		t.Fatal("Transport wraps with a nil provider")
	}

	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	ctx, span := tp.Tracer("t").Start(ctx, "s")
	defer span.End()
	want := span.SpanContext()
	same := func(name string, got trace.SpanContext) {
		t.Helper()
		if got.TraceID() != want.TraceID() || got.SpanID() != want.SpanID() || !got.IsRemote() {
			t.Errorf("%s: got %v, want %v (remote)", name, got, want)
		}
	}
	same("nats", SpanContextOf(InjectNATS(ctx, nil)))
	same("stored", trace.SpanContextFromContext(Store(ctx).Context(context.Background())))
	InjectHTTP(ctx, hh)
	if !strings.Contains(hh.Get("traceparent"), want.TraceID().String()) {
		t.Errorf("HTTP traceparent %q", hh.Get("traceparent"))
	}

	// Transport: a client span under ctx, whose traceparent the server sees.
	var seen atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("traceparent"))
	}))
	defer srv.Close()
	c := &http.Client{Transport: Transport(tp, nil)}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if got, _ := seen.Load().(string); !strings.Contains(got, want.TraceID().String()) || strings.Contains(got, want.SpanID().String()) {
		t.Errorf("traceparent through Transport %q: want the trace, under a client span of its own", got)
	}
}
