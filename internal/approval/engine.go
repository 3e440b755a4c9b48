// Package approval is pushauth's request engine: login and pairing requests,
// their state machine (PENDING -> APPROVED | DENIED | EXPIRED | CANCELLED),
// number matching, signed decisions, abuse limits, and the news it publishes
// so waiters on any replica learn of decisions. The database decides; NATS
// only carries news of what the database already says.
package approval

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/pairing"
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

// Pusher queues a push for each device of a request.
type Pusher interface {
	Push(ctx context.Context, r store.Request, devices []store.Device) error
}

// Engine runs requests.
type Engine struct {
	cfg     Config
	store   store.Store
	keys    *keyring.Keyring
	phrases *pairing.Phrases
	pub     Publisher
	pusher  Pusher
	now     func() time.Time
	log     *slog.Logger
	// decided, when set, is told of every decision this replica commits.
	decided func(context.Context, store.Request, store.Decision)
}

// OnDecided has f told of every decision this replica commits (metrics),
// after the commit. f must not block.
func (e *Engine) OnDecided(f func(context.Context, store.Request, store.Decision)) { e.decided = f }

// New returns an Engine.
func New(cfg Config, st store.Store, keys *keyring.Keyring, phrases *pairing.Phrases, pub Publisher, pusher Pusher, now func() time.Time, log *slog.Logger) *Engine {
	return &Engine{cfg: cfg, store: st, keys: keys, phrases: phrases, pub: pub, pusher: pusher, now: now, log: log}
}

func (e *Engine) clock() time.Time { return e.now().UTC().Truncate(time.Microsecond) }

// News types on pushauth.request.<id> and pushauth.device.<id>.
const (
	NewsDecided  = "decided"
	NewsProgress = "progress"
	NewsRequest  = "request"
	NewsClosed   = "closed"
	NewsNotice   = "notice"
)

// DeviceNews is what travels on pushauth.device.<id>.
type DeviceNews struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id,omitempty"`
	Notice    string `json:"notice,omitempty"`
}

// RelyingPartyEvent is what travels on pushauth.events.<relying party id>,
// for relying parties that listen on NATS.
type RelyingPartyEvent struct {
	Type      string    `json:"type"` // "fraud_report", "device_paired", "device_removed"
	UserRef   string    `json:"user_ref"`
	DeviceID  string    `json:"device_id,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Time      time.Time `json:"time"`
}

// publishRequest announces news of a request to its waiters. A lost message
// only costs latency: waiters re-read the row now and then.
func (e *Engine) publishRequest(ctx context.Context, id, kind string) {
	subj, err := events.RequestSubject(id)
	if err == nil {
		err = e.pub.Publish(ctx, subj, []byte(kind))
	}
	if err != nil {
		e.log.WarnContext(ctx, "publish request news", "approval_id", id, "err", err)
	}
}

func (e *Engine) publishDevice(ctx context.Context, deviceID string, n DeviceNews) {
	b, _ := json.Marshal(n)
	subj, err := events.DeviceSubject(deviceID)
	if err == nil {
		err = e.pub.Publish(ctx, subj, b)
	}
	if err != nil {
		e.log.WarnContext(ctx, "publish device news", "device_id", deviceID, "err", err)
	}
}

func (e *Engine) publishRelyingParty(ctx context.Context, rpID string, ev RelyingPartyEvent) {
	b, _ := json.Marshal(ev)
	if err := e.pub.Publish(ctx, "pushauth.events."+rpID, b); err != nil {
		e.log.WarnContext(ctx, "publish relying party event", "relying_party_id", rpID, "err", err)
	}
}
