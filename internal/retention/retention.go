// Package retention deletes what pushauth no longer needs: expired phone
// verifications (full numbers, client addresses), finished requests with
// their targets (addresses, locations, browsers), development outbox
// messages (plaintext codes), old audit events, expired pairing phrases and
// ended rate-limit windows.
//
// A Sweeper runs on every replica. Sweeps are idempotent and the store's
// deletes are safe to run concurrently, so replicas need no coordination;
// the period is jittered so they do not all sweep at the same moment. Each
// delete is bounded (Config.Batch rows), so a large backlog is worked off in
// many short statements instead of one long lock.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Day is 24 hours, for writing retention periods.
const Day = 24 * time.Hour

// Config says how long each kind of data is kept. Zero fields take the
// values of DefaultConfig.
type Config struct {
	// Period is the time between two sweeps of one replica, jittered by
	// ±20%.
	Period time.Duration
	// Requests is how long a finished (not PENDING) request and its targets
	// are kept after it was decided or expired. PENDING requests are kept.
	Requests time.Duration
	// Verifications is how long a phone verification is kept after it
	// expired, used or not.
	Verifications time.Duration
	// Outbox is how long a development outbox message is kept.
	Outbox time.Duration
	// Audit is how long an audit event is kept. It must be at least
	// Requests, so a request's audit trail outlives the request.
	Audit time.Duration
	// Counters is how long a rate-limit counter is kept after its window
	// started; it must cover the longest limit window (a day), so only
	// ended windows are deleted.
	Counters time.Duration
	// Batch is how many rows one delete statement removes at most.
	Batch int
}

// DefaultConfig is the retention when nothing is said.
func DefaultConfig() Config {
	return Config{
		Period:        10 * time.Minute,
		Requests:      30 * Day,
		Verifications: Day,
		Outbox:        Day,
		Audit:         400 * Day,
		Counters:      Day,
		Batch:         500,
	}
}

// withDefaults fills the zero fields of c from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	fill := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&c.Period, d.Period)
	fill(&c.Requests, d.Requests)
	fill(&c.Verifications, d.Verifications)
	fill(&c.Outbox, d.Outbox)
	fill(&c.Audit, d.Audit)
	fill(&c.Counters, d.Counters)
	if c.Batch == 0 {
		c.Batch = d.Batch
	}
	return c
}

// validate reports every problem of a configuration with defaults filled.
func (c Config) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    time.Duration
	}{{"Period", c.Period}, {"Requests", c.Requests}, {"Verifications", c.Verifications},
		{"Outbox", c.Outbox}, {"Audit", c.Audit}, {"Counters", c.Counters}} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("retention: %s must be positive, got %s", f.name, f.v))
		}
	}
	if c.Batch < 0 {
		errs = append(errs, fmt.Errorf("retention: Batch must be positive, got %d", c.Batch))
	}
	if c.Audit < c.Requests {
		errs = append(errs, fmt.Errorf("retention: Audit (%s) must be at least Requests (%s)", c.Audit, c.Requests))
	}
	return errors.Join(errs...)
}

// Store is what a Sweeper deletes from.
type Store interface {
	store.Retention
	// DeleteRateEventsBefore and DeleteGuessesBefore remove rate-limit
	// events whose windows have passed and idle guess budgets; see
	// store.Rates and store.Guesses.
	DeleteRateEventsBefore(ctx context.Context, t time.Time, limit int) (int64, error)
	DeleteGuessesBefore(ctx context.Context, t time.Time, limit int) (int64, error)
}

// Result counts what one sweep deleted.
type Result struct {
	Verifications  int64
	Requests       int64 // with their targets
	Outbox         int64
	Audit          int64
	PairingPhrases int64
	Counters       int64
}

// Total is the number of rows deleted, request targets not counted.
func (r Result) Total() int64 {
	return r.Verifications + r.Requests + r.Outbox + r.Audit + r.PairingPhrases + r.Counters
}

// Sweeper deletes old data periodically. It is safe for concurrent use, and
// any number of Sweepers may run on one database.
type Sweeper struct {
	cfg   Config
	store Store
	now   func() time.Time
	log   *slog.Logger
	// swept, when set, is told about every sweep Run makes (tests).
	swept func(Result, error)
}

