package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Conformance cases for store.PushOutbox.

func pushIDs(ps []store.QueuedPush) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func claim(t *testing.T, s store.Store, createdBy, now, until time.Time, limit int) []store.QueuedPush {
	t.Helper()
	ps, err := s.ClaimPushes(ctxT(t), createdBy, now, until, limit)
	if err != nil {
		t.Fatalf("ClaimPushes: %v", err)
	}
	return ps
}

func testPushOutbox(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	jobs := []store.QueuedPush{
		{ID: "req-b:dev-1", Job: []byte(`{"n":1}`), CreatedAt: t1},
		{ID: "req-a:dev-1", Job: []byte(`{"n":2}`), CreatedAt: t0},
		{ID: "req-a:dev-2", Job: []byte(`{"n":3}`), CreatedAt: t0},
	}
	if err := s.AddPushes(ctx, jobs); err != nil {
		t.Fatalf("AddPushes: %v", err)
	}
	if err := s.AddPushes(ctx, nil); err != nil {
		t.Fatalf("AddPushes(nil): %v", err)
	}
	if err := s.AddPushes(ctx, jobs[:1]); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("AddPushes of a taken id = %v, want ErrConflict", err)
	}
	// Only jobs created by createdBy, oldest first, the job kept as given.
	got := claim(t, s, t0, t0, t0.Add(time.Minute), 10)
	wantEqual(t, "claimed ids", pushIDs(got), []string{"req-a:dev-1", "req-a:dev-2"})
	wantEqual(t, "job bytes", string(got[0].Job), `{"n":2}`)
	wantEqual(t, "created at", got[0].CreatedAt, t0)
	// Held jobs are skipped until their hold ends.
	wantEqual(t, "claim while held", pushIDs(claim(t, s, t2, t0.Add(30*time.Second), t2, 10)), []string{"req-b:dev-1"})
	wantEqual(t, "claim while all held", pushIDs(claim(t, s, t2, t0.Add(59*time.Second), t2, 10)), []string{})
	// The first hold ended at t0+1m; the second (t2) not yet.
	wantEqual(t, "claim after the hold", pushIDs(claim(t, s, t2, t1, t2, 1)), []string{"req-a:dev-1"})
	if err := s.DeletePushes(ctx, []string{"req-a:dev-1", "req-b:dev-1", "missing"}); err != nil {
		t.Fatalf("DeletePushes: %v", err)
	}
	if err := s.DeletePushes(ctx, nil); err != nil {
		t.Fatalf("DeletePushes(nil): %v", err)
	}
	wantEqual(t, "left after delete", pushIDs(claim(t, s, t3, t3, t3.Add(time.Minute), 10)), []string{"req-a:dev-2"})
	// A released job is claimed again at once; a held one is not.
	wantEqual(t, "claim while held", pushIDs(claim(t, s, t3, t3, t3.Add(time.Minute), 10)), []string{})
	if err := s.ReleasePushes(ctx, []string{"req-a:dev-2", "missing"}); err != nil {
		t.Fatalf("ReleasePushes: %v", err)
	}
	if err := s.ReleasePushes(ctx, nil); err != nil {
		t.Fatalf("ReleasePushes(nil): %v", err)
	}
	wantEqual(t, "claim after release", pushIDs(claim(t, s, t3, t3, t3.Add(time.Minute), 10)), []string{"req-a:dev-2"})
}

// testPushOutboxInTx: pushes added in a transaction that rolls back are gone
// with it.
func testPushOutboxInTx(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Store) error {
		if err := tx.AddPushes(ctx, []store.QueuedPush{{ID: "r:d", Job: []byte("{}"), CreatedAt: t0}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v", err)
	}
	wantEqual(t, "after rollback", pushIDs(claim(t, s, t1, t1, t2, 10)), []string{})
}

// testConcurrentClaimPushes: relays claiming at once get disjoint jobs.
func testConcurrentClaimPushes(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const n = 60
	var jobs []store.QueuedPush
	for i := range n {
		jobs = append(jobs, store.QueuedPush{ID: fmt.Sprintf("r%02d:d", i), Job: []byte("{}"), CreatedAt: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	if err := s.AddPushes(ctx, jobs); err != nil {
		t.Fatalf("AddPushes: %v", err)
	}
	const callers = 3
	got := make([][]string, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			<-start
			for {
				ps, err := s.ClaimPushes(ctx, t1, t1, t2, 4)
				if err != nil {
					errs[c] = err
					return
				}
				if len(ps) == 0 {
					return
				}
				got[c] = append(got[c], pushIDs(ps)...)
			}
		})
	}
	close(start)
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", c, err)
		}
	}
	seen := map[string]int{}
	for c := range callers {
		for _, id := range got[c] {
			if prev, ok := seen[id]; ok {
				t.Errorf("push %s claimed by caller %d and caller %d", id, prev, c)
			}
			seen[id] = c
		}
	}
	if len(seen) != n {
		t.Errorf("%d pushes claimed, want %d", len(seen), n)
	}
}
