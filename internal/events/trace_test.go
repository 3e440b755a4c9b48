package events

import (
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestNewsCarriesTraceContext: a publish under a span carries its context
// in the headers, and a WatchNews watcher gets it with the data; without a
// span the message has no headers and the watcher no context. Watch and
// WatchNews watchers of one key both get the message, and a closed hub
// closes WatchNews channels too.
func TestNewsCarriesTraceContext(t *testing.T) {
	b := startEmbedded(t)
	hub, err := NewHub(b.Conn(), RequestPrefix, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	news, cancel := hub.WatchNews("r1")
	defer cancel()
	plain, cancelPlain := hub.Watch("r1")
	defer cancelPlain()
	next := func() News {
		t.Helper()
		select {
		case n := <-news:
			if p := <-plain; string(p) != string(n.Data) {
				t.Fatalf("Watch got %q, WatchNews %q", p, n.Data)
			}
			return n
		case <-time.After(time.Minute):
			t.Fatal("no news")
		}
		return News{}
	}

	if err := b.Publish(testCtx(t), "pushauth.request.r1", []byte("bare")); err != nil {
		t.Fatal(err)
	}
	if n := next(); string(n.Data) != "bare" || n.Trace.IsValid() {
		t.Fatalf("bare news %+v", n)
	}

	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	ctx, span := tp.Tracer("t").Start(testCtx(t), "decide")
	defer span.End()
	if err := b.Publish(ctx, "pushauth.request.r1", []byte("traced")); err != nil {
		t.Fatal(err)
	}
	n := next()
	if string(n.Data) != "traced" || n.Trace.SpanID() != span.SpanContext().SpanID() || n.Trace.TraceID() != span.SpanContext().TraceID() {
		t.Fatalf("traced news %+v, want span %v", n, span.SpanContext())
	}

	hub.Close()
	if _, ok := <-news; ok {
		t.Fatal("WatchNews channel not closed by Hub.Close")
	}
}
