package relyingparty_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/relyingparty"
	"github.com/pushauth/pushauth/internal/requestid"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

// clock is a hand-moved clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

type env struct {
	svc   *relyingparty.Service
	store store.Store
	clock *clock
	ctx   context.Context
}

// forEachBackend runs f on a fresh migrated SQLite and PostgreSQL database
// (the latter only with PUSHAUTH_TEST_POSTGRES_DSN set).
func forEachBackend(t *testing.T, f func(t *testing.T, e env)) {
	backends := []struct {
		name string
		url  func(testing.TB) string
	}{
		{"sqlite", storetest.NewSQLiteURL},
		{"postgres", storetest.NewPostgresURL},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := storetest.OpenMigrated(t, b.url(t))
			c := &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			t.Cleanup(cancel)
			f(t, env{svc: relyingparty.New(st, c.Now, nil), store: st, clock: c, ctx: ctx})
		})
	}
}

func wantFault(t *testing.T, err error, kind fault.Kind, field string) {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok || fe.Kind != kind || fe.Field != field {
		t.Fatalf("err = %v, want a %v fault on field %q", err, kind, field)
	}
}

func auditEvents(t *testing.T, e env, rpID string) []store.AuditEvent {
	t.Helper()
	events, err := e.store.ListAuditEvents(e.ctx, store.AuditFilter{RelyingPartyID: rpID, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func countAction(events []store.AuditEvent, action string) int {
	n := 0
	for _, ev := range events {
		if ev.Action == action {
			n++
		}
	}
	return n
}

func TestCheckPolicy(t *testing.T) {
	ok := relyingparty.DefaultPolicy()
	if err := relyingparty.CheckPolicy(ok); err != nil {
		t.Fatalf("default policy refused: %v", err)
	}
	if ok.NumberMatching != store.NumberMatchingNone || ok.ApprovalTTL != 120*time.Second {
		t.Errorf("default policy = %+v", ok)
	}
	tests := []struct {
		name  string
		p     store.Policy
		field string // "" means valid
	}{
		{"min ttl", store.Policy{NumberMatching: store.NumberMatchingCode, ApprovalTTL: 10 * time.Second}, ""},
		{"max ttl", store.Policy{NumberMatching: store.NumberMatchingNumber, ApprovalTTL: 10 * time.Minute}, ""},
		{"ttl too short", store.Policy{NumberMatching: store.NumberMatchingNone, ApprovalTTL: 10*time.Second - 1}, "policy.approval_ttl"},
		{"ttl too long", store.Policy{NumberMatching: store.NumberMatchingNone, ApprovalTTL: 10*time.Minute + 1}, "policy.approval_ttl"},
		{"zero ttl", store.Policy{NumberMatching: store.NumberMatchingNone}, "policy.approval_ttl"},
		{"no mode", store.Policy{ApprovalTTL: time.Minute}, "policy.number_matching"},
		{"unknown mode", store.Policy{NumberMatching: "SOMETIMES", ApprovalTTL: time.Minute}, "policy.number_matching"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := relyingparty.CheckPolicy(tt.p)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantFault(t, err, fault.InvalidArgument, tt.field)
		})
	}
}

func TestCreateAndResolve(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		ctx := requestid.With(e.ctx, "req-1")
		rp, err := e.svc.Create(ctx, "admin", "portal", "Portal", relyingparty.DefaultPolicy())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(rp.ID, "rp_") || !rp.CreatedAt.Equal(e.clock.Now()) || !rp.UpdatedAt.Equal(e.clock.Now()) {
			t.Errorf("created %+v", rp)
		}
		for _, ref := range []string{rp.ID, "portal"} {
			got, err := e.svc.Resolve(e.ctx, ref)
			if err != nil || got.ID != rp.ID {
				t.Errorf("Resolve(%q) = %+v, %v", ref, got, err)
			}
		}
		for _, ref := range []string{"nobody", "rp_nobody"} {
			_, err := e.svc.Resolve(e.ctx, ref)
			wantFault(t, err, fault.NotFound, "")
		}

		_, err = e.svc.Create(ctx, "admin", "portal", "Again", relyingparty.DefaultPolicy())
		wantFault(t, err, fault.AlreadyExists, "")
		_, err = e.svc.Create(ctx, "admin", "bad-policy", "Bad", store.Policy{})
		wantFault(t, err, fault.InvalidArgument, "policy.number_matching")
		if _, err := e.svc.Resolve(e.ctx, "bad-policy"); err == nil {
			t.Error("a relying party with a refused policy was stored")
		}

		events := auditEvents(t, e, "")
		if len(events) != 1 {
			t.Fatalf("audit = %+v, want only the one creation (failed creates roll back)", events)
		}
		ev := events[0]
		if ev.Action != "relying_party.created" || ev.Actor != "admin" || ev.RelyingPartyID != rp.ID || ev.Target != rp.ID ||
			ev.RequestID != "req-1" || !ev.Time.Equal(rp.CreatedAt) || ev.Details["name"] != "portal" || ev.Details["approval_ttl"] != "2m0s" {
			t.Errorf("audit event %+v", ev)
		}
	})
}

