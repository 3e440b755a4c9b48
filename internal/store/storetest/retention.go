package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Conformance cases for store.Retention. They run as phases on one Store
// (Run gives each entry a fresh one); every phase first drains what earlier
// phases left, so its counts are exact.

// farFuture is a cutoff after everything the tests create.
var farFuture = t0.AddDate(100, 0, 0)

// retentionDelete is one store.Retention method, by name.
type retentionDelete struct {
	name string
	fn   func(ctx context.Context, cutoff time.Time, limit int) (int64, error)
}

func retentionDeletes(s store.Store) []retentionDelete {
	return []retentionDelete{
		{"DeleteExpiredVerifications", s.DeleteExpiredVerifications},
		{"DeleteFinishedRequests", s.DeleteFinishedRequests},
		{"DeleteOutboxMessagesBefore", s.DeleteOutboxMessagesBefore},
		{"DeleteAuditEventsBefore", s.DeleteAuditEventsBefore},
		{"DeleteExpiredPairingPhrases", s.DeleteExpiredPairingPhrases},
	}
}

func testRetention(t *testing.T, s store.Store) {
	for _, p := range []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Arguments", testRetentionArguments},
		{"Verifications", testRetentionVerifications},
		{"Requests", testRetentionRequests},
		{"Outbox", testRetentionOutbox},
		{"Audit", testRetentionAudit},
		{"PairingPhrases", testRetentionPairingPhrases},
		{"Batches", testRetentionBatches},
		{"InTx", testRetentionInTx},
		{"Concurrent", testConcurrentRetention},
	} {
		t.Run(p.name, func(t *testing.T) {
			drainRetention(t, s)
			p.fn(t, s)
		})
	}
}

// drainRetention deletes everything the Retention methods can delete.
func drainRetention(t *testing.T, s store.Store) {
	t.Helper()
	for _, d := range retentionDeletes(s) {
		for {
			n, err := d.fn(ctxT(t), farFuture, 1000)
			if err != nil {
				t.Fatalf("drain: %s: %v", d.name, err)
			}
			if n == 0 {
				break
			}
		}
	}
}

// mustDelete calls a Retention method and checks how many rows it deleted.
func mustDelete(t *testing.T, what string, fn func(context.Context, time.Time, int) (int64, error), cutoff time.Time, limit int, want int64) {
	t.Helper()
	n, err := fn(ctxT(t), cutoff, limit)
	if err != nil {
		t.Fatalf("%s(%v, %d): %v", what, cutoff, limit, err)
	}
	if n != want {
		t.Errorf("%s(%v, %d) deleted %d rows, want %d", what, cutoff, limit, n, want)
	}
}

func testRetentionArguments(t *testing.T, s store.Store) {
	cancelled, cancel := context.WithCancel(ctxT(t))
	cancel()
	for _, d := range retentionDeletes(s) {
		if _, err := d.fn(ctxT(t), time.Time{}, 10); err == nil {
			t.Errorf("%s with a zero cutoff: no error", d.name)
		}
		for _, limit := range []int{0, -1} {
			if _, err := d.fn(ctxT(t), t0, limit); err == nil {
				t.Errorf("%s with limit %d: no error", d.name, limit)
			}
		}
		if _, err := d.fn(cancelled, t0, 10); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", d.name, err)
		}
		mustDelete(t, d.name+" on nothing", d.fn, t0, 10, 0)
	}
}

func verificationGone(t *testing.T, s store.Store, id string) bool {
	t.Helper()
	_, err := s.GetVerification(ctxT(t), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true
	case err != nil:
		t.Fatalf("GetVerification(%q): %v", id, err)
	}
	return false
}

