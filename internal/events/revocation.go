package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
)

// RevokedSubject carries every revocation notice, one JSON Revocation per
// message, so a replica needs a single subscription (see Revocations).
const RevokedSubject = "pushauth.revoked"

// Revocation kinds.
const (
	RevokedAPIKey     = "api_key"    // ID is the key's id ("key_…")
	RevokedDevice     = "device"     // ID is the device id
	RevokedConnection = "connection" // ID is the connection id
	// ChangedRelyingParty: a relying party's policy changed; ID is its id.
	// Nothing ends; per-replica caches of it drop what they hold.
	ChangedRelyingParty = "relying_party"
)

// Revocation says that a credential or a connection stopped working. The
// database already says so; the notice only lets every replica act at once
// instead of at its next recheck.
type Revocation struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	// DeviceID is the phone of a removed connection.
	DeviceID string `json:"device_id,omitempty"`
}

// Publisher sends one message; Bus is one.
type Publisher interface {
	Publish(ctx context.Context, subject string, data []byte) error
}

// AnnounceRevocation publishes n on RevokedSubject. Core NATS may lose it:
// streams also re-check their credential periodically, so a lost notice
// only delays the end.
func AnnounceRevocation(ctx context.Context, pub Publisher, n Revocation) error {
	if n.Kind == "" || n.ID == "" {
		return errors.New("events: revocation without kind or id")
	}
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("events: encode revocation: %w", err)
	}
	return pub.Publish(ctx, RevokedSubject, b)
}

// Revocations is a replica's registry of what must end when a credential or
// connection is revoked: open streams register with Watch or WatchFunc, and
// the replica's one subscription to RevokedSubject ends the matching ones.
// Hooks added with OnRevoke see every notice, e.g. to drop a credential
// cache entry. It is safe for concurrent use.
type Revocations struct {
	log *slog.Logger
	sub *nats.Subscription

	mu       sync.Mutex
	closed   bool
	watchers map[revKey]map[*revWatcher]struct{}
	n        int
	hooks    []func(Revocation)
}

type revKey struct{ kind, id string }

type revWatcher struct{ fire func() }

// NewRevocations subscribes to RevokedSubject on nc and waits for the server
// to confirm it when connected. A nil nc makes a registry fed only by Revoke
// (tests). A nil logger means slog.Default().
func NewRevocations(nc *nats.Conn, logger *slog.Logger) (*Revocations, error) {
	if logger == nil {
		logger = slog.Default()
	}
	r := &Revocations{log: logger, watchers: make(map[revKey]map[*revWatcher]struct{})}
	if nc == nil {
		return r, nil
	}
	sub, err := nc.Subscribe(RevokedSubject, func(m *nats.Msg) {
		var n Revocation
		if err := json.Unmarshal(m.Data, &n); err != nil || n.Kind == "" || n.ID == "" {
			logger.Warn("events: ignoring malformed revocation notice", "error", err)
			return
		}
		r.Revoke(n)
	})
	if err != nil {
		return nil, fmt.Errorf("events: subscribe %s: %w", RevokedSubject, err)
	}
	if nc.IsConnected() {
		if err := nc.FlushTimeout(subscribeFlushTimeout); err != nil {
			_ = sub.Unsubscribe()
			return nil, fmt.Errorf("events: confirm subscription %s: %w", RevokedSubject, err)
		}
	}
	r.sub = sub
	return r, nil
}

// Watch returns a channel closed when (kind, id) is revoked, and a cancel
// func that unregisters it (idempotent; always call it).
func (r *Revocations) Watch(kind, id string) (done <-chan struct{}, cancel func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, r.WatchFunc(kind, id, func() { once.Do(func() { close(ch) }) })
}

// WatchFunc calls f once when (kind, id) is revoked, so a stream can cancel
// its context without a goroutine of its own. f runs on the subscription's
// goroutine and must not block. The returned cancel unregisters f
// (idempotent; always call it).
func (r *Revocations) WatchFunc(kind, id string, f func()) (cancel func()) {
	k := revKey{kind, id}
	w := &revWatcher{fire: f}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return func() {}
	}
	set := r.watchers[k]
	if set == nil {
		set = make(map[*revWatcher]struct{}, 1)
		r.watchers[k] = set
	}
	set[w] = struct{}{}
	r.n++
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if set, ok := r.watchers[k]; ok {
			if _, ok := set[w]; ok {
				delete(set, w)
				r.n--
				if len(set) == 0 {
					delete(r.watchers, k)
				}
			}
		}
	}
}

// OnRevoke adds a hook called with every notice this replica receives, on
// the subscription's goroutine; it must not block. It is the place for a
// per-replica credential cache to drop what was revoked.
func (r *Revocations) OnRevoke(f func(Revocation)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hooks = append(r.hooks, f)
}

// Revoke ends the watchers of n on this replica and runs the hooks. The
// subscription calls it for every notice; calling it again is harmless.
func (r *Revocations) Revoke(n Revocation) {
	k := revKey{n.Kind, n.ID}
	r.mu.Lock()
	set := r.watchers[k]
	delete(r.watchers, k)
	r.n -= len(set)
	hooks := r.hooks
	r.mu.Unlock()
	for w := range set {
		w.fire()
	}
	for _, h := range hooks {
		h(n)
	}
}

// LocalFirst returns a Publisher that, for a notice on RevokedSubject, runs
// Revoke on this replica before publishing it: the replica that revoked
// something never accepts it again, not even before the notice comes back
// over NATS. Everything else passes through to pub.
func (r *Revocations) LocalFirst(pub Publisher) Publisher {
	return localFirst{r: r, pub: pub}
}

type localFirst struct {
	r   *Revocations
	pub Publisher
}

func (l localFirst) Publish(ctx context.Context, subject string, data []byte) error {
	if subject == RevokedSubject {
		var n Revocation
		if err := json.Unmarshal(data, &n); err == nil && n.Kind != "" && n.ID != "" {
			l.r.Revoke(n)
		}
	}
	return l.pub.Publish(ctx, subject, data)
}

// Len reports the number of registered watchers, for tests and metrics.
func (r *Revocations) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// Close unsubscribes and forgets every watcher without firing it: shutting
// down revokes nothing. It is idempotent.
func (r *Revocations) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.closed = true
	if r.sub != nil {
		if err := r.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			r.log.Warn("events: revocations unsubscribe", "error", err)
		}
	}
	r.watchers, r.n = nil, 0
}