func TestUpdatePolicy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		rp, err := e.svc.Create(e.ctx, "admin", "portal", "Portal", relyingparty.DefaultPolicy())
		if err != nil {
			t.Fatal(err)
		}
		at := e.clock.Advance(time.Hour)
		got, err := e.svc.UpdatePolicy(e.ctx, "admin", "portal", func(p *store.Policy) { p.AllowBackupRestore = true })
		if err != nil {
			t.Fatal(err)
		}
		want := relyingparty.DefaultPolicy()
		want.AllowBackupRestore = true
		if got.Policy != want || !got.UpdatedAt.Equal(at) || !got.CreatedAt.Equal(rp.CreatedAt) {
			t.Errorf("updated %+v", got)
		}

		// A change that breaks the policy is refused and leaves no trace.
		e.clock.Advance(time.Hour)
		_, err = e.svc.UpdatePolicy(e.ctx, "admin", rp.ID, func(p *store.Policy) { p.ApprovalTTL = time.Second })
		wantFault(t, err, fault.InvalidArgument, "policy.approval_ttl")
		stored, err := e.store.GetRelyingParty(e.ctx, rp.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Policy != want || !stored.UpdatedAt.Equal(at) {
			t.Errorf("after a refused update: %+v", stored)
		}
		if n := countAction(auditEvents(t, e, rp.ID), "relying_party.policy_updated"); n != 1 {
			t.Errorf("%d policy_updated events, want 1", n)
		}

		_, err = e.svc.UpdatePolicy(e.ctx, "admin", "nobody", func(*store.Policy) {})
		wantFault(t, err, fault.NotFound, "")
	})
}

// Partial updates running at the same time must compose: each re-reads the
// policy inside its transaction, so none writes back a stale field.
func TestUpdatePolicyConcurrent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		changes := []func(*store.Policy){
			func(p *store.Policy) { p.NumberMatching = store.NumberMatchingCode },
			func(p *store.Policy) { p.ApprovalTTL = 42 * time.Second },
			func(p *store.Policy) { p.AllowLocationAutomation = true },
			func(p *store.Policy) { p.AllowBackupRestore = true },
		}
		want := store.Policy{NumberMatching: store.NumberMatchingCode, ApprovalTTL: 42 * time.Second, AllowLocationAutomation: true, AllowBackupRestore: true}
		var ids []string
		for i := range 8 {
			rp, err := e.svc.Create(e.ctx, "admin", fmt.Sprintf("rp-%d", i), "RP", relyingparty.DefaultPolicy())
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, rp.ID)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, len(ids)*len(changes))
		for _, id := range ids {
			for _, change := range changes {
				wg.Go(func() {
					<-start
					if _, err := e.svc.UpdatePolicy(e.ctx, "admin", id, change); err != nil {
						errs <- err
					}
				})
			}
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("UpdatePolicy: %v", err)
		}
		for _, id := range ids {
			rp, err := e.store.GetRelyingParty(e.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if rp.Policy != want {
				t.Errorf("%s: policy %+v, want every change: %+v", id, rp.Policy, want)
			}
			if n := countAction(auditEvents(t, e, id), "relying_party.policy_updated"); n != len(changes) {
				t.Errorf("%s: %d policy_updated events, want %d", id, n, len(changes))
			}
		}
	})
}

func TestAPIKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e env) {
		rp, err := e.svc.Create(e.ctx, "admin", "portal", "Portal", relyingparty.DefaultPolicy())
		if err != nil {
			t.Fatal(err)
		}
		key, token, err := e.svc.CreateAPIKey(e.ctx, "admin", "portal", "server 1")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(token, key.Prefix+".") || key.RelyingPartyID != rp.ID || !key.LastUsedAt.IsZero() {
			t.Errorf("key %+v, token %q", key, token)
		}
		_, random, _ := strings.Cut(token, ".")
		for _, ev := range auditEvents(t, e, rp.ID) {
			for k, v := range ev.Details {
				if strings.Contains(v, random) {
					t.Errorf("audit detail %s of %s holds the secret", k, ev.Action)
				}
			}
		}

		t.Run("authenticate", func(t *testing.T) {
			first := e.clock.Advance(time.Hour)
			gotRP, gotKey, err := e.svc.Authenticate(e.ctx, token)
			if err != nil || gotRP.ID != rp.ID || gotKey.ID != key.ID {
				t.Fatalf("Authenticate = %+v, %+v, %v", gotRP, gotKey, err)
			}
			lastUsed := func() time.Time {
				k, err := e.store.GetAPIKey(e.ctx, key.ID)
				if err != nil {
					t.Fatal(err)
				}
				return k.LastUsedAt
			}
			if !lastUsed().Equal(first) {
				t.Errorf("last used %v, want %v", lastUsed(), first)
			}
			// Uses within a minute are not written.
			e.clock.Advance(59 * time.Second)
			if _, _, err := e.svc.Authenticate(e.ctx, token); err != nil {
				t.Fatal(err)
			}
			if !lastUsed().Equal(first) {
				t.Errorf("last used moved to %v within a minute", lastUsed())
			}
			later := e.clock.Advance(time.Second)
			if _, _, err := e.svc.Authenticate(e.ctx, token); err != nil {
				t.Fatal(err)
			}
			if !lastUsed().Equal(later) {
				t.Errorf("last used %v, want %v", lastUsed(), later)
			}

			for name, bad := range map[string]string{
				"wrong random":   key.Prefix + "." + strings.Repeat("A", 43),
				"unknown prefix": "pak_nothere." + random,
				"malformed":      "pak_x",
				"other kind":     "pdc" + strings.TrimPrefix(token, "pak"),
				"empty":          "",
			} {
				if _, _, err := e.svc.Authenticate(e.ctx, bad); !errors.Is(err, relyingparty.ErrBadAPIKey) {
					t.Errorf("%s: %v, want ErrBadAPIKey", name, err)
				}
			}
		})

		t.Run("revoke", func(t *testing.T) {
			at := e.clock.Advance(time.Hour)
			k, err := e.svc.RevokeAPIKey(e.ctx, "admin", key.Prefix)
			if err != nil || !k.RevokedAt.Equal(at) {
				t.Fatalf("RevokeAPIKey = %+v, %v", k, err)
			}
			e.clock.Advance(time.Hour)
			k, err = e.svc.RevokeAPIKey(e.ctx, "admin", key.ID)
			if err != nil || !k.RevokedAt.Equal(at) {
				t.Fatalf("second RevokeAPIKey = %+v, %v; want unchanged", k, err)
			}
			if n := countAction(auditEvents(t, e, rp.ID), "api_key.revoked"); n != 1 {
				t.Errorf("%d api_key.revoked events, want 1", n)
			}
			if _, _, err := e.svc.Authenticate(e.ctx, token); !errors.Is(err, relyingparty.ErrRevokedAPIKey) {
				t.Errorf("Authenticate revoked: %v", err)
			}
			// A wrong secret for a revoked key says nothing about revocation.
			if _, _, err := e.svc.Authenticate(e.ctx, key.Prefix+"."+strings.Repeat("A", 43)); !errors.Is(err, relyingparty.ErrBadAPIKey) {
				t.Errorf("Authenticate revoked with a wrong secret: %v, want ErrBadAPIKey", err)
			}
			active, err := e.svc.ListAPIKeys(e.ctx, rp.ID, false)
			if err != nil || len(active) != 0 {
				t.Errorf("ListAPIKeys active = %+v, %v", active, err)
			}
			all, err := e.svc.ListAPIKeys(e.ctx, "portal", true)
			if err != nil || len(all) != 1 {
				t.Errorf("ListAPIKeys all = %+v, %v", all, err)
			}
			for _, ref := range []string{"key_nothere", "pak_nothere"} {
				_, err := e.svc.RevokeAPIKey(e.ctx, "admin", ref)
				wantFault(t, err, fault.NotFound, "")
			}
		})

		t.Run("unknown relying party", func(t *testing.T) {
			_, _, err := e.svc.CreateAPIKey(e.ctx, "admin", "nobody", "")
			wantFault(t, err, fault.NotFound, "")
			_, err = e.svc.ListAPIKeys(e.ctx, "nobody", true)
			wantFault(t, err, fault.NotFound, "")
		})
	})
}
