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
}

// NewGuard returns a Guard on the replica's registry rev. recheck is how
// often streams re-read their state; the credential is re-read at most
// about that often.
func NewGuard(rev *events.Revocations, creds CredentialReader, recheck time.Duration) *Guard {
	return &Guard{rev: rev, creds: creds, every: recheck}
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
	revoked := false
	switch l.kind {
	case events.RevokedAPIKey:
		k, err := l.g.creds.GetAPIKey(ctx, l.id)
		revoked = errors.Is(err, store.ErrNotFound) || (err == nil && !k.RevokedAt.IsZero())
	case events.RevokedDevice:
		d, err := l.g.creds.GetDevice(ctx, l.id)
		revoked = errors.Is(err, store.ErrNotFound) || (err == nil && !d.RevokedAt.IsZero())
	}
	if !revoked {
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
	l.cancel(context.Canceled)
}

// Interval is how often guarded streams should re-check; 0 for a nil Guard.
func (g *Guard) Interval() time.Duration {
	if g == nil {
		return 0
	}
	return g.every
}
