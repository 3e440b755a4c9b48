package sms

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pushauth/pushauth/internal/tracing"
)

// Traced wraps s so that every send is a client span under the caller's
// (e.g. StartPhoneVerification's) naming the provider. The span never
// holds the number or the body, which has the code: only the provider and,
// on failure, the provider's error code. A nil tp returns s itself. The
// provider's HTTP request gets no traceparent: the trace stops at pushauth.
func Traced(s Sender, tp trace.TracerProvider) Sender {
	if tp == nil || s == nil {
		return s
	}
	return tracedSender{Sender: s, tracer: tracing.Tracer(tp)}
}

type tracedSender struct {
	Sender
	tracer trace.Tracer
}

// Send implements Sender.
func (t tracedSender) Send(ctx context.Context, m Message) (string, error) {
	ctx, span := t.tracer.Start(ctx, "sms.send "+t.Name(), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("pushauth.sms.provider", t.Name())))
	defer span.End()
	id, err := t.Sender.Send(ctx, m)
	if err != nil {
		code := "error"
		var e *Error
		if errors.As(err, &e) && e.Code != "" {
			code = e.Code
		}
		span.SetStatus(codes.Error, code)
		span.SetAttributes(attribute.Bool("pushauth.sms.temporary", IsTemporary(err)))
	}
	return id, err
}
