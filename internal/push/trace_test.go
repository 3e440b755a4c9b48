package push

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// jobSender records the jobs it is given and fails with err.
type jobSender struct {
	got []Job
	err error
}

func (s *jobSender) Send(_ context.Context, j Job) error { s.got = append(s.got, j); return s.err }
func (*jobSender) Name() string                          { return "fake" }

// TestTraced: a nil provider adds nothing; with one, each send is a client
// span under the caller's, the job carries the span's traceparent to the
// provider, and a failure's status is its reason, not the provider's text
// (which may quote the token).
func TestTraced(t *testing.T) {
	inner := &jobSender{}
	if Traced(inner, nil) != Sender(inner) {
		t.Fatal("Traced wraps with a nil provider")
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx, parent := tp.Tracer("t").Start(context.Background(), "process")
	j := Job{RequestID: "req_1", DeviceID: "dev_1", Platform: PlatformAndroid, PushToken: "tok-secret", Kind: KindLogin, ExpiresAt: time.Now().Add(time.Minute)}
	inner.err = fmt.Errorf("provider says tok-secret is gone: %w", ErrTokenDead)
	if err := Traced(inner, tp).Send(ctx, j); err == nil {
		t.Fatal("error lost")
	}
	parent.End()
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	send := spans[0]
	if send.Name != "push.send fake" || send.SpanKind != trace.SpanKindClient || send.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("send span %s %v parent %v", send.Name, send.SpanKind, send.Parent.SpanID())
	}
	if send.Status.Code != codes.Error || send.Status.Description != string(ReasonTokenInvalid) {
		t.Errorf("status %+v", send.Status)
	}
	for _, a := range send.Attributes {
		if strings.Contains(a.Value.Emit(), "tok-secret") {
			t.Errorf("attribute %s holds the token", a.Key)
		}
	}
	if tp := inner.got[0].Trace.Traceparent; !strings.Contains(tp, send.SpanContext.SpanID().String()) {
		t.Errorf("the provider got traceparent %q, want the send span's", tp)
	}
}
