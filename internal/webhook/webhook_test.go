package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/internal/feed"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/webhook"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// receiver is an httptest webhook receiver that checks every signature
// and counts what it accepted per webhook-id.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	status int // answered to valid deliveries; 0 means 204
	// accepted counts 2xx answers per webhook-id; busy catches two
	// deliveries of one id at once.
	accepted map[string]int
	busy     map[string]bool
	events   map[string]feed.Event
	bad      int
	// traceparents are the traceparent headers of valid deliveries.
	traceparents []string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, accepted: map[string]int{}, busy: map[string]bool{}, events: map[string]feed.Event{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	r.mu.Lock()
	secret, status := r.secret, r.status
	if err != nil || !webhook.Verify(secret, id, sec, body, req.Header.Get("webhook-signature")) {
		r.bad++
		r.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if r.busy[id] {
		r.t.Errorf("webhook %s delivered twice at once", id)
	}
	r.busy[id] = true
	if tp := req.Header.Get("traceparent"); tp != "" {
		r.traceparents = append(r.traceparents, tp)
	}
	r.mu.Unlock()
	defer func() { r.mu.Lock(); r.busy[id] = false; r.mu.Unlock() }()
	if status == 0 {
		status = http.StatusNoContent
	}
	if status < 300 {
		ev, err := feed.Decode(body)
		if err != nil || ev.ID != id {
			r.t.Errorf("body %s: %v", body, err)
		}
		r.mu.Lock()
		r.accepted[id]++
		r.events[id] = ev
		r.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (r *receiver) set(secret string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret, r.status = secret, status
}

// attempts is a channel of finished attempts, fed by Webhooks.Observe.
type attempts chan string

func options(ch attempts, disableAfter time.Duration) func(*server.Options) {
	return func(o *server.Options) {
		o.EventRelay = feed.RelayConfig{ScanEvery: 10 * time.Millisecond}
		o.Webhooks = webhook.Config{PollEvery: 10 * time.Millisecond, AllowHTTP: true, DisableAfter: disableAfter,
			Observe: func(d store.WebhookDelivery, result string) {
				select {
				case ch <- d.EventID + " " + result:
				default:
				}
			}}
	}
}

func (ch attempts) wait(t *testing.T, ctx context.Context, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		select {
		case a := <-ch:
			out = append(out, a)
		case <-ctx.Done():
			t.Fatalf("waited for %d attempts, saw %v", n, out)
		}
	}
	return out
}

func createHook(t *testing.T, ctx context.Context, ts *servertest.TestServer, rp, url string) (*pushauthv1.Webhook, string) {
	t.Helper()
	resp, err := ts.Admin.CreateWebhook(ts.AdminCtx(ctx), &pushauthv1.CreateWebhookRequest{RelyingParty: rp, Url: url, Description: "test"})
	if err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	return resp.GetWebhook(), resp.GetSecret()
}

// TestDeliverSigned: an event reaches the receiver signed, once, with the
// event id as webhook-id; the admin calls list it; rotating the secret
// signs later deliveries with the new one.
func TestDeliverSigned(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ctx := servertest.Context(t)
		ch := make(attempts, 100)
		ts := servertest.New(t, url, options(ch, 0))
		rcv := newReceiver(t)
		rp := ts.CreateRelyingParty(t, "shop", nil)
		hook, sec := createHook(t, ctx, ts, rp.GetName(), rcv.srv.URL+"/hook")
		rcv.set(sec, 0)
		key, _ := ts.CreateAPIKey(t, rp.GetId())
		got := ch.wait(t, ctx, 1)
		rcv.mu.Lock()
		if len(rcv.accepted) != 1 || rcv.bad != 0 {
			t.Fatalf("accepted %v, bad %d; attempts %v", rcv.accepted, rcv.bad, got)
		}
		for id, ev := range rcv.events {
			if ev.Type != feed.TypeAPIKeyCreated || ev.Data["api_key_id"] != key.GetId() || ev.RelyingPartyID != rp.GetId() || got[0] != id+" delivered" {
				t.Errorf("event %s = %+v, attempts %v", id, ev, got)
			}
		}
		rcv.mu.Unlock()

		rot, err := ts.Admin.RotateWebhookSecret(ts.AdminCtx(ctx), &pushauthv1.RotateWebhookSecretRequest{Webhook: hook.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if rot.GetSecret() == sec {
			t.Fatal("the rotated secret is the old one")
		}
		rcv.set(rot.GetSecret(), 0)
		if _, err := ts.Admin.RevokeApiKey(ts.AdminCtx(ctx), &pushauthv1.RevokeApiKeyRequest{ApiKey: key.GetId()}); err != nil {
			t.Fatal(err)
		}
		if got := ch.wait(t, ctx, 1); len(got) != 1 {
			t.Fatal(got)
		}
		rcv.mu.Lock()
		if len(rcv.accepted) != 2 || rcv.bad != 0 {
			t.Errorf("after rotation: accepted %v, bad %d", rcv.accepted, rcv.bad)
		}
		rcv.mu.Unlock()

		list, err := ts.Admin.ListWebhooks(ts.AdminCtx(ctx), &pushauthv1.ListWebhooksRequest{RelyingParty: rp.GetName()})
		if err != nil || len(list.GetWebhooks()) != 1 || list.GetWebhooks()[0].GetId() != hook.GetId() {
			t.Fatalf("ListWebhooks = %v, %v", list, err)
		}
		ds, err := ts.Admin.ListWebhookDeliveries(ts.AdminCtx(ctx), &pushauthv1.ListWebhookDeliveriesRequest{Webhook: hook.GetId()})
		if err != nil || len(ds.GetDeliveries()) != 2 {
			t.Fatalf("ListWebhookDeliveries = %v, %v", ds, err)
		}
		for _, d := range ds.GetDeliveries() {
			if d.GetState() != store.WebhookDelivered || d.GetAttempts() != 1 || d.GetLastStatus() != http.StatusNoContent {
				t.Errorf("delivery %+v", d)
			}
		}
		if _, body := ts.Ops(t, "/metrics"); !containsLine(body, `pushauth_webhook_deliveries_total{result="delivered"} 2`) {
			t.Errorf("metrics lack 2 delivered webhooks")
		}
		// Finished deliveries are deleted after KeepFinished.
		if n, err := ts.Server.Webhooks.DeleteFinished(ctx); err != nil || n != 0 {
			t.Fatalf("DeleteFinished at once = %d, %v", n, err)
		}
		ts.Clock.Advance(31 * 24 * time.Hour)
		if n, err := ts.Server.Webhooks.DeleteFinished(ctx); err != nil || n != 2 {
			t.Fatalf("DeleteFinished after 31 days = %d, %v", n, err)
		}
	})
}

func containsLine(body, line string) bool {
	for _, l := range splitLines(body) {
		if l == line {
			return true
		}
	}
	return false
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// TestRefusedURLs: only absolute https URLs without credentials (http
// when allowed).
func TestRefusedURLs(t *testing.T) {
	ctx := servertest.Context(t)
	ts := servertest.New(t, servertest.Backends[0].NewURL(t))
	rp := ts.CreateRelyingParty(t, "shop", nil)
	for _, u := range []string{"http://example.com/hook", "ftp://example.com", "/relative", "https://user:pw@example.com/"} {
		if _, err := ts.Admin.CreateWebhook(ts.AdminCtx(ctx), &pushauthv1.CreateWebhookRequest{RelyingParty: rp.GetId(), Url: u}); err == nil {
			t.Errorf("CreateWebhook(%q) accepted", u)
		}
	}
	// Descriptions and reasons are one line: they are listed and audited.
	for _, d := range []string{"line\nnext", "tab\there", "sep\u2028x"} {
		_, err := ts.Admin.CreateWebhook(ts.AdminCtx(ctx), &pushauthv1.CreateWebhookRequest{RelyingParty: rp.GetId(), Url: "https://example.com/hook", Description: d})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "description") {
			t.Errorf("CreateWebhook(description %q) = %v, want InvalidArgument naming description", d, err)
		}
	}
	hook, _ := createHook(t, ctx, ts, rp.GetId(), "https://example.com/hook")
	_, err := ts.Admin.DisableWebhook(ts.AdminCtx(ctx), &pushauthv1.DisableWebhookRequest{Webhook: hook.GetId(), Reason: "a\rb"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "reason") {
		t.Errorf("DisableWebhook(reason with CR) = %v, want InvalidArgument naming reason", err)
	}
}

// TestRedirectNotFollowed: a 3xx is a failed attempt; the address it
// points to gets nothing.
func TestRedirectNotFollowed(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ctx := servertest.Context(t)
		ch := make(attempts, 100)
		ts := servertest.New(t, url, options(ch, 0))
		var elsewhere sync.Map
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Store(r.URL.Path, true) }))
		t.Cleanup(other.Close)
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/stolen", http.StatusTemporaryRedirect)
		}))
		t.Cleanup(redirector.Close)
		rp := ts.CreateRelyingParty(t, "shop", nil)
		hook, _ := createHook(t, ctx, ts, rp.GetId(), redirector.URL)
		ts.CreateAPIKey(t, rp.GetId())
		if got := ch.wait(t, ctx, 1); len(got) != 1 || got[0][len(got[0])-5:] != "retry" {
			t.Fatalf("attempts %v, want one retry", got)
		}
		if _, ok := elsewhere.Load("/stolen"); ok {
			t.Fatal("the redirect was followed")
		}
		ds, err := ts.Admin.ListWebhookDeliveries(ts.AdminCtx(ctx), &pushauthv1.ListWebhookDeliveriesRequest{Webhook: hook.GetId()})
		if err != nil || len(ds.GetDeliveries()) != 1 {
			t.Fatal(ds, err)
		}
		if d := ds.GetDeliveries()[0]; d.GetState() != store.WebhookPending || d.GetLastStatus() != http.StatusTemporaryRedirect || d.GetNextAttemptTime() == nil {
			t.Errorf("delivery after a redirect: %+v", d)
		}
	})
}

