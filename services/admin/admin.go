// Package admin implements pushauth.v1.AdminService: operators manage relying
// parties and API keys and read the audit log.
package admin

import (
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"

	"github.com/pushauth/pushauth/internal/relyingparty"
	"github.com/pushauth/pushauth/internal/store"
)

// Server is the AdminService.
type Server struct {
	pushauthv1.UnimplementedAdminServiceServer
	rps   *relyingparty.Service
	audit store.Audit
}

// New returns the AdminService on rps and the audit log.
func New(rps *relyingparty.Service, auditLog store.Audit) *Server {
	return &Server{rps: rps, audit: auditLog}
}
