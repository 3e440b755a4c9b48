package requestid

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Key is the log attribute of the RPC's request id. It names nothing else:
// a login or pairing request is logged as approval_id.
const Key = "request_id"

// Handler wraps h so that every record logged with a context of an RPC
// carries that RPC's id as request_id: the lines a call causes deep in the
// domain code can be found by the id the client got back.
func Handler(h slog.Handler) slog.Handler {
	if _, ok := h.(handler); ok {
		return h
	}
	return handler{h}
}

type handler struct{ slog.Handler }

// Handle adds request_id and, when the context holds a traced span (only
// while tracing is on), trace_id and span_id: from a log line to its trace.
func (h handler) Handle(ctx context.Context, r slog.Record) error {
	id := From(ctx)
	sc := trace.SpanContextFromContext(ctx)
	if id != "" || sc.IsValid() {
		r = r.Clone()
		if id != "" {
			r.AddAttrs(slog.String(Key, id))
		}
		if sc.IsValid() {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler { return handler{h.Handler.WithAttrs(as)} }
func (h handler) WithGroup(name string) slog.Handler    { return handler{h.Handler.WithGroup(name)} }