// TestDisableAfterFailing: an endpoint that fails for DisableAfter is
// disabled, with an audit event, and gets nothing more.
func TestDisableAfterFailing(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ctx := servertest.Context(t)
		ch := make(attempts, 100)
		ts := servertest.New(t, url, options(ch, time.Hour))
		rcv := newReceiver(t)
		rcv.set("", http.StatusServiceUnavailable)
		rp := ts.CreateRelyingParty(t, "shop", nil)
		hook, sec := createHook(t, ctx, ts, rp.GetId(), rcv.srv.URL)
		rcv.set(sec, http.StatusServiceUnavailable)
		ts.CreateAPIKey(t, rp.GetId())
		ch.wait(t, ctx, 1)
		ts.Clock.Advance(40 * time.Minute) // failing, not for an hour yet
		ch.wait(t, ctx, 1)
		if h := getHook(t, ctx, ts, hook.GetId()); h.GetDisableTime() != nil || h.GetFailingSince() == nil {
			t.Fatalf("after 40 minutes: %+v", h)
		}
		ts.Clock.Advance(40 * time.Minute)
		ch.wait(t, ctx, 1)
		h := getHook(t, ctx, ts, hook.GetId())
		if h.GetDisableTime() == nil || h.GetDisabledReason() == "" {
			t.Fatalf("after 80 minutes of failures: %+v", h)
		}
		audit, err := ts.Admin.ListAuditEvents(ts.AdminCtx(ctx), &pushauthv1.ListAuditEventsRequest{RelyingParty: rp.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range audit.GetEvents() {
			found = found || (e.GetAction() == "webhook.disabled" && e.GetTarget() == hook.GetId() && e.GetActor() == "system")
		}
		if !found {
			t.Errorf("no webhook.disabled audit event in %v", audit.GetEvents())
		}
		// Disabled: nothing is claimed any more, however late.
		ts.Clock.Advance(24 * time.Hour)
		if n, err := ts.Server.Webhooks.DeliverDue(ctx); err != nil || n != 0 {
			t.Fatalf("DeliverDue after disable = %d, %v", n, err)
		}
		// The operator's disable of a disabled endpoint is harmless.
		if _, err := ts.Admin.DisableWebhook(ts.AdminCtx(ctx), &pushauthv1.DisableWebhookRequest{Webhook: hook.GetId()}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestLastErrorHidesURL: an endpoint's URL may carry a token; a failed
// attempt's error, shown in the deliveries list and logged, does not
// repeat it.
func TestLastErrorHidesURL(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ctx := servertest.Context(t)
		ch := make(attempts, 100)
		ts := servertest.New(t, url, options(ch, time.Hour))
		down := httptest.NewServer(http.NotFoundHandler())
		down.Close() // nothing listens there any more: connection refused
		rp := ts.CreateRelyingParty(t, "shop", nil)
		const token = "tok3n-in-the-url"
		hook, _ := createHook(t, ctx, ts, rp.GetId(), down.URL+"/hook/"+token+"?key="+token)
		ts.CreateAPIKey(t, rp.GetId())
		if got := ch.wait(t, ctx, 1); !strings.HasSuffix(got[0], " retry") {
			t.Fatalf("attempt %v, want a retry", got)
		}
		ds, err := ts.Admin.ListWebhookDeliveries(ts.AdminCtx(ctx), &pushauthv1.ListWebhookDeliveriesRequest{Webhook: hook.GetId()})
		if err != nil || len(ds.GetDeliveries()) != 1 {
			t.Fatalf("ListWebhookDeliveries = %v, %v", ds, err)
		}
		last := ds.GetDeliveries()[0].GetLastError()
		if last == "" || strings.Contains(last, token) {
			t.Fatalf("last error %q: empty, or it repeats the URL's token", last)
		}
		if !ts.Logs.Contains("webhook attempt failed") || ts.Logs.Contains(token) {
			t.Fatalf("the log lacks the failed attempt or repeats the URL's token:\n%s", ts.Logs)
		}
	})
}

func getHook(t *testing.T, ctx context.Context, ts *servertest.TestServer, id string) *pushauthv1.Webhook {
	t.Helper()
	list, err := ts.Admin.ListWebhooks(ts.AdminCtx(ctx), &pushauthv1.ListWebhooksRequest{IncludeDisabled: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range list.GetWebhooks() {
		if h.GetId() == id {
			return h
		}
	}
	t.Fatalf("webhook %s not listed", id)
	return nil
}

// TestDownThenUpAcrossReplicas: with the receiver down, two replicas'
// workers retry a burst of events; one replica dies, another starts, the
// receiver comes back: every event arrives exactly once, and never twice
// at once.
func TestDownThenUpAcrossReplicas(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ctx := servertest.Context(t)
		ch := make(attempts, 1000)
		reps := servertest.NewCluster(t, url, 2, options(ch, 0))
		a, b := reps[0], reps[1]
		rcv := newReceiver(t)
		rp := a.CreateRelyingParty(t, "shop", nil)
		_, sec := createHook(t, ctx, a, rp.GetId(), rcv.srv.URL)
		rcv.set(sec, http.StatusServiceUnavailable)
		const n = 40
		for range n {
			b.CreateAPIKey(t, rp.GetId())
		}
		ch.wait(t, ctx, n)                  // every event failed once, on one replica or the other
		a.StopRun()                         // replica a dies
		a.AnotherReplica(t, options(ch, 0)) // and another starts
		rcv.set(sec, 0)                     // the receiver is back
		// Every retry is due; the clock moves once, while no attempt is in
		// flight, so no hold ends under a running attempt.
		a.Clock.Advance(2 * time.Hour)
		for {
			rcv.mu.Lock()
			done := len(rcv.accepted)
			rcv.mu.Unlock()
			if done == n {
				break
			}
			ch.wait(t, ctx, 1)
		}
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for id, k := range rcv.accepted {
			if k != 1 {
				t.Errorf("webhook %s accepted %d times", id, k)
			}
		}
		if rcv.bad != 0 {
			t.Errorf("%d deliveries with a bad signature", rcv.bad)
		}
	})
}

// TestGiveUpAfterRetryFor: a delivery that kept failing for RetryFor is
// given up (failed) and not tried again; the endpoint stays enabled.
func TestGiveUpAfterRetryFor(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ctx := servertest.Context(t)
		ch := make(attempts, 100)
		ts := servertest.New(t, url, options(ch, 0), func(o *server.Options) { o.Webhooks.RetryFor = 24 * time.Hour })
		rcv := newReceiver(t)
		rp := ts.CreateRelyingParty(t, "shop", nil)
		hook, sec := createHook(t, ctx, ts, rp.GetId(), rcv.srv.URL)
		rcv.set(sec, http.StatusInternalServerError)
		ts.CreateAPIKey(t, rp.GetId())
		if got := ch.wait(t, ctx, 1); got[0][len(got[0])-5:] != "retry" {
			t.Fatalf("first attempt %v", got)
		}
		ts.Clock.Advance(25 * time.Hour)
		if got := ch.wait(t, ctx, 1); got[0][len(got[0])-7:] != "gave_up" {
			t.Fatalf("attempt after 25 hours %v, want gave_up", got)
		}
		ds, err := ts.Admin.ListWebhookDeliveries(ts.AdminCtx(ctx), &pushauthv1.ListWebhookDeliveriesRequest{Webhook: hook.GetId()})
		if err != nil || len(ds.GetDeliveries()) != 1 {
			t.Fatal(ds, err)
		}
		if d := ds.GetDeliveries()[0]; d.GetState() != store.WebhookFailed || d.GetAttempts() != 2 || d.GetFinishTime() == nil || d.GetLastStatus() != 500 {
			t.Errorf("given-up delivery %+v", d)
		}
		if n, err := ts.Server.Webhooks.DeliverDue(ctx); err != nil || n != 0 {
			t.Errorf("DeliverDue after giving up = %d, %v", n, err)
		}
		if h := getHook(t, ctx, ts, hook.GetId()); h.GetDisableTime() != nil {
			t.Errorf("endpoint disabled before webhook_disable_after: %+v", h)
		}
		if _, body := ts.Ops(t, "/metrics"); !containsLine(body, `pushauth_webhook_deliveries_total{result="gave_up"} 1`) {
			t.Errorf("metrics lack the given-up delivery")
		}
	})
}

