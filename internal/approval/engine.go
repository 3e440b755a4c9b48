// Package approval is pushauth's request engine: login and pairing requests,
// their state machine (PENDING -> APPROVED | DENIED | EXPIRED | CANCELLED),
// number matching, signed decisions, abuse limits, and the news it publishes
// so waiters on any replica learn of decisions. The database decides; NATS
// only carries news of what the database already says.
package approval

import (
	"context"
	"log/slog"
	"time"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/pairing"
	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/store"
)

// Config holds the engine's limits.
type Config struct {
	// MaxPendingPerUser is how many pending logins a user may have at a
	// relying party; a new one supersedes the oldest beyond it.
	MaxPendingPerUser int
	// BackoffBase and BackoffMax shape the exponential back-off after
	// consecutive denials, mismatches and timeouts.
	BackoffBase, BackoffMax time.Duration
	// MaxConsecutiveFailures locks the account for LockDuration once reached.
	MaxConsecutiveFailures int
	LockDuration           time.Duration
	// FraudMute is how long pushes stay muted after "this wasn't me".
	FraudMute time.Duration
	// ClockSkew is how far a decision's signed time may be from ours.
	ClockSkew time.Duration
	// ApprovalsPerMinute and ApprovalsPerHour bound how many login requests
	// one user of a relying party may be sent in any minute and any hour
	// (push bombing); a relying party's policy may set its own.
	ApprovalsPerMinute, ApprovalsPerHour int
}

// DefaultConfig is the engine's configuration when nothing is said.
func DefaultConfig() Config {
	return Config{
		MaxPendingPerUser:      1,
		BackoffBase:            10 * time.Second,
		BackoffMax:             time.Hour,
		MaxConsecutiveFailures: 100,
		LockDuration:           24 * time.Hour,
		FraudMute:              time.Hour,
		ClockSkew:              5 * time.Minute,
		ApprovalsPerMinute:     5,
		ApprovalsPerHour:       30,
	}
}

// Publisher sends news; events.Bus is one.
type Publisher interface {
	Publish(ctx context.Context, subject string, data []byte) error
}

// PushQueue is the durable queue of push jobs; push.Queue is one. The
// engine's relay hands it the jobs of the push outbox; the queue tells the
// engine every job's outcome (PushResult) once Run starts it.
type PushQueue interface {
	// Enqueue stores jobs durably. A job enqueued again within the queue's
	// de-duplication window (same Job.ID) is sent once.
	Enqueue(ctx context.Context, jobs ...push.Job) error
	// Run sends queued jobs until ctx ends, reporting each outcome.
	Run(ctx context.Context, onResult func(context.Context, push.Job, push.Result)) error
}

// Engine runs requests.
type Engine struct {
	cfg     Config
	store   store.Store
	keys    *keyring.Keyring
	phrases *pairing.Phrases
	pub     Publisher
	queue   PushQueue
	relay   *relay
	marks   *marks
	shown   *snapshots
	now     func() time.Time
	log     *slog.Logger
	// decided, when set, is told of every decision this replica commits.
	decided func(context.Context, store.Request, store.Decision)
	// waitSubscribed, a test hook, runs in Wait between subscribing to a
	// request's news and the first read of it.
	waitSubscribed func(id string)
}

// OnDecided has f told of every decision this replica commits (metrics),
// after the commit. f must not block.
func (e *Engine) OnDecided(f func(context.Context, store.Request, store.Decision)) { e.decided = f }

// Option changes an Engine at New.
type Option func(*Engine)

// WithRelay sets how the push outbox relay works (zero fields: defaults).
func WithRelay(rc RelayConfig) Option {
	return func(e *Engine) { e.relay = newRelay(e, rc) }
}

// New returns an Engine that queues pushes on queue (nil: requests are
// created without pushes; the apps still see them). It starts nothing: see
// RunRelay, RunSweeper and RunPushQueue.
func New(cfg Config, st store.Store, keys *keyring.Keyring, phrases *pairing.Phrases, pub Publisher, queue PushQueue, now func() time.Time, log *slog.Logger, opts ...Option) *Engine {
	e := &Engine{cfg: cfg, store: st, keys: keys, phrases: phrases, pub: pub, queue: queue, now: now, log: log}
	e.relay = newRelay(e, RelayConfig{})
	e.marks = newMarks(e)
	e.shown = newSnapshots(10_000)
	for _, o := range opts {
		o(e)
	}
	return e
}

func (e *Engine) clock() time.Time { return e.now().UTC().Truncate(time.Microsecond) }

// publishRequest announces news of a request to its waiters. A lost message
// only costs latency: waiters re-read the row now and then.
func (e *Engine) publishRequest(ctx context.Context, id string, n events.RequestNews) {
	if err := events.PublishRequestNews(ctx, e.pub, id, n); err != nil {
		e.log.WarnContext(ctx, "publish request news", "approval_id", id, "err", err)
	}
}

func (e *Engine) publishDevice(ctx context.Context, deviceID string, n events.DeviceNews) {
	if err := events.PublishDeviceNews(ctx, e.pub, deviceID, n); err != nil {
		e.log.WarnContext(ctx, "publish device news", "device_id", deviceID, "err", err)
	}
}

func (e *Engine) publishRelyingParty(ctx context.Context, rpID string, ev events.RelyingPartyEvent) {
	if err := events.PublishRelyingPartyEvent(ctx, e.pub, rpID, ev); err != nil {
		e.log.WarnContext(ctx, "publish relying party event", "relying_party_id", rpID, "err", err)
	}
}
