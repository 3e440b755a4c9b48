package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Rolling-window rate limits and guess budgets.

func take(t *testing.T, s store.Store, at time.Time, limits ...store.RateLimit) (store.RateTicket, *store.LimitError) {
	t.Helper()
	tk, err := s.TakeRate(ctxT(t), at, limits...)
	var le *store.LimitError
	if errors.As(err, &le) {
		if !errors.Is(err, store.ErrLimited) {
			t.Errorf("TakeRate refusal %v is not ErrLimited", err)
		}
		return tk, le
	}
	if err != nil {
		t.Fatalf("TakeRate(%v): %v", limits, err)
	}
	return tk, nil
}

func countRate(t *testing.T, s store.Store, key string, at time.Time, window time.Duration) int {
	t.Helper()
	n, err := s.CountRate(ctxT(t), key, at, window)
	if err != nil {
		t.Fatalf("CountRate(%q): %v", key, err)
	}
	return n
}

func testRateTake(t *testing.T, s store.Store) {
	hour := store.RateLimit{Key: "sms:" + phoneA, Window: time.Hour, Max: 3}
	var refused []bool
	for i := range 5 {
		_, le := take(t, s, t0.Add(time.Duration(i)*time.Minute), hour)
		refused = append(refused, le != nil)
	}
	wantEqual(t, "refusals at limit 3", refused, []bool{false, false, false, true, true})
	// The window rolls: the first event (t0) leaves it at t0+1h, not at the
	// next clock hour.
	_, le := take(t, s, t0.Add(59*time.Minute), hour)
	if le == nil {
		t.Fatal("take within an hour of three events allowed")
	}
	wantEqual(t, "refusal says when the oldest event leaves", le.Until, t0.Add(time.Hour))
	wantEqual(t, "refusal key", le.Key, hour.Key)
	if _, le := take(t, s, t0.Add(time.Hour), hour); le != nil {
		t.Errorf("take an hour after the first event refused: %v", le)
	}
	wantEqual(t, "events in the last hour", countRate(t, s, hour.Key, t0.Add(time.Hour), time.Hour), 3)

	// Other keys count on their own; keys are case sensitive.
	if _, le := take(t, s, t0, store.RateLimit{Key: "sms:" + phoneB, Window: time.Hour, Max: 1}); le != nil {
		t.Error("take of another key refused")
	}
	if _, le := take(t, s, t0.Add(time.Minute), store.RateLimit{Key: "SMS:" + phoneA, Window: time.Hour, Max: 1}); le != nil {
		t.Error("take of a key differing in case refused")
	}
	// Max 0 refuses and records nothing.
	if _, le := take(t, s, t0, store.RateLimit{Key: "zero", Window: time.Hour, Max: 0}); le == nil {
		t.Error("take with Max 0 allowed")
	}
	wantEqual(t, "events after Max 0", countRate(t, s, "zero", t0, time.Hour), 0)
	// All or nothing: a full second limit records nothing for the first.
	free := store.RateLimit{Key: "free", Window: time.Hour, Max: 10}
	_, le = take(t, s, t0.Add(30*time.Minute), free, hour)
	if le == nil || le.Index != 1 {
		t.Fatalf("take with a full second limit: %v, want refusal of limit 1", le)
	}
	wantEqual(t, "events of the free limit after a refusal", countRate(t, s, "free", t0.Add(30*time.Minute), time.Hour), 0)
	if _, err := s.TakeRate(ctxT(t), t0, store.RateLimit{Key: "", Window: time.Hour, Max: 1}); err == nil || errors.Is(err, store.ErrLimited) {
		t.Errorf("TakeRate without key: %v, want a plain error", err)
	}
}

func testRateSharedKeys(t *testing.T, s store.Store) {
	// An hour and a day limit on one key: one event counts for both.
	hour := store.RateLimit{Key: "n", Window: time.Hour, Max: 2}
	day := store.RateLimit{Key: "n", Window: 24 * time.Hour, Max: 3}
	for i := range 2 {
		if _, le := take(t, s, t0.Add(time.Duration(i)*time.Minute), hour, day); le != nil {
			t.Fatalf("take %d refused: %v", i, le)
		}
	}
	_, le := take(t, s, t0.Add(2*time.Minute), hour, day)
	if le == nil || le.Index != 0 {
		t.Fatalf("third take in the hour: %v, want refusal by the hour limit", le)
	}
	if _, le := take(t, s, t0.Add(2*time.Hour), hour, day); le != nil {
		t.Fatalf("take after the hour: %v", le)
	}
	_, le = take(t, s, t0.Add(3*time.Hour), hour, day)
	if le == nil || le.Index != 1 {
		t.Fatalf("fourth take in the day: %v, want refusal by the day limit", le)
	}
	wantEqual(t, "day refusal until the oldest leaves", le.Until, t0.Add(24*time.Hour))
	wantEqual(t, "events in the day", countRate(t, s, "n", t0.Add(3*time.Hour), 24*time.Hour), 3)
}

