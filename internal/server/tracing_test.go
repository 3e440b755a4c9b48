package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// spanLog is an in-memory exporter that says when spans arrive, so a test
// waits for a span instead of sleeping.
type spanLog struct {
	*tracetest.InMemoryExporter
	arrived chan struct{}
}

func newSpanLog() *spanLog {
	return &spanLog{InMemoryExporter: tracetest.NewInMemoryExporter(), arrived: make(chan struct{}, 1)}
}

func (l *spanLog) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := l.InMemoryExporter.ExportSpans(ctx, spans)
	select {
	case l.arrived <- struct{}{}:
	default:
	}
	return err
}

// await returns the first ended span named name (a prefix when it ends in
// "*") for which ok holds, waiting for it to end.
func (l *spanLog) await(t *testing.T, name string, ok func(tracetest.SpanStub) bool) tracetest.SpanStub {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		for _, s := range l.GetSpans() {
			match := s.Name == name
			if p, wild := strings.CutSuffix(name, "*"); wild {
				match = strings.HasPrefix(s.Name, p)
			}
			if match && (ok == nil || ok(s)) {
				return s
			}
		}
		select {
		case <-l.arrived:
		case <-timeout:
			var names []string
			for _, s := range l.GetSpans() {
				names = append(names, s.Name)
			}
			t.Fatalf("no span %q ended; spans: %v", name, names)
		}
	}
}

func childOf(p tracetest.SpanStub) func(tracetest.SpanStub) bool {
	return func(s tracetest.SpanStub) bool { return s.Parent.SpanID() == p.SpanContext.SpanID() }
}

// withTrace sends ctx's span as W3C traceparent metadata, as an
// instrumented gRPC client would.
func withTrace(ctx, spanCtx context.Context) context.Context {
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(spanCtx, c)
	return metadata.AppendToOutgoingContext(ctx, "traceparent", c["traceparent"])
}

// TestTraceFromCreateToDecision follows one login through every hop as one
// trace: the login server's span → CreateApproval → the push outbox relay
// (the job's stored trace context crosses the commit; "scan" is a relay
// that finds the row later, as after a replica died) → the JetStream push
// queue (headers) → the FCM send → the push's traceparent → the phone's
// RespondToRequest → the decided news (NATS headers) → the login server's
// WaitRequest. Each span's parent is the hop before it.
func TestTraceFromCreateToDecision(t *testing.T) {
	for _, path := range []string{"handoff", "scan"} {
		t.Run(path, func(t *testing.T) {
			servertest.ForEachBackend(t, func(t *testing.T, url string) {
				spans := newSpanLog()
				tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
				t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				fcm := servertest.NewFakeFCM(t)
				var dropHandoff bool
				ts := servertest.New(t, url, servertest.WithPushSender(fcm.Sender(t)), func(o *server.Options) {
					o.TracerProvider = tp
					o.Relay.ScanEvery = time.Hour // scans only when the test asks
					o.Relay.Fault = func(stage string) bool { return stage == "handoff" && dropHandoff }
				})
				rp := ts.CreateRelyingParty(t, "portal", nil)
				_, key := ts.CreateAPIKey(t, rp.GetId())
				ph := servertest.NewPhone(t, false)
				ts.Register(t, ph, "+31612345678")
				// The pairing's push goes out before the phone answers: once
				// the pairing is decided, its push would be skipped.
				ts.PairWith(t, ph, key, "jan", "jan", func(string) { anyPush(t, fcm) })

				// SMS: a client span under the call that sent it.
				verify := spans.await(t, "pushauth.v1.DeviceService/StartPhoneVerification", nil)
				spans.await(t, "sms.send outbox", childOf(verify))

				dropHandoff = path == "scan"
				login, root := tp.Tracer("login-server").Start(servertest.Context(t), "login")
				ctx := withTrace(ts.WithToken(servertest.Context(t), key), login)
				c, err := ts.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
				if err != nil {
					t.Fatal(err)
				}
				stream, err := ts.RP.WaitRequest(ctx, &pushauthv1.WaitRequestRequest{RequestId: c.GetRequestId()})
				if err != nil {
					t.Fatal(err)
				}
				if path == "scan" {
					// The handoff was lost: a scan past the grace period
					// relays the row with the trace context stored in it.
					ts.Clock.Advance(6 * time.Second)
					if n, err := ts.Server.Engine.RelayOutbox(servertest.Context(t)); err != nil || n != 1 {
						t.Fatalf("RelayOutbox: %d, %v", n, err)
					}
				}
				var data map[string]string
				select {
				case data = <-fcm.Pushes:
				case <-time.After(time.Minute):
					t.Fatal("no push reached FCM")
				}
				if data["request_id"] != c.GetRequestId() || data["traceparent"] == "" {
					t.Fatalf("push data %v: want the request id and a traceparent", data)
				}

				// The waiter is subscribed once it has told of the send.
				for sent := false; !sent; {
					ev, err := stream.Recv()
					if err != nil {
						t.Fatalf("WaitRequest: %v", err)
					}
					sent = ev.GetProgress().GetKind() == pushauthv1.Progress_KIND_SENT
				}

				// The phone answers with the push's traceparent.
				dctx := metadata.AppendToOutgoingContext(ts.WithToken(servertest.Context(t), ph.Credential), "traceparent", data["traceparent"])
				req := ph.SignedResponse(t, ts.Pending(t, ph), pushauthv1.Decision_DECISION_APPROVE, "", ts.Clock.Now())
				if _, err := ts.Device.RespondToRequest(dctx, req); err != nil {
					t.Fatal(err)
				}
				for {
					ev, err := stream.Recv()
					if err != nil {
						t.Fatalf("WaitRequest: %v", err)
					}
					if r := ev.GetResult(); r != nil {
						if r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
							t.Fatalf("final %v", r)
						}
						break
					}
				}
				root.End()

				tid := root.SpanContext().TraceID()
				rootStub := spans.await(t, "login", nil)
				create := spans.await(t, "pushauth.v1.RelyingPartyService/CreateApproval", childOf(rootStub))
				relay := spans.await(t, "push_outbox relay", childOf(create))
				process := spans.await(t, "pushauth.push.jobs process", childOf(relay))
				send := spans.await(t, "push.send fcm", childOf(process))
				respond := spans.await(t, "pushauth.v1.DeviceService/RespondToRequest", childOf(send))
				wait := spans.await(t, "pushauth.v1.RelyingPartyService/WaitRequest", childOf(rootStub))
				recv := spans.await(t, "pushauth.request.* receive", childOf(wait))
				for _, s := range []tracetest.SpanStub{create, relay, process, send, respond, wait, recv} {
					if s.SpanContext.TraceID() != tid {
						t.Errorf("span %q is in trace %s, want %s", s.Name, s.SpanContext.TraceID(), tid)
					}
				}
				if len(recv.Links) != 1 || recv.Links[0].SpanContext.SpanID() != respond.SpanContext.SpanID() {
					t.Errorf("receive span links %v: want the RespondToRequest span %s", recv.Links, respond.SpanContext.SpanID())
				}
				if send.SpanKind != trace.SpanKindClient || process.SpanKind != trace.SpanKindConsumer || relay.SpanKind != trace.SpanKindProducer {
					t.Errorf("kinds: send %v, process %v, relay %v", send.SpanKind, process.SpanKind, relay.SpanKind)
				}
				for _, s := range spans.GetSpans() {
					for _, a := range s.Attributes {
						if v := a.Value.Emit(); strings.Contains(v, ph.PushToken) || strings.Contains(v, "612345678") {
							t.Errorf("span %q attribute %s holds a push token or phone number", s.Name, a.Key)
						}
					}
				}

				// Log lines of a traced call name its trace.
				named := false
				for _, line := range strings.Split(ts.Logs.String(), "\n") {
					named = named || strings.Contains(line, "method=/pushauth.v1.RelyingPartyService/CreateApproval code=OK") &&
						strings.Contains(line, "trace_id="+tid.String())
				}
				if !named {
					t.Errorf("CreateApproval's log line does not name trace %s", tid)
				}

				// The HTTP gateway continues an incoming traceparent.
				hreq, _ := http.NewRequestWithContext(servertest.Context(t), http.MethodGet, ts.HTTPURL+"/v1/requests/"+c.GetRequestId(), nil)
				hreq.Header.Set("Authorization", "Bearer "+key)
				propagation.TraceContext{}.Inject(login, propagation.HeaderCarrier(hreq.Header))
				resp, err := http.DefaultClient.Do(hreq)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("HTTP GetRequest: %s", resp.Status)
				}
				spans.await(t, "pushauth.v1.RelyingPartyService/GetRequest", childOf(rootStub))
			})
		})
	}
}

