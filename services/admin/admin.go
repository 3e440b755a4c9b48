// Package admin implements pushauth.v1.AdminService: operators manage relying
// parties and API keys and read the audit log.
package admin

import (
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"

	"github.com/pushauth/pushauth/internal/relyingparty"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/webhook"
)

// Server is the AdminService.
type Server struct {
	pushauthv1.UnimplementedAdminServiceServer
	rps    *relyingparty.Service
	audit  store.Audit
	outbox store.Outbox
	// webhooks manages webhook endpoints; nil refuses those calls.
	webhooks *webhook.Service
}

// New returns the AdminService on rps and the audit log. outbox is the
// development SMS outbox, nil when a real SMS provider sends.
func New(rps *relyingparty.Service, auditLog store.Audit, outbox store.Outbox) *Server {
	return &Server{rps: rps, audit: auditLog, outbox: outbox}
}
