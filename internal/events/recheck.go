package events

import (
	"context"
	"math/rand/v2"
	"slices"
	"time"
)

// RecheckBatch is how many keys one Check call is given at most, so a
// replica's whole recheck is a few queries of a few hundred ids each.
const RecheckBatch = 500

// Check reports which of keys changed in the source of truth (for requests:
// are no longer pending, or have expired). It is given at most RecheckBatch
// keys a call.
type Check func(ctx context.Context, keys []string) ([]string, error)

// ChangedSince reports the keys that changed at or after since, at most
// limit of them (for requests: decided, cancelled or expired since, on an
// index). Its cost follows the changes, not the keys watched.
type ChangedSince func(ctx context.Context, since time.Time, limit int) ([]string, error)

// Rechecker is what RunRecheck asks each round.
type Rechecker struct {
	// Check is the full round: every watched key, in batches.
	Check Check
	// Since, when set, is the cheap round: what changed since shortly
	// before the previous round. Rounds are cheap ones, with a full one
	// every FullRecheckEvery rounds, after a failed or overfull cheap one,
	// and first.
	Since ChangedSince
	// Now is the clock the changes are stamped with (the engine's).
	Now func() time.Time
}

// FullRecheckEvery is how often (in rounds) RunRecheck checks every watched
// key even with a cheap round at hand: the net under the cheap round, for
// a change stamped by a replica whose clock is off by more than
// RecheckOverlap.
const FullRecheckEvery = 15

// RecheckOverlap is how far before the previous round a cheap round looks:
// it covers replicas' clocks that disagree, and a change stamped before a
// slow commit made it visible.
const RecheckOverlap = 10 * time.Second

// sinceLimit bounds a cheap round; more changes than this make a full
// round instead (under such load the full round is the cheaper one).
const sinceLimit = 10000

// RunRecheck rechecks, once per period (with up to a fifth of it of
// jitter, so replicas do not query in step), what this Hub's watchers wait
// for, and wakes the watchers of the keys that changed with a nil message
// ("read again"): the net for news that NATS lost. It replaces a timer per
// waiter. A full round costs one query per RecheckBatch watched keys; a
// cheap round (r.Since) one query for what changed since the last round,
// whatever the number of watchers, so an idle replica with many waiters
// costs a full round's queries only every FullRecheckEvery periods. It
// returns when ctx ends; a failed check is logged and tried again.
func (h *Hub) RunRecheck(ctx context.Context, period time.Duration, r Rechecker) error {
	if period <= 0 {
		return nil
	}
	t := time.NewTimer(jitter(period))
	defer t.Stop()
	var last time.Time // start of the previous round that completed
	for round := 0; ; round++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var start time.Time
		if r.Now != nil {
			start = r.Now()
		}
		ok := true
		if r.Since == nil || r.Now == nil || round%FullRecheckEvery == 0 ||
			!h.recheckSince(ctx, r.Since, last.Add(-RecheckOverlap)) {
			ok = h.Recheck(ctx, r.Check)
		}
		if ok {
			last = start
		} else {
			round = -1 // a failed full round is tried again next period
		}
		t.Reset(jitter(period))
	}
}

// recheckSince runs a cheap round and reports whether it did the job (false:
// it failed or found more than sinceLimit changes, so a full round is due).
func (h *Hub) recheckSince(ctx context.Context, since ChangedSince, from time.Time) bool {
	if h.Len() == 0 {
		return true // nobody waits: nothing to ask
	}
	changed, err := since(ctx, from, sinceLimit)
	if err != nil {
		if ctx.Err() == nil {
			h.logger.WarnContext(ctx, "events: recheck what changed; checking every watched key instead", "prefix", h.prefix, "error", err)
		}
		return false
	}
	if len(changed) >= sinceLimit {
		return false
	}
	for _, k := range changed {
		h.dispatch(k, News{}) // a key nobody here watches costs a map lookup
	}
	return true
}

// Recheck runs one full round of RunRecheck now and reports whether every
// batch was checked.
func (h *Hub) Recheck(ctx context.Context, check Check) bool {
	ok := true
	keys := h.Keys()
	for batch := range slices.Chunk(keys, RecheckBatch) {
		changed, err := check(ctx, batch)
		if err != nil {
			if ctx.Err() == nil {
				h.logger.WarnContext(ctx, "events: recheck", "prefix", h.prefix, "keys", len(batch), "error", err)
			}
			ok = false
			continue
		}
		for _, k := range changed {
			h.dispatch(k, News{})
		}
	}
	return ok
}

// Keys returns the keys that have watchers now.
func (h *Hub) Keys() []string {
	var keys []string
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		for k := range s.watchers {
			keys = append(keys, k)
		}
		s.mu.RUnlock()
	}
	return keys
}

// jitter is period plus up to a fifth of it at random.
func jitter(period time.Duration) time.Duration {
	return period + rand.N(period/5+1)
}
