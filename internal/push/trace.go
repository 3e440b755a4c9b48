package push

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pushauth/pushauth/internal/tracing"
)

// Tracing of the push path. A job's trace context crosses the queue in the
// message headers: Enqueue writes the job's own (Job.Trace, as the outbox
// relay hands it over) or else the caller's; a worker continues it in a
// consumer span around the delivery, and Traced puts a client span around
// the provider call. With tracing off none of this makes a span or a
// header.

// traceHeader is the header of j's queue message: its trace context, or
// ctx's; nil when neither has one.
func traceHeader(ctx context.Context, j Job) nats.Header {
	if j.Trace != (tracing.Stored{}) {
		ctx = j.Trace.Context(context.Background())
	}
	return tracing.InjectNATS(ctx, nil)
}

// startProcess starts the consumer span of one delivery of j, a child of
// the trace context in the message's headers. Without a tracer it returns
// ctx and a span that records nothing.
func (q *Queue) startProcess(ctx context.Context, h nats.Header, j Job, attempt int) (context.Context, trace.Span) {
	if q.tracer == nil {
		return ctx, trace.SpanFromContext(ctx) // the worker's context has none: a no-op span
	}
	ctx = tracing.ExtractNATS(ctx, h)
	return q.tracer.Start(ctx, q.cfg.Subject+" process", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", q.cfg.Subject),
			attribute.String("messaging.message.id", j.ID()),
			attribute.String("pushauth.approval_id", j.RequestID),
			attribute.String("pushauth.device_id", j.DeviceID),
			attribute.Int("pushauth.push.attempt", attempt),
		))
}

// Traced wraps s so that every send is a client span (under the worker's
// consumer span) naming the provider, and the job carries the span's trace
// context to the provider's payload (DataTraceparent). The push token, the
// provider's error text and the alert are never recorded: the span's status
// says the failure's Reason. A nil tp returns s itself.
func Traced(s Sender, tp trace.TracerProvider) Sender {
	if tp == nil || isNil(s) {
		return s
	}
	return tracedSender{Sender: s, tracer: tracing.Tracer(tp)}
}

type tracedSender struct {
	Sender
	tracer trace.Tracer
}

// Send implements Sender.
func (t tracedSender) Send(ctx context.Context, j Job) error {
	name := t.Sender.Name()
	if r, ok := t.Sender.(*Router); ok {
		if rs, err := r.Route(j); err == nil {
			name = rs.Name()
		}
	}
	ctx, span := t.tracer.Start(ctx, "push.send "+name, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("pushauth.push.provider", name),
			attribute.String("pushauth.push.platform", j.Platform),
			attribute.String("pushauth.approval_id", j.RequestID),
			attribute.String("pushauth.device_id", j.DeviceID),
		))
	defer span.End()
	j.Trace = tracing.Store(ctx)
	err := t.Sender.Send(ctx, j)
	if err != nil {
		span.SetStatus(codes.Error, string(ReasonOf(err)))
	}
	return err
}
