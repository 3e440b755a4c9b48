package retention_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/pushauth/pushauth/internal/retention"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestRetentionThroughTheAPI registers a phone, pairs it and logs in
// through a two-replica cluster, then moves the shared clock and lets both
// replicas' sweepers run at once, as they do in production.
func TestRetentionThroughTheAPI(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		cl := servertest.NewCluster(t, url, 2)
		a, b := cl[0], cl[1]
		st, clock := a.Store, a.Clock
		ctx := servertest.Context(t)
		const number = "+31612345678"

		rp := a.CreateRelyingParty(t, "portal", nil)
		_, key := a.CreateAPIKey(t, rp.GetId())
		phone := servertest.NewPhone(t, false)
		b.Register(t, phone, number) // a verification, an outbox message, counters
		pairing := b.Pair(t, phone, key, "jan", "jan@example.nl")
		if pairing.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
			t.Fatalf("pairing: %v", pairing)
		}
		login := func(approve bool) string {
			t.Helper()
			c, err := a.RP.CreateApproval(a.WithToken(ctx, key), &pushauthv1.CreateApprovalRequest{
				UserRef: "jan",
				Context: &pushauthv1.RequestContext{AppName: "Portal", IpAddress: "192.0.2.7", Location: "Utrecht, NL", Browser: "Firefox"},
			})
			if err != nil {
				t.Fatalf("CreateApproval: %v", err)
			}
			if approve {
				if _, err := b.Decide(t, phone, b.Pending(t, phone), pushauthv1.Decision_DECISION_APPROVE, ""); err != nil {
					t.Fatalf("approve: %v", err)
				}
			}
			return c.GetRequestId()
		}
		login31 := login(true) // decided on day 0: 31 days old at the sweep
		clock.Advance(2 * retention.Day)
		login29 := login(true)  // decided on day 2: 29 days old at the sweep
		pending := login(false) // never answered, never swept to EXPIRED
		audit := func() []store.AuditEvent {
			t.Helper()
			es, err := st.ListAuditEvents(ctx, store.AuditFilter{Limit: 1000})
			if err != nil {
				t.Fatalf("ListAuditEvents: %v", err)
			}
			return es
		}
		auditBefore := len(audit())

		clock.Set(servertest.Epoch.Add(31 * retention.Day))
		results := make([]retention.Result, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, ts := range cl {
			wg.Go(func() { results[i], errs[i] = ts.Server.Retention.SweepOnce(ctx) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("replica %d: SweepOnce: %v", i, err)
			}
		}
		sum := func(get func(retention.Result) int64) int64 { return get(results[0]) + get(results[1]) }
		if n := sum(func(r retention.Result) int64 { return r.Requests }); n != 2 {
			t.Errorf("requests deleted: %d, want 2 (the pairing and the 31-day-old login)", n)
		}
		if n := sum(func(r retention.Result) int64 { return r.Verifications }); n != 1 {
			t.Errorf("verifications deleted: %d, want 1", n)
		}
		if n := sum(func(r retention.Result) int64 { return r.Outbox }); n != 1 {
			t.Errorf("outbox messages deleted: %d, want 1", n)
		}
		if n := sum(func(r retention.Result) int64 { return r.PairingPhrases }); n != 1 {
			t.Errorf("pairing phrases deleted: %d, want 1", n)
		}
		if n := sum(func(r retention.Result) int64 { return r.Counters }); n == 0 {
			t.Error("no rate counters deleted")
		}
		if n := sum(func(r retention.Result) int64 { return r.Audit }); n != 0 {
			t.Errorf("audit events deleted: %d, want 0", n)
		}

		for id, want := range map[string]bool{pairing.GetId(): false, login31: false, login29: true, pending: true} {
			_, err := st.GetRequest(ctx, id)
			if got := err == nil; got != want || (err != nil && !errors.Is(err, store.ErrNotFound)) {
				t.Errorf("request %s kept = %v (%v), want %v", id, got, err, want)
			}
			ts, err := st.ListRequestTargets(ctx, id)
			if err != nil || (len(ts) == 1) != want {
				t.Errorf("request %s has %d targets (%v), kept = %v", id, len(ts), err, want)
			}
		}
		if r, _ := st.GetRequest(ctx, pending); r.Status != store.StatusPending {
			t.Errorf("pending request is %s", r.Status)
		}
		if _, err := st.LatestVerification(ctx, number); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("verification kept: %v", err)
		}
		if ms, err := st.ListOutboxMessages(ctx, "", 10); err != nil || len(ms) != 0 {
			t.Errorf("outbox = %d messages, %v; want empty", len(ms), err)
		}
		if n := len(audit()); n != auditBefore {
			t.Errorf("%d audit events, want all %d kept", n, auditBefore)
		}

		// The phone and its connection are untouched: logins still work.
		fresh := login(true)
		for _, ts := range cl {
			if res, err := ts.Server.Retention.SweepOnce(ctx); err != nil || res != (retention.Result{}) {
				t.Errorf("second sweep = %+v, %v; want nothing deleted", res, err)
			}
		}

		// On day 403 the audit events of days 0 and 2 go, those of day 31
		// stay; the requests decided on days 2 and 31 go, the pending one
		// stays.
		clock.Set(servertest.Epoch.Add(400*retention.Day + 3*retention.Day))
		res, err := a.Server.Retention.SweepOnce(ctx)
		if err != nil {
			t.Fatalf("SweepOnce: %v", err)
		}
		if res.Audit == 0 || res.Requests != 2 {
			t.Errorf("sweep on day 403 deleted %+v, want audit events and 2 requests", res)
		}
		cutoff := clock.Now().Add(-400 * retention.Day)
		left := audit()
		if len(left) == 0 {
			t.Error("every audit event deleted, want those since day 31 kept")
		}
		for _, e := range left {
			if e.Time.Before(cutoff) {
				t.Errorf("audit event %d of %v kept past %v", e.ID, e.Time, cutoff)
			}
		}
		if _, err := st.GetRequest(ctx, login29); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("request of day 2 on day 403: %v, want deleted", err)
		}
		if _, err := st.GetRequest(ctx, fresh); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("request of day 31 on day 403: %v, want deleted", err)
		}
		if _, err := st.GetRequest(ctx, pending); err != nil {
			t.Errorf("pending request: %v", err)
		}
	})
}