func testRetentionVerifications(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustVerification(t, s, newVerification("v-used", phoneA, t0)) // expires t0+10m
	if err := s.UseVerification(ctx, "v-used", t1, 5); err != nil {
		t.Fatalf("UseVerification: %v", err)
	}
	mustVerification(t, s, newVerification("v-unused", phoneB, t0)) // expires t0+10m
	mustVerification(t, s, newVerification("v-later", phoneA, t1))  // expires t1+10m
	mustVerification(t, s, newVerification("v-fresh", phoneA, t3))  // expires t3+10m

	del := s.DeleteExpiredVerifications
	mustDelete(t, "DeleteExpiredVerifications before any expired", del, t0.Add(10*time.Minute), 10, 0)
	mustDelete(t, "DeleteExpiredVerifications", del, t1.Add(10*time.Minute), 10, 2)
	for id, gone := range map[string]bool{"v-used": true, "v-unused": true, "v-later": false, "v-fresh": false} {
		if got := verificationGone(t, s, id); got != gone {
			t.Errorf("verification %s gone = %v, want %v (expiring exactly at the cutoff is kept)", id, got, gone)
		}
	}
	mustDelete(t, "DeleteExpiredVerifications again", del, t1.Add(10*time.Minute), 10, 0)
	mustDelete(t, "DeleteExpiredVerifications later", del, t3.Add(10*time.Minute+time.Microsecond), 10, 2)
}

func requestGone(t *testing.T, s store.Store, id string) bool {
	t.Helper()
	_, err := s.GetRequest(ctxT(t), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return true
	case err != nil:
		t.Fatalf("GetRequest(%q): %v", id, err)
	}
	return false
}

func mustDecide(t *testing.T, s store.Store, id, status, reason string, at time.Time) {
	t.Helper()
	if err := s.DecideRequest(ctxT(t), store.Decision{RequestID: id, Status: status, Reason: reason, At: at}); err != nil {
		t.Fatalf("DecideRequest(%q, %s): %v", id, status, err)
	}
}

func testRetentionRequests(t *testing.T, s store.Store) {
	// Long expired but still PENDING (no sweeper ran): never deleted.
	pending := newRequest("r-pending", "rp-1", "alice", t0.Add(-24*time.Hour))
	mustRequest(t, s, pending, "d1", "d2")
	mustRequest(t, s, newRequest("r-approved", "rp-1", "alice", t0), "d1", "d2")
	mustDecide(t, s, "r-approved", store.StatusApproved, store.ReasonUser, t0)
	mustRequest(t, s, newRequest("r-expired", "rp-1", "bob", t0), "d3")
	mustDecide(t, s, "r-expired", store.StatusExpired, store.ReasonTimeout, t1)
	mustRequest(t, s, newRequest("r-at-cutoff", "rp-1", "bob", t1), "d3")
	mustDecide(t, s, "r-at-cutoff", store.StatusDenied, store.ReasonUser, t2)
	mustRequest(t, s, newRequest("r-fresh", "rp-2", "carol", t2), "d4")
	mustDecide(t, s, "r-fresh", store.StatusCancelled, store.ReasonCancelled, t3)

	del := s.DeleteFinishedRequests
	mustDelete(t, "DeleteFinishedRequests", del, t2, 10, 2)
	for id, gone := range map[string]bool{"r-pending": false, "r-approved": true, "r-expired": true, "r-at-cutoff": false, "r-fresh": false} {
		if got := requestGone(t, s, id); got != gone {
			t.Errorf("request %s gone = %v, want %v", id, got, gone)
		}
	}
	wantEqual(t, "targets of a deleted request", len(listTargets(t, s, "r-approved")), 0)
	wantEqual(t, "targets of a deleted request", len(listTargets(t, s, "r-expired")), 0)
	wantEqual(t, "targets of the pending request", len(listTargets(t, s, "r-pending")), 2)
	wantEqual(t, "targets of a kept request", len(listTargets(t, s, "r-at-cutoff")), 1)
	mustDelete(t, "DeleteFinishedRequests again", del, t2, 10, 0)

	mustDelete(t, "DeleteFinishedRequests far later", del, farFuture, 10, 2)
	if requestGone(t, s, "r-pending") {
		t.Error("a PENDING request was deleted")
	}
	wantEqual(t, "targets of the pending request", len(listTargets(t, s, "r-pending")), 2)
	// The pending request still works: it can be expired and then deleted.
	mustDecide(t, s, "r-pending", store.StatusExpired, store.ReasonTimeout, t3)
	mustDelete(t, "DeleteFinishedRequests after expiry", del, farFuture, 10, 1)
	wantEqual(t, "targets left", len(listTargets(t, s, "r-pending")), 0)
}

