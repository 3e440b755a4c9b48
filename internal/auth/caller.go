package auth

import (
	"context"

	"github.com/pushauth/pushauth/internal/store"
)

// Kind says what kind of caller is on the other end.
type Kind int

// Caller kinds.
const (
	KindAdmin Kind = iota + 1
	KindRelyingParty
	KindDevice
)

// Caller is the authenticated identity of an RPC.
type Caller struct {
	Kind Kind
	// Actor names the caller in audit events and logs; it holds no secret.
	Actor        string
	RelyingParty store.RelyingParty // KindRelyingParty
	APIKey       store.APIKey       // KindRelyingParty
	Device       store.Device       // KindDevice
}

type callerKey struct{}

func withCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// WithCaller returns ctx carrying c. It is for tests of code below the
// interceptor; servers get the caller from the interceptor.
func WithCaller(ctx context.Context, c Caller) context.Context { return withCaller(ctx, c) }

// CallerFrom returns the caller in ctx.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// ActorFrom returns the audit actor of ctx's caller, or "anonymous".
func ActorFrom(ctx context.Context) string {
	if c, ok := CallerFrom(ctx); ok {
		return c.Actor
	}
	return "anonymous"
}

// RelyingPartyFrom returns the calling relying party.
func RelyingPartyFrom(ctx context.Context) (store.RelyingParty, store.APIKey, bool) {
	c, ok := CallerFrom(ctx)
	if !ok || c.Kind != KindRelyingParty {
		return store.RelyingParty{}, store.APIKey{}, false
	}
	return c.RelyingParty, c.APIKey, true
}

// DeviceFrom returns the calling device.
func DeviceFrom(ctx context.Context) (store.Device, bool) {
	c, ok := CallerFrom(ctx)
	if !ok || c.Kind != KindDevice {
		return store.Device{}, false
	}
	return c.Device, true
}
