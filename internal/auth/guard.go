package auth

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/store"
)

// Statuses a stream ends with when its credential is revoked while it is
// open. New calls with the credential are refused by the interceptor.
var (
	ErrAPIKeyRevoked = fault.New(fault.Unauthenticated, "this API key was revoked; reconnect with a valid key")
	ErrDeviceRevoked = fault.New(fault.Unauthenticated, "this device is no longer registered; register the app again")
)

// CredentialReader re-reads credentials for a stream's periodic recheck;
// store.Store is one.
type CredentialReader interface {
	GetAPIKey(ctx context.Context, id string) (store.APIKey, error)
	GetDevice(ctx context.Context, id string) (store.Device, error)
}

// Guard ends long-lived streams whose credential is revoked while they are
// open: at once when a revocation notice reaches this replica (through
// events.Revocations), and otherwise, if the notice was lost, at the
// stream's next periodic recheck, which re-reads the credential.
type Guard struct {
	rev   *events.Revocations
	creds CredentialReader
	every time.Duration

	mu sync.Mutex
	// keys holds the open API-key streams by key ID, for Run: they have no
	// timer of their own (replica-wide waiting).
	keys map[string]map[*Lease]struct{}
}

// NewGuard returns a Guard on the replica's registry rev. recheck is how
// often streams re-read their state; the credential is re-read at most
// about that often.
func NewGuard(rev *events.Revocations, creds CredentialReader, recheck time.Duration) *Guard {
	return &Guard{rev: rev, creds: creds, every: recheck, keys: make(map[string]map[*Lease]struct{})}
}

// Run re-reads, once per recheck interval, every API key that has a stream
// open on this replica, one read per key however many streams it has, and
// ends the streams of a key found revoked: the fallback for a revocation
// notice that was lost, for streams that keep no timer of their own.
// Device streams recheck on their own ticks (Lease.Recheck). It returns
// when ctx ends.
func (g *Guard) Run(ctx context.Context) error {
	if g == nil || g.every <= 0 || g.creds == nil {
		return nil
	}
	t := time.NewTicker(g.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		g.mu.Lock()
		ids := make([]string, 0, len(g.keys))
		for id := range g.keys {
			ids = append(ids, id)
		}
		g.mu.Unlock()
		for _, id := range ids {
			if !g.revoked(ctx, events.RevokedAPIKey, id) {
				continue
			}
			g.mu.Lock()
			for l := range g.keys[id] {
				l.cancel(l.status)
			}
			g.mu.Unlock()
		}
	}
}

// revoked re-reads a credential; a failed read is not a revocation.
func (g *Guard) revoked(ctx context.Context, kind, id string) bool {
	switch kind {
	case events.RevokedAPIKey:
		k, err := g.creds.GetAPIKey(ctx, id)
		return errors.Is(err, store.ErrNotFound) || (err == nil && !k.RevokedAt.IsZero())
	case events.RevokedDevice:
		d, err := g.creds.GetDevice(ctx, id)
		return errors.Is(err, store.ErrNotFound) || (err == nil && !d.RevokedAt.IsZero())
	}
	return false
}

// Stream guards the stream of ctx's caller (an API key or a device; others
// are not guarded). The returned context is cancelled, with the revocation
// status as its cause, as soon as a notice for the caller's credential
// arrives. The stream calls Lease.Recheck on its periodic tick, returns
// Lease.Err(err) when it ends, and calls Lease.Stop (defer it). A nil Guard
// guards nothing.
func (g *Guard) Stream(ctx context.Context) (context.Context, *Lease) {
	l := &Lease{g: g, last: time.Now()}
	if g == nil {
		l.ctx, l.cancel = ctx, func(error) {}
		return l.ctx, l
	}
	if c, ok := CallerFrom(ctx); ok {
		switch c.Kind {
		case KindRelyingParty:
			l.kind, l.id, l.status = events.RevokedAPIKey, c.APIKey.ID, ErrAPIKeyRevoked
		case KindDevice:
			l.kind, l.id, l.status = events.RevokedDevice, c.Device.ID, ErrDeviceRevoked
		}
	}
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	if l.kind != "" && g.rev != nil {
		l.unwatch = g.rev.WatchFunc(l.kind, l.id, func() { l.cancel(l.status) })
	}
	if l.kind == events.RevokedAPIKey {
		g.mu.Lock()
		set := g.keys[l.id]
		if set == nil {
			set = make(map[*Lease]struct{}, 1)
			g.keys[l.id] = set
		}
		set[l] = struct{}{}
		g.mu.Unlock()
	}
	return l.ctx, l
}

// Lease is one guarded stream.
type Lease struct {
	g        *Guard
	ctx      context.Context
	cancel   context.CancelCauseFunc
	unwatch  func()
	kind, id string
	status   error // what the stream ends with when revoked

	mu   sync.Mutex
	last time.Time // of the last read of the credential (monotonic)
}

// Recheck re-reads the credential if it was last read at least half a
// recheck interval ago, and returns the revocation status (ending the
// stream's context) if it is revoked. A failed read is not a revocation:
// the next recheck tries again.
func (l *Lease) Recheck(ctx context.Context) error {
	if err := l.Err(nil); err != nil {
		return err
	}
	if l.kind == "" || l.g.creds == nil {
		return nil
	}
	l.mu.Lock()
	if time.Since(l.last) < l.g.every/2 {
		l.mu.Unlock()
		return nil
	}
	l.last = time.Now()
	l.mu.Unlock()
	if !l.g.revoked(ctx, l.kind, l.id) {
		return nil
	}
	l.cancel(l.status)
	return l.status
}

// Err returns the revocation status if the stream's credential was revoked,
// and err otherwise; streams return Err(err) so a client sees why its
// stream ended rather than a bare cancellation.
func (l *Lease) Err(err error) error {
	if l.status != nil && errors.Is(context.Cause(l.ctx), l.status) {
		return l.status
	}
	return err
}

// Stop unregisters the stream and releases its context. It is idempotent.
func (l *Lease) Stop() {
	if l.unwatch != nil {
		l.unwatch()
	}
	if l.kind == events.RevokedAPIKey && l.g != nil {
		l.g.mu.Lock()
		if set := l.g.keys[l.id]; set != nil {
			delete(set, l)
			if len(set) == 0 {
				delete(l.g.keys, l.id)
			}
		}
		l.g.mu.Unlock()
	}
	l.cancel(context.Canceled)
}

// Interval is how often guarded streams should re-check; 0 for a nil Guard.
func (g *Guard) Interval() time.Duration {
	if g == nil {
		return 0
	}
	return g.every
}