func testRetentionOutbox(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	var ids []int64
	for _, at := range []time.Time{t0, {}, t1, t2} {
		id, err := s.AddOutboxMessage(ctx, store.OutboxMessage{PhoneNumber: phoneA, Body: "Your code is 123456", CreatedAt: at})
		if err != nil {
			t.Fatalf("AddOutboxMessage: %v", err)
		}
		ids = append(ids, id)
	}
	del := s.DeleteOutboxMessagesBefore
	mustDelete(t, "DeleteOutboxMessagesBefore", del, t1, 10, 2) // t0 and the one without a time
	left, err := s.ListOutboxMessages(ctx, "", 10)
	if err != nil {
		t.Fatalf("ListOutboxMessages: %v", err)
	}
	wantEqual(t, "outbox left", outboxIDs(left), []int64{ids[3], ids[2]})
	mustDelete(t, "DeleteOutboxMessagesBefore again", del, t1, 10, 0)
}

func testRetentionAudit(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	var ids []int64
	for i, at := range []time.Time{t0, {}, t1, t2} {
		id, err := s.AppendAuditEvent(ctx, store.AuditEvent{Time: at, Actor: "admin", Action: fmt.Sprintf("a%d", i)})
		if err != nil {
			t.Fatalf("AppendAuditEvent: %v", err)
		}
		ids = append(ids, id)
	}
	del := s.DeleteAuditEventsBefore
	mustDelete(t, "DeleteAuditEventsBefore", del, t1, 10, 1)
	list := func() []int64 {
		t.Helper()
		es, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: 100})
		if err != nil {
			t.Fatalf("ListAuditEvents: %v", err)
		}
		var out []int64
		for _, e := range es {
			if e.ID >= ids[0] { // earlier phases' events without a time stay
				out = append(out, e.ID)
			}
		}
		return out
	}
	wantEqual(t, "audit events left", list(), []int64{ids[3], ids[2], ids[1]})
	mustDelete(t, "DeleteAuditEventsBefore again", del, t1, 10, 0)
	mustDelete(t, "DeleteAuditEventsBefore far later", del, farFuture, 10, 2)
	wantEqual(t, "an event without a time is kept", list(), []int64{ids[1]})
}

func testRetentionPairingPhrases(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// All created at t0, so putting one deletes none of the others.
	short := mustPhrase(t, s, newPhrase("hash-short", "d1", t0)) // expires t0+5m
	if _, err := s.ClaimPairingPhrase(ctx, short.Hash, t1); err != nil {
		t.Fatalf("ClaimPairingPhrase: %v", err)
	}
	mid := newPhrase("hash-mid", "d2", t0)
	mid.ExpiresAt = t0.Add(10 * time.Minute)
	mustPhrase(t, s, mid)
	long := newPhrase("hash-long", "d3", t0)
	long.ExpiresAt = t0.Add(time.Hour)
	mustPhrase(t, s, long)

	del := s.DeleteExpiredPairingPhrases
	mustDelete(t, "DeleteExpiredPairingPhrases", del, mid.ExpiresAt, 10, 1) // mid expires at the cutoff: kept
	mustDelete(t, "DeleteExpiredPairingPhrases again", del, mid.ExpiresAt, 10, 0)
	mustDelete(t, "DeleteExpiredPairingPhrases later", del, mid.ExpiresAt.Add(time.Microsecond), 10, 1)
	// The unexpired phrase is still there and claimable.
	if _, err := s.ClaimPairingPhrase(ctx, long.Hash, t0.Add(20*time.Minute)); err != nil {
		t.Fatalf("ClaimPairingPhrase of a kept phrase: %v", err)
	}
	mustDelete(t, "DeleteExpiredPairingPhrases after all expired", del, long.ExpiresAt.Add(time.Microsecond), 10, 1)
}

