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

// RunRecheck rechecks, once per period (with up to a fifth of it of
// jitter, so replicas do not query in step), every key this Hub has
// watchers for, in batches through check, and wakes the watchers of the
// keys that changed with a nil message ("read again"). It replaces a timer
// per waiter: the idle cost is one query per RecheckBatch watched keys per
// period, not a read per waiter. It returns when ctx ends; a failed check
// is logged and tried again next period.
func (h *Hub) RunRecheck(ctx context.Context, period time.Duration, check Check) error {
	if period <= 0 {
		return nil
	}
	t := time.NewTimer(jitter(period))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		h.Recheck(ctx, check)
		t.Reset(jitter(period))
	}
}

// Recheck runs one round of RunRecheck now.
func (h *Hub) Recheck(ctx context.Context, check Check) {
	keys := h.Keys()
	for batch := range slices.Chunk(keys, RecheckBatch) {
		changed, err := check(ctx, batch)
		if err != nil {
			if ctx.Err() == nil {
				h.logger.WarnContext(ctx, "events: recheck", "prefix", h.prefix, "keys", len(batch), "error", err)
			}
			continue
		}
		for _, k := range changed {
			h.dispatch(k, News{})
		}
	}
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