func testRateGiveBack(t *testing.T, s store.Store) {
	l := store.RateLimit{Key: "g", Window: time.Hour, Max: 1}
	tk, le := take(t, s, t0, l)
	if le != nil || len(tk.IDs) != 1 {
		t.Fatalf("take: %v %v", tk, le)
	}
	if _, le := take(t, s, t0, l); le == nil {
		t.Fatal("second take allowed")
	}
	if err := s.GiveBackRate(ctxT(t), tk); err != nil {
		t.Fatal(err)
	}
	if err := s.GiveBackRate(ctxT(t), tk); err != nil {
		t.Errorf("second give back: %v", err)
	}
	if _, le := take(t, s, t0, l); le != nil {
		t.Errorf("take after give back refused: %v", le)
	}
}

func testRateDeleteBefore(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	take(t, s, t0, store.RateLimit{Key: "short", Window: time.Minute, Max: 5})
	take(t, s, t0, store.RateLimit{Key: "long", Window: time.Hour, Max: 5}, store.RateLimit{Key: "long", Window: time.Minute, Max: 5})
	n, err := s.DeleteRateEventsBefore(ctx, t0.Add(time.Minute), 100)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "deleted after a minute", n, int64(1))
	wantEqual(t, "long event kept", countRate(t, s, "long", t0.Add(time.Minute), time.Hour), 1)
	n, err = s.DeleteRateEventsBefore(ctx, t0.Add(time.Hour), 100)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "deleted after an hour", n, int64(1))
	if _, le := take(t, s, t0.Add(time.Hour), store.RateLimit{Key: "long", Window: time.Hour, Max: 1}); le != nil {
		t.Errorf("take after delete: %v", le)
	}
}

func spend(t *testing.T, s store.Store, b store.GuessBudget, at time.Time) (store.GuessState, *store.LimitError) {
	t.Helper()
	g, err := s.SpendGuess(ctxT(t), b, at)
	var le *store.LimitError
	if errors.As(err, &le) {
		return g, le
	}
	if err != nil {
		t.Fatalf("SpendGuess(%q): %v", b.Key, err)
	}
	return g, nil
}

func testGuessSpend(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	locks := []time.Duration{0, time.Minute, 5 * time.Minute}
	b := store.GuessBudget{Key: "backup:" + phoneA, Max: 4, Lockout: func(n int) time.Duration { return locks[min(n, len(locks))-1] }}
	g, err := s.GetGuesses(ctx, b.Key)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "untouched budget", g, store.GuessState{Key: b.Key})

	g, le := spend(t, s, b, t0)
	if le != nil {
		t.Fatalf("first spend refused: %v", le)
	}
	wantEqual(t, "after one spend", g, store.GuessState{Key: b.Key, Failures: 1, UpdatedAt: t0})
	// The second failure locks for a minute at the moment it is spent.
	g, le = spend(t, s, b, t0)
	if le != nil {
		t.Fatalf("second spend refused: %v", le)
	}
	wantEqual(t, "lock of the second spend", g.LockedUntil, t0.Add(time.Minute))
	_, le = spend(t, s, b, t0.Add(59*time.Second))
	if le == nil || le.Exhausted || !le.Until.Equal(t0.Add(time.Minute)) {
		t.Fatalf("spend while locked: %+v, want refusal until the lock ends", le)
	}
	if g, _ := s.GetGuesses(ctx, b.Key); g.Failures != 2 {
		t.Errorf("a refused spend counted: %d failures", g.Failures)
	}
	// A right answer gives every try back.
	if err := s.ResetGuesses(ctx, b.Key, t0); err != nil {
		t.Fatal(err)
	}
	if g, le := spend(t, s, b, t0); le != nil || g.Failures != 1 {
		t.Fatalf("spend after reset: %+v %v", g, le)
	}
	for i := range 3 {
		at := t0.Add(time.Duration(i+1) * time.Hour)
		if _, le := spend(t, s, b, at); le != nil {
			t.Fatalf("spend %d: %v", i+2, le)
		}
	}
	_, le = spend(t, s, b, t0.Add(10*time.Hour))
	if le == nil || !le.Exhausted {
		t.Fatalf("spend past Max: %+v, want exhausted", le)
	}
	// Without Max, only locks.
	nb := store.GuessBudget{Key: "nomax"}
	for i := range 10 {
		if _, le := spend(t, s, nb, t0); le != nil {
			t.Fatalf("spend %d without a cap: %v", i, le)
		}
	}
}

