package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Conformance cases for store.EventOutbox and store.Webhooks.

func feedIDs(es []store.FeedEvent) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func testEventOutbox(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	evs := []store.FeedEvent{
		{ID: "evt-b", RelyingPartyID: "rp-1", Type: "api_key_created", Body: []byte(`{"n":1}`), CreatedAt: t1, Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{ID: "evt-a", RelyingPartyID: "rp-1", Type: "request_decided", Body: []byte(`{"n":2}`), CreatedAt: t0},
	}
	if err := s.AddEvents(ctx, evs); err != nil {
		t.Fatalf("AddEvents: %v", err)
	}
	if err := s.AddEvents(ctx, evs[:1]); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("AddEvents of a taken id = %v, want ErrConflict", err)
	}
	got, err := s.ClaimEvents(ctx, t0, t0.Add(time.Minute), 1)
	if err != nil {
		t.Fatalf("ClaimEvents: %v", err)
	}
	wantEqual(t, "first claim", feedIDs(got), []string{"evt-a"})
	wantEqual(t, "event", got[0], evs[1])
	got, _ = s.ClaimEvents(ctx, t0, t0.Add(time.Minute), 10)
	wantEqual(t, "claim while one is held", feedIDs(got), []string{"evt-b"})
	got, _ = s.ClaimEvents(ctx, t0.Add(30*time.Second), t2, 10)
	wantEqual(t, "claim while all held", feedIDs(got), []string{})
	got, _ = s.ClaimEvents(ctx, t1, t2, 10)
	wantEqual(t, "claim after the holds", feedIDs(got), []string{"evt-a", "evt-b"})
	if err := s.DeleteEvents(ctx, []string{"evt-a", "missing"}); err != nil {
		t.Fatalf("DeleteEvents: %v", err)
	}
	got, _ = s.ClaimEvents(ctx, t3, t3, 10)
	wantEqual(t, "left after delete", feedIDs(got), []string{"evt-b"})
	// Rolled back with its transaction.
	boom := errors.New("boom")
	if err := s.InTx(ctx, func(tx store.Store) error {
		if err := tx.AddEvents(ctx, []store.FeedEvent{{ID: "evt-c", RelyingPartyID: "rp", Type: "x", Body: []byte("{}"), CreatedAt: t0}}); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	got, _ = s.ClaimEvents(ctx, t3.Add(time.Hour), t3.Add(time.Hour), 10)
	wantEqual(t, "after rollback", feedIDs(got), []string{"evt-b"})
}

// RecordAuditEvent writes the audit row and its feed events together, byte
// for byte, or neither.
func testRecordAuditEvent(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a := store.AuditEvent{Time: t1, Actor: "admin", Action: "request.decided", RelyingPartyID: "rp-1", Target: "r1", RequestID: "rid", Details: map[string]string{"status": "APPROVED"}}
	evs := []store.FeedEvent{
		// Bodies that JSON could re-escape must come back unchanged.
		{ID: "evt-1", RelyingPartyID: "rp-1", Type: "request_decided", Body: []byte(`{"a":"<&>\"\u2028 é ✓","n":1}`), CreatedAt: t1,
			Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		{ID: "evt-2", RelyingPartyID: "rp-1", Type: "fraud_reported", Body: []byte("{\n \"b\": [1, 2.50]}"), CreatedAt: t1},
	}
	if err := s.RecordAuditEvent(ctx, a, evs); err != nil {
		t.Fatalf("RecordAuditEvent: %v", err)
	}
	if err := s.RecordAuditEvent(ctx, store.AuditEvent{Time: t2, Actor: "admin", Action: "no.feed"}, nil); err != nil {
		t.Fatalf("RecordAuditEvent without feed events: %v", err)
	}
	// A taken event id fails the whole statement: no audit row either.
	wantErr(t, "RecordAuditEvent with a taken event id", s.RecordAuditEvent(ctx, store.AuditEvent{Time: t3, Action: "dup"}, evs[1:]), store.ErrConflict)
	// Rolled back with its transaction.
	boom := errors.New("boom")
	if err := s.InTx(ctx, func(tx store.Store) error {
		if err := tx.RecordAuditEvent(ctx, store.AuditEvent{Time: t3, Action: "rolled.back"}, []store.FeedEvent{{ID: "evt-3", RelyingPartyID: "rp-1", Type: "x", Body: []byte("{}"), CreatedAt: t3}}); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}

	audits, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: 10})
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	actions := []string{}
	for _, e := range audits {
		actions = append(actions, e.Action)
	}
	wantEqual(t, "audit rows, newest first", actions, []string{"no.feed", "request.decided"})
	got := audits[1]
	got.ID = 0
	wantEqual(t, "audit row", got, a)
	claimed, err := s.ClaimEvents(ctx, t3, t3.Add(time.Minute), 10)
	if err != nil {
		t.Fatalf("ClaimEvents: %v", err)
	}
	wantEqual(t, "feed events", claimed, evs)
}

func newEndpoint(t *testing.T, s store.Store, id, rp string) store.WebhookEndpoint {
	t.Helper()
	e := store.WebhookEndpoint{ID: id, RelyingPartyID: rp, URL: "https://hooks.example.com/" + id, Description: "d", Secret: []byte("sealed"),
		CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateWebhookEndpoint(ctxT(t), e); err != nil {
		t.Fatalf("CreateWebhookEndpoint: %v", err)
	}
	return e
}

func testWebhookEndpoints(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	a := newEndpoint(t, s, "whe-a", "rp-1")
	newEndpoint(t, s, "whe-b", "rp-2")
	if err := s.CreateWebhookEndpoint(ctx, a); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("create twice = %v, want ErrConflict", err)
	}
	got, err := s.GetWebhookEndpoint(ctx, "whe-a")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "endpoint", got, a)
	if _, err := s.GetWebhookEndpoint(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get missing = %v", err)
	}
	if err := s.SetWebhookSecret(ctx, "whe-a", []byte("new"), t1); err != nil {
		t.Fatal(err)
	}
	if err := s.SetWebhookSecret(ctx, "nope", []byte("new"), t1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("set secret of missing = %v", err)
	}
	got, _ = s.GetWebhookEndpoint(ctx, "whe-a")
	wantEqual(t, "secret", string(got.Secret), "new")
	wantEqual(t, "updated", got.UpdatedAt, t1)
	since, err := s.RecordWebhookResult(ctx, "whe-a", false, t1)
	wantEqual(t, "failing since", since, t1)
	since, _ = s.RecordWebhookResult(ctx, "whe-a", false, t2)
	wantEqual(t, "failing since kept", since, t1)
	since, _ = s.RecordWebhookResult(ctx, "whe-a", true, t2)
	wantEqual(t, "failing since cleared", since, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DisableWebhookEndpoint(ctx, "whe-a", "operator", t2); err != nil {
		t.Fatal(err)
	}
	if err := s.DisableWebhookEndpoint(ctx, "whe-a", "operator", t2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("disable twice = %v, want ErrConflict", err)
	}
	if err := s.DisableWebhookEndpoint(ctx, "nope", "operator", t2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("disable missing = %v, want ErrNotFound", err)
	}
	list, err := s.ListWebhookEndpoints(ctx, "rp-1", false)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "enabled of rp-1", len(list), 0)
	list, _ = s.ListWebhookEndpoints(ctx, "rp-1", true)
	wantEqual(t, "all of rp-1", len(list), 1)
	wantEqual(t, "disabled reason", list[0].DisabledReason, "operator")
	wantEqual(t, "disabled at", list[0].DisabledAt, t2)
	list, _ = s.ListWebhookEndpoints(ctx, "", true)
	wantEqual(t, "all", len(list), 2)
}

func delivery(id, endpoint, event string, due time.Time) store.WebhookDelivery {
	return store.WebhookDelivery{ID: id, EndpointID: endpoint, EventID: event, EventType: "t", Body: []byte("{}"), NextAttemptAt: due, CreatedAt: due}
}

func testWebhookDeliveries(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	newEndpoint(t, s, "whe-a", "rp-1")
	newEndpoint(t, s, "whe-off", "rp-1")
	if err := s.DisableWebhookEndpoint(ctx, "whe-off", "x", t0); err != nil {
		t.Fatal(err)
	}
	ds := []store.WebhookDelivery{delivery("d1", "whe-a", "e1", t0), delivery("d2", "whe-a", "e2", t1), delivery("d3", "whe-off", "e1", t0)}
	ds[0].Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if err := s.AddWebhookDeliveries(ctx, ds); err != nil {
		t.Fatal(err)
	}
	// The same event for the same endpoint again is skipped.
	if err := s.AddWebhookDeliveries(ctx, []store.WebhookDelivery{delivery("d1-again", "whe-a", "e1", t0)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClaimWebhookDeliveries(ctx, t0, t1, "w1", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "d1" || got[0].Claim != "w1" || got[0].State != store.WebhookPending {
		t.Fatalf("claim at t0 = %+v, want d1 only (d2 not due, d3 disabled)", got)
	}
	wantEqual(t, "claimed delivery's trace context", got[0].Traceparent, ds[0].Traceparent)
	if more, _ := s.ClaimWebhookDeliveries(ctx, t0, t1, "w2", 10); len(more) != 0 {
		t.Fatalf("claim while held = %+v", more)
	}
	d := got[0]
	d.Claim = "w2"
	d.State, d.Attempts, d.NextAttemptAt, d.LastStatus, d.LastError = store.WebhookPending, 1, t2, 500, "boom"
	if err := s.FinishWebhookAttempt(ctx, d); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("finish with another's claim = %v, want ErrConflict", err)
	}
	d.Claim = "w1"
	if err := s.FinishWebhookAttempt(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ClaimWebhookDeliveries(ctx, t2, t3, "w3", 10)
	wantEqual(t, "due at t2", len(got), 2)
	wantEqual(t, "first due", got[0].ID, "d2")
	wantEqual(t, "retried", got[1].Attempts, 1)
	wantEqual(t, "last status", got[1].LastStatus, 500)
	done := got[1]
	done.State, done.Attempts, done.FinishedAt = store.WebhookDelivered, 2, t2
	if err := s.FinishWebhookAttempt(ctx, done); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishWebhookAttempt(ctx, done); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("finish twice = %v, want ErrConflict", err)
	}
	list, err := s.ListWebhookDeliveries(ctx, "whe-a", time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "listed", len(list), 2)
	wantEqual(t, "newest first", list[0].ID, "d2")
	wantEqual(t, "delivered", list[1].State, store.WebhookDelivered)
	wantEqual(t, "finished", list[1].FinishedAt, t2)
	list, _ = s.ListWebhookDeliveries(ctx, "whe-a", t1, 10)
	wantEqual(t, "before t1", len(list), 1)
	// Only finished deliveries are deleted.
	n, err := s.DeleteWebhookDeliveriesBefore(ctx, t3, 10)
	if err != nil || n != 1 {
		t.Fatalf("DeleteWebhookDeliveriesBefore = %d, %v; want the delivered one", n, err)
	}
	list, _ = s.ListWebhookDeliveries(ctx, "whe-a", time.Time{}, 10)
	wantEqual(t, "left", len(list), 1)
	wantEqual(t, "the pending one", list[0].ID, "d2")
}

// testConcurrentClaimWebhookDeliveries: a burst of workers never holds one
// delivery twice.
func testConcurrentClaimWebhookDeliveries(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	newEndpoint(t, s, "whe-a", "rp-1")
	const n = 300
	var ds []store.WebhookDelivery
	for i := range n {
		ds = append(ds, delivery(fmt.Sprintf("d%03d", i), "whe-a", fmt.Sprintf("e%03d", i), t0))
	}
	if err := s.AddWebhookDeliveries(ctx, ds); err != nil {
		t.Fatal(err)
	}
	const callers = 100
	var mu sync.Mutex
	seen := map[string]string{}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			<-start
			claim := fmt.Sprintf("w%d", c)
			for {
				got, err := s.ClaimWebhookDeliveries(ctx, t1, t2, claim, 5)
				if err != nil {
					t.Errorf("%s: %v", claim, err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					if prev, ok := seen[d.ID]; ok {
						t.Errorf("delivery %s claimed by %s and %s", d.ID, prev, claim)
					}
					seen[d.ID] = claim
				}
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d deliveries claimed, want %d", len(seen), n)
	}
}
