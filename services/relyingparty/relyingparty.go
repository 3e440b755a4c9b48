// Package relyingparty implements pushauth.v1.RelyingPartyService for login
// servers. The caller is always the relying party of the API key in use and
// sees only its own users and requests.
package relyingparty

import (
	"context"

	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/fault"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// Server is the RelyingPartyService.
type Server struct {
	pushauthv1.UnimplementedRelyingPartyServiceServer
}

// New returns the RelyingPartyService.
func New() *Server { return &Server{} }

// WhoAmI returns the relying party of the calling key.
func (s *Server) WhoAmI(ctx context.Context, _ *pushauthv1.WhoAmIRequest) (*pushauthv1.WhoAmIResponse, error) {
	rp, key, ok := auth.RelyingPartyFrom(ctx)
	if !ok {
		return nil, fault.New(fault.Unauthenticated, "no relying party credentials")
	}
	return &pushauthv1.WhoAmIResponse{RelyingParty: wire.RelyingParty(rp), ApiKeyPrefix: key.Prefix}, nil
}