func testGuessDeleteBefore(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	spend(t, s, store.GuessBudget{Key: "old"}, t0)
	spend(t, s, store.GuessBudget{Key: "locked", Lockout: func(int) time.Duration { return 48 * time.Hour }}, t0)
	spend(t, s, store.GuessBudget{Key: "new"}, t2)
	n, err := s.DeleteGuessesBefore(ctx, t1, 100)
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "deleted", n, int64(1))
	for key, want := range map[string]int{"old": 0, "locked": 1, "new": 1} {
		g, err := s.GetGuesses(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		wantEqual(t, "failures of "+key, g.Failures, want)
	}
}

// manyRacers is how many calls the limit tests release at once.
const manyRacers = 200

// Burst runs call n times in parallel, released together, and returns the
// errors in order: the shape of every concurrency test.
func Burst(n int, call func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = call(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

func countAdmitted(t *testing.T, what string, errs []error) int {
	t.Helper()
	n := 0
	for i, err := range errs {
		switch {
		case err == nil:
			n++
		case !errors.Is(err, store.ErrLimited):
			t.Errorf("%s: racer %d: %v, want nil or ErrLimited", what, i, err)
		}
	}
	return n
}

func testConcurrentTakeRate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const limit = 7
	// Two limits over overlapping keys in different orders: no deadlock,
	// and neither passes its limit.
	a := store.RateLimit{Key: "a", Window: time.Hour, Max: limit}
	b := store.RateLimit{Key: "b", Window: time.Hour, Max: 100}
	errs := Burst(manyRacers, func(i int) error {
		ls := []store.RateLimit{a, b}
		if i%2 == 1 {
			ls = []store.RateLimit{b, a}
		}
		_, err := s.TakeRate(ctx, t0.Add(time.Duration(i)*time.Microsecond), ls...)
		return err
	})
	wantEqual(t, "takes admitted", countAdmitted(t, "TakeRate", errs), limit)
	wantEqual(t, "events of a", countRate(t, s, "a", t1, time.Hour), limit)
	wantEqual(t, "events of b", countRate(t, s, "b", t1, time.Hour), limit)
}

func testConcurrentSpendGuess(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	b := store.GuessBudget{Key: "racy", Max: 5, Lockout: func(n int) time.Duration {
		if n >= 2 {
			return time.Minute
		}
		return 0
	}}
	errs := Burst(manyRacers, func(int) error {
		_, err := s.SpendGuess(ctx, b, t0)
		return err
	})
	// Two spends before the first lock, whatever the interleaving.
	wantEqual(t, "spends admitted before the lock", countAdmitted(t, "SpendGuess", errs), 2)
	nb := store.GuessBudget{Key: "capped", Max: 5}
	errs = Burst(manyRacers, func(int) error {
		_, err := s.SpendGuess(ctx, nb, t0)
		return err
	})
	wantEqual(t, "spends admitted by the cap", countAdmitted(t, "SpendGuess", errs), 5)
	g, err := s.GetGuesses(ctx, "capped")
	if err != nil {
		t.Fatal(err)
	}
	wantEqual(t, "failures counted", g.Failures, 5)
}

func testConcurrentPutPairingPhrase(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const n = 50
	errs := Burst(n, func(i int) error {
		return s.PutPairingPhrase(ctx, newPhrase(fmt.Sprintf("phrase-%d", i), "d1", t0))
	})
	puts := 0
	for i, err := range errs {
		switch {
		case err == nil:
			puts++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("racer %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if puts == 0 {
		t.Fatal("no PutPairingPhrase succeeded")
	}
	live := 0
	for i := range n {
		if _, err := s.ClaimPairingPhrase(ctx, []byte(fmt.Sprintf("phrase-%d", i)), t1); err == nil {
			live++
		}
	}
	wantEqual(t, "live phrases of the device", live, 1)
}