// seedOld creates n rows for every Retention method, all past t1.
func seedOld(t *testing.T, s store.Store, n int) {
	t.Helper()
	ctx := ctxT(t)
	for i := range n {
		mustVerification(t, s, newVerification(fmt.Sprintf("v%03d", i), phoneA, t0))
		id := fmt.Sprintf("r%03d", i)
		mustRequest(t, s, newRequest(id, "rp-1", "alice", t0), "d1", "d2")
		mustDecide(t, s, id, store.StatusApproved, store.ReasonUser, t0)
		if _, err := s.AddOutboxMessage(ctx, store.OutboxMessage{PhoneNumber: phoneA, Body: "b", CreatedAt: t0}); err != nil {
			t.Fatalf("AddOutboxMessage: %v", err)
		}
		if _, err := s.AppendAuditEvent(ctx, store.AuditEvent{Time: t0, Action: "x"}); err != nil {
			t.Fatalf("AppendAuditEvent: %v", err)
		}
		mustPhrase(t, s, newPhrase(fmt.Sprintf("hash-%03d", i), fmt.Sprintf("d%03d", i), t0))
	}
}

func testRetentionBatches(t *testing.T, s store.Store) {
	seedOld(t, s, 7)
	cutoff := t1.Add(time.Hour)
	for _, d := range retentionDeletes(s) {
		for i, want := range []int64{3, 3, 1, 0} {
			mustDelete(t, fmt.Sprintf("%s batch %d", d.name, i), d.fn, cutoff, 3, want)
		}
	}
	for i := range 7 {
		if !requestGone(t, s, fmt.Sprintf("r%03d", i)) {
			t.Errorf("request r%03d not deleted", i)
		}
	}
}

// testRetentionInTx: inside a transaction the deletes are part of it.
func testRetentionInTx(t *testing.T, s store.Store) {
	seedOld(t, s, 2)
	cutoff := t1.Add(time.Hour)
	rollback := errors.New("roll back")
	err := s.InTx(ctxT(t), func(tx store.Store) error {
		for _, d := range retentionDeletes(tx) {
			mustDelete(t, d.name+" in a transaction", d.fn, cutoff, 10, 2)
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatalf("InTx = %v, want the callback's error", err)
	}
	if requestGone(t, s, "r000") || verificationGone(t, s, "v000") {
		t.Error("rows deleted in a rolled-back transaction are gone")
	}
	wantEqual(t, "targets after rollback", len(listTargets(t, s, "r000")), 2)
	for _, d := range retentionDeletes(s) {
		mustDelete(t, d.name+" after rollback", d.fn, cutoff, 10, 2)
	}
}

// testConcurrentRetention: two sweepers at once split the rows between
// them, fail on none, and count each row once.
func testConcurrentRetention(t *testing.T, s store.Store) {
	const n = 40
	seedOld(t, s, n)
	cutoff := t1.Add(time.Hour)
	for _, d := range retentionDeletes(s) {
		const callers = 2
		counts := make([]int64, callers)
		errs := make([]error, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				<-start
				for {
					k, err := d.fn(ctxT(t), cutoff, 3)
					if err != nil {
						errs[c] = err
						return
					}
					counts[c] += k
					if k == 0 {
						return
					}
				}
			})
		}
		close(start)
		wg.Wait()
		for c, err := range errs {
			if err != nil {
				t.Errorf("%s: caller %d: %v", d.name, c, err)
			}
		}
		if total := counts[0] + counts[1]; total != n {
			t.Errorf("%s: callers deleted %d and %d rows, %d in all, want %d", d.name, counts[0], counts[1], total, n)
		}
		mustDelete(t, d.name+" after the race", d.fn, cutoff, 100, 0)
	}
	for i := range n {
		if got := listTargets(t, s, fmt.Sprintf("r%03d", i)); len(got) != 0 {
			t.Errorf("request r%03d has %d targets left", i, len(got))
		}
	}
}