// TestDeliveryTraced: with tracing on, every attempt is a client span and
// the receiver gets its traceparent; with it off, no header is sent.
func TestDeliveryTraced(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("tracing=%v", on), func(t *testing.T) { testDeliveryTraced(t, on) })
	}
}

func testDeliveryTraced(t *testing.T, on bool) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ctx := servertest.Context(t)
		ch := make(attempts, 100)
		spans := tracetest.NewInMemoryExporter()
		opts := options(ch, 0)
		ts := servertest.New(t, url, func(o *server.Options) {
			opts(o)
			if on {
				o.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
			}
		})
		rcv := newReceiver(t)
		rp := ts.CreateRelyingParty(t, "shop", nil)
		_, sec := createHook(t, ctx, ts, rp.GetName(), rcv.srv.URL+"/hook")
		rcv.set(sec, 0)
		ts.CreateAPIKey(t, rp.GetId())
		ch.wait(t, ctx, 1)
		rcv.mu.Lock()
		got := rcv.traceparents
		rcv.mu.Unlock()
		if !on {
			if len(got) != 0 {
				t.Fatalf("tracing off, yet the receiver got traceparent %q", got)
			}
			return
		}
		if len(got) != 1 {
			t.Fatalf("receiver got traceparents %q, want one", got)
		}
		var client bool
		for _, s := range spans.GetSpans() {
			if s.SpanKind == trace.SpanKindClient && strings.Contains(got[0], s.SpanContext.TraceID().String()) &&
				strings.Contains(got[0], s.SpanContext.SpanID().String()) {
				client = true
			}
		}
		if !client {
			t.Fatalf("no client span matches the receiver's traceparent %q among %d spans", got[0], len(spans.GetSpans()))
		}
		// The delivery continues the trace of the call that made the event:
		// the CreateApiKey RPC's server span.
		var origin bool
		for _, s := range spans.GetSpans() {
			if s.SpanKind == trace.SpanKindServer && strings.Contains(s.Name, "CreateApiKey") {
				origin = strings.Contains(got[0], s.SpanContext.TraceID().String())
			}
		}
		if !origin {
			t.Fatalf("the delivery's traceparent %q is not in the trace of the CreateApiKey call that made the event", got[0])
		}
	})
}
