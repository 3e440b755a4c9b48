package sms

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

type failingSender struct{ err error }

func (f failingSender) Send(context.Context, Message) (string, error) { return "", f.err }
func (failingSender) Name() string                                    { return "fake" }

// TestTraced: a client span naming the provider and, on failure, the
// provider's error code; never the number or the body.
func TestTraced(t *testing.T) {
	inner := failingSender{err: &Error{Provider: "fake", Code: "invalid_recipient", Message: "no such number"}}
	if Traced(inner, nil) != Sender(inner) {
		t.Fatal("Traced wraps with a nil provider")
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	if _, err := Traced(inner, tp).Send(context.Background(), Message{To: "+31612345678", Body: "code 123456"}); err == nil {
		t.Fatal("error lost")
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Name != "sms.send fake" || spans[0].Status.Code != codes.Error || spans[0].Status.Description != "invalid_recipient" {
		t.Fatalf("spans %+v", spans)
	}
	for _, a := range spans[0].Attributes {
		if v := a.Value.Emit(); strings.Contains(v, "612345678") || strings.Contains(v, "123456") {
			t.Errorf("attribute %s = %q", a.Key, v)
		}
	}
}