// TestTracingOff runs a login with no TracerProvider while a global one
// records (pushauth must not use it): nothing is recorded, no NATS message
// carries a traceparent, and the push has none.
func TestTracingOff(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		spans := newSpanLog()
		global := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
		prev := otel.GetTracerProvider()
		otel.SetTracerProvider(global)
		t.Cleanup(func() { otel.SetTracerProvider(prev); _ = global.Shutdown(context.Background()) })

		fcm := servertest.NewFakeFCM(t)
		ts := servertest.New(t, url, servertest.WithPushSender(fcm.Sender(t)))
		var mu sync.Mutex
		var headed []string
		sub, err := ts.Bus.Conn().Subscribe("pushauth.>", func(m *nats.Msg) {
			if m.Header.Get("traceparent") != "" {
				mu.Lock()
				headed = append(headed, m.Subject)
				mu.Unlock()
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Unsubscribe() })
		if err := ts.Bus.Conn().Flush(); err != nil {
			t.Fatal(err)
		}

		rp := ts.CreateRelyingParty(t, "portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		ph := servertest.NewPhone(t, false)
		ts.Register(t, ph, "+31612345678")
		ts.PairWith(t, ph, key, "jan", "jan", func(string) { anyPush(t, fcm) })
		// A caller's traceparent is ignored too.
		login, root := global.Tracer("login-server").Start(servertest.Context(t), "login")
		ctx := withTrace(ts.WithToken(servertest.Context(t), key), login)
		c, err := ts.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		stream, err := ts.RP.WaitRequest(ctx, &pushauthv1.WaitRequestRequest{RequestId: c.GetRequestId()})
		if err != nil {
			t.Fatal(err)
		}
		data := anyPush(t, fcm)
		if _, ok := data["traceparent"]; ok || data["request_id"] != c.GetRequestId() {
			t.Fatalf("push data %v", data)
		}
		if _, err := ts.Decide(t, ph, ts.Pending(t, ph), pushauthv1.Decision_DECISION_APPROVE, ""); err != nil {
			t.Fatal(err)
		}
		for {
			ev, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if ev.GetResult() != nil {
				break
			}
		}
		root.End()
		// The flush round trip puts every message published so far
		// through the subscription.
		if err := ts.Bus.Conn().Flush(); err != nil {
			t.Fatal(err)
		}
		spans.await(t, "login", nil)
		if got := spans.GetSpans(); len(got) != 1 {
			var names []string
			for _, s := range got {
				names = append(names, s.Name)
			}
			t.Errorf("spans recorded with tracing off: %v", names)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(headed) > 0 {
			t.Errorf("NATS messages with a traceparent with tracing off: %v", headed)
		}
	})
}
