// Package audit writes the append-only audit log. Domain code calls Write in
// the same transaction as the change it records, so the log cannot miss a
// change or record one that was rolled back.
package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/pushauth/pushauth/internal/feed"
	"github.com/pushauth/pushauth/internal/requestid"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/tracing"
)

// Actors that are not a specific credential.
const (
	ActorAdmin  = "admin"
	ActorSystem = "system"
)

// Entry is what a caller knows about an event; Write adds time and request id.
type Entry struct {
	Actor          string
	Action         string
	RelyingPartyID string
	Target         string
	// Details must never hold secrets, codes, phrases or full phone numbers.
	Details map[string]string
}

// Write appends e, stamped with at and the request id in ctx.
func Write(ctx context.Context, log store.Audit, at time.Time, e Entry) error {
	ev := store.AuditEvent{
		Time:           at,
		Actor:          e.Actor,
		Action:         e.Action,
		RelyingPartyID: e.RelyingPartyID,
		Target:         e.Target,
		RequestID:      requestid.From(ctx),
		Details:        e.Details,
	}
	// The relying party's security events go into the event outbox with the
	// audit row, in its statement, so the feed has every change and only
	// those that committed (see package feed).
	evs := feed.FromAudit(ev)
	if tp := tracing.Store(ctx).Traceparent; tp != "" {
		for i := range evs {
			evs[i].Traceparent = tp // webhook deliveries join this trace
		}
	}
	if err := log.RecordAuditEvent(ctx, ev, evs); err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}
