package feed

import (
	"context"
	"log/slog"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// RelayConfig tunes the event relay. Zero fields take the defaults shown.
type RelayConfig struct {
	// ScanEvery is how often the relay looks at the outbox (250 ms): the
	// feed's latency.
	ScanEvery time.Duration
	// Hold is how long a relay keeps other relays off the events it took
	// (30 s); well inside DuplicateWindow.
	Hold time.Duration
	// Batch is the most events published at once (256).
	Batch int
	// Fault is for tests: asked at "published" (the stream stored the
	// events, the webhooks are not queued); true drops the rest of the
	// work there, as a replica killed at that point would.
	Fault func(stage string) bool
}

func (c RelayConfig) withDefaults() RelayConfig {
	if c.ScanEvery <= 0 {
		c.ScanEvery = 250 * time.Millisecond
	}
	if c.Hold <= 0 {
		c.Hold = 30 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 256
	}
	return c
}

// Relay moves events from the outbox to the stream and to whoever else
// must have them before they leave the outbox (the webhook queue).
type Relay struct {
	store  store.EventOutbox
	stream *Stream
	then   func(context.Context, []store.FeedEvent) error
	cfg    RelayConfig
	now    func() time.Time
	log    *slog.Logger
}

// NewRelay returns a relay onto stream. then, if set, is given each batch
// once the stream has stored it; an error keeps the batch in the outbox
// for the next scan, so then must accept a batch twice.
func NewRelay(st store.EventOutbox, stream *Stream, then func(context.Context, []store.FeedEvent) error, cfg RelayConfig, now func() time.Time, log *slog.Logger) *Relay {
	return &Relay{store: st, stream: stream, then: then, cfg: cfg.withDefaults(), now: now, log: log}
}

// Run relays every ScanEvery until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.ScanEvery)
	defer t.Stop()
	for {
		if _, err := r.RelayOnce(ctx); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "relay security events; they stay in the outbox", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// RelayOnce publishes what the outbox holds that no relay holds and
// returns how many events left it. It is safe on every replica at once: a
// relay that dies midway leaves its events to others once its hold ends,
// the stream stores a repeated id once and the webhook queue queues it
// once.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	n := 0
	for {
		now := r.now().UTC()
		evs, err := r.store.ClaimEvents(ctx, now, now.Add(r.cfg.Hold), r.cfg.Batch)
		if err != nil || len(evs) == 0 {
			return n, err
		}
		if err := r.stream.Publish(ctx, evs); err != nil {
			return n, err
		}
		if r.cfg.Fault != nil && r.cfg.Fault("published") {
			return n, nil
		}
		if r.then != nil {
			if err := r.then(ctx, evs); err != nil {
				return n, err
			}
		}
		ids := make([]string, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		if err := r.store.DeleteEvents(ctx, ids); err != nil {
			return n, err
		}
		n += len(evs)
		if len(evs) < r.cfg.Batch {
			return n, nil
		}
	}
}
