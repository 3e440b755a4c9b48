package events

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestRecheckRounds: the first round checks every watched key; then cheap
// rounds ask what changed since RecheckOverlap before the previous round
// and wake only those keys' watchers; a cheap round that fails or finds too
// much gives way to a full round; every FullRecheckEvery-th round is full.
func TestRecheckRounds(t *testing.T) {
	ctx := testCtx(t)
	hub := newHub(t, startEmbedded(t).Conn(), RequestPrefix)
	chA, cancelA := hub.Watch("a")
	defer cancelA()
	chB, cancelB := hub.Watch("b")
	defer cancelB()

	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var tick atomic.Int64 // Now() is base + n seconds, n counting the calls
	type call struct {
		full  bool
		since time.Time
	}
	calls := make(chan call)
	answers := make(chan []string)
	errSince := errors.New("database away")
	var failNext atomic.Bool
	r := Rechecker{
		Check: func(ctx context.Context, keys []string) ([]string, error) {
			select {
			case calls <- call{full: true}:
			case <-ctx.Done():
			}
			return nil, nil
		},
		Since: func(ctx context.Context, since time.Time, limit int) ([]string, error) {
			select {
			case calls <- call{since: since}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if failNext.Swap(false) {
				return nil, errSince
			}
			select {
			case a := <-answers:
				return a, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		Now: func() time.Time { return base.Add(time.Duration(tick.Add(1)-1) * time.Second) },
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- hub.RunRecheck(runCtx, time.Millisecond, r) }()
	defer func() { stop(); <-done }()

	next := func() call {
		t.Helper()
		select {
		case c := <-calls:
			return c
		case <-ctx.Done():
			t.Fatal("no recheck round")
		}
		return call{}
	}
	// Round 0 (Now = base): full.
	if c := next(); !c.full {
		t.Fatalf("first round %+v, want a full one", c)
	}
	// Round 1 (Now = base+1s): cheap, since base-overlap; wakes b only.
	if c := next(); c.full || !c.since.Equal(base.Add(-RecheckOverlap)) {
		t.Fatalf("second round %+v, want a cheap one since %v", c, base.Add(-RecheckOverlap))
	}
	answers <- []string{"b", "nobody-watches-this"}
	if m := recv(t, ctx, chB); m != nil {
		t.Fatalf("b woken with %q, want nil (read again)", m)
	}
	select {
	case m := <-chA:
		t.Fatalf("a woken with %q though it did not change", m)
	default:
	}
	// Round 2: the cheap round fails, a full one follows at once.
	failNext.Store(true)
	if c := next(); c.full || !c.since.Equal(base.Add(time.Second-RecheckOverlap)) {
		t.Fatalf("third round %+v, want a cheap one since %v", c, base.Add(time.Second-RecheckOverlap))
	}
	if c := next(); !c.full {
		t.Fatalf("after a failed cheap round %+v, want a full one", c)
	}
	// Round 3: too many changes for a cheap round: a full one.
	if c := next(); c.full {
		t.Fatalf("fourth round %+v, want a cheap one", c)
	}
	many := make([]string, sinceLimit)
	for i := range many {
		many[i] = fmt.Sprint("k", i)
	}
	answers <- many
	if c := next(); !c.full {
		t.Fatalf("after an overfull cheap round %+v, want a full one", c)
	}
	// Rounds 4..14 cheap, round 15 full without asking what changed.
	for round := 4; round < FullRecheckEvery; round++ {
		if c := next(); c.full {
			t.Fatalf("round %d %+v, want a cheap one", round, c)
		}
		answers <- nil
	}
	if c := next(); !c.full {
		t.Fatalf("round %d %+v, want a full one", FullRecheckEvery, c)
	}
}
