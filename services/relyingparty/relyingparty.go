// Package relyingparty implements pushauth.v1.RelyingPartyService for login
// servers. The caller is always the relying party of the API key in use and
// sees only its own users and requests.
package relyingparty

import (
	"context"
	"time"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/feed"
	"github.com/pushauth/pushauth/internal/pairing"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/totp"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// Server is the RelyingPartyService.
type Server struct {
	pushauthv1.UnimplementedRelyingPartyServiceServer
	engine *approval.Engine
	conns  *pairing.Connections
	totp   *totp.Service
	hub    *events.Hub
	// recheck is how often a waiter re-reads its request in case a NATS
	// message was lost.
	recheck time.Duration
	// guard ends a waiter whose API key is revoked.
	guard *auth.Guard
	// events is the security event stream; nil refuses WatchEvents.
	events *feed.Stream
}

// New returns the RelyingPartyService. Requests go to engine, the users'
// phones to conns; hub carries decision news to waiters; guard ends the
// streams of revoked keys (nil: none are ended).
func New(engine *approval.Engine, conns *pairing.Connections, codes *totp.Service, hub *events.Hub, recheck time.Duration, guard *auth.Guard) *Server {
	return &Server{engine: engine, conns: conns, totp: codes, hub: hub, recheck: recheck, guard: guard}
}

func caller(ctx context.Context) (store.RelyingParty, string, error) {
	rp, _, ok := auth.RelyingPartyFrom(ctx)
	if !ok {
		return store.RelyingParty{}, "", fault.New(fault.Unauthenticated, "no relying party credentials")
	}
	return rp, auth.ActorFrom(ctx), nil
}

// WhoAmI returns the relying party of the calling key.
func (s *Server) WhoAmI(ctx context.Context, _ *pushauthv1.WhoAmIRequest) (*pushauthv1.WhoAmIResponse, error) {
	rp, key, ok := auth.RelyingPartyFrom(ctx)
	if !ok {
		return nil, fault.New(fault.Unauthenticated, "no relying party credentials")
	}
	return &pushauthv1.WhoAmIResponse{RelyingParty: wire.RelyingParty(rp), ApiKeyPrefix: key.Prefix}, nil
}