// New returns a Sweeper. Zero fields of cfg take defaults; now (nil means
// time.Now) decides what is old, so tests move an injected clock instead of
// waiting. log may be nil.
func New(cfg Config, st Store, now func() time.Time, log *slog.Logger) (*Sweeper, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{cfg: cfg, store: st, now: now, log: log}, nil
}

// Config returns the configuration in use, defaults filled in.
func (s *Sweeper) Config() Config { return s.cfg }

// Run sweeps every Period (jittered) until ctx ends. The first sweep comes
// after one period, not at start, so restarts do not add load. Failures are
// logged; the next sweep tries again.
func (s *Sweeper) Run(ctx context.Context) {
	for {
		timer := time.NewTimer(s.nextWait())
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		res, err := s.SweepOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "retention sweep failed", "err", err)
		}
		if s.swept != nil {
			s.swept(res, err)
		}
	}
}

// nextWait is Period ±20%, so replicas started together drift apart.
func (s *Sweeper) nextWait() time.Duration {
	return time.Duration(float64(s.cfg.Period) * (0.8 + 0.4*rand.Float64()))
}

// SweepOnce deletes everything that is past its retention now and reports
// how much it deleted. A failing kind of data does not stop the others: the
// result counts what was deleted and the error joins every failure.
func (s *Sweeper) SweepOnce(ctx context.Context) (Result, error) {
	now := s.now().UTC()
	var (
		res  Result
		errs []error
	)
	steps := []struct {
		what string
		n    *int64
		del  func(context.Context) (int64, error)
	}{
		{"verifications", &res.Verifications, s.batched(s.store.DeleteExpiredVerifications, now.Add(-s.cfg.Verifications))},
		{"requests", &res.Requests, s.batched(s.store.DeleteFinishedRequests, now.Add(-s.cfg.Requests))},
		{"outbox messages", &res.Outbox, s.batched(s.store.DeleteOutboxMessagesBefore, now.Add(-s.cfg.Outbox))},
		{"audit events", &res.Audit, s.batched(s.store.DeleteAuditEventsBefore, now.Add(-s.cfg.Audit))},
		{"pairing phrases", &res.PairingPhrases, s.batched(s.store.DeleteExpiredPairingPhrases, now)},
		{"rate counters", &res.Counters, s.deleteCounters(now)},
	}
	for _, st := range steps {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("retention: %w", err))
			break
		}
		n, err := st.del(ctx)
		*st.n = n
		if err != nil {
			errs = append(errs, fmt.Errorf("retention: delete %s: %w", st.what, err))
		}
	}
	level := slog.LevelDebug
	if res.Total() > 0 {
		level = slog.LevelInfo
	}
	s.log.Log(ctx, level, "retention sweep",
		"verifications", res.Verifications, "requests", res.Requests, "outbox_messages", res.Outbox,
		"audit_events", res.Audit, "pairing_phrases", res.PairingPhrases, "rate_counters", res.Counters)
	return res, errors.Join(errs...)
}

// batched returns a step that calls a bounded delete until it deletes
// fewer rows than a batch.
func (s *Sweeper) batched(del func(context.Context, time.Time, int) (int64, error), cutoff time.Time) func(context.Context) (int64, error) {
	return func(ctx context.Context) (int64, error) {
		var total int64
		for {
			n, err := del(ctx, cutoff, s.cfg.Batch)
			total += n
			if err != nil || n < int64(s.cfg.Batch) {
				return total, err
			}
			if err := ctx.Err(); err != nil {
				return total, err
			}
		}
	}
}

// deleteCounters removes rate-limit events that no window counts at now
// any more, and guess budgets untouched for cfg.Counters whose locks are
// over. It is the one place that knows how limits are stored.
func (s *Sweeper) deleteCounters(now time.Time) func(context.Context) (int64, error) {
	events := s.batched(s.store.DeleteRateEventsBefore, now)
	guesses := s.batched(s.store.DeleteGuessesBefore, now.Add(-s.cfg.Counters))
	return func(ctx context.Context) (int64, error) {
		n, err := events(ctx)
		if err != nil {
			return n, err
		}
		m, err := guesses(ctx)
		return n + m, err
	}
}
