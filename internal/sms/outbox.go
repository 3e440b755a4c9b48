package sms

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/pushauth/pushauth/internal/pii"
	"github.com/pushauth/pushauth/internal/store"
)

// OutboxStore keeps the development outbox's messages; store.Outbox
// satisfies it.
type OutboxStore interface {
	AddOutboxMessage(ctx context.Context, m store.OutboxMessage) (int64, error)
}

// Outbox is the development Sender (sms_provider: outbox): it stores each
// message in the database instead of sending it, so a developer can read the
// code through AdminService.ListOutboxMessages without a provider account.
// Never use it in production: the stored body holds the code.
type Outbox struct {
	st  OutboxStore
	now func() time.Time
	log *slog.Logger
}

var _ Sender = (*Outbox)(nil)

// NewOutbox returns an Outbox writing to st, stamping messages with now
// (nil means time.Now) and noting each one on log (nil: no logging) with the
// number masked and without the body.
func NewOutbox(st OutboxStore, now func() time.Time, log *slog.Logger) *Outbox {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Outbox{st: st, now: now, log: log}
}

// Name implements Sender.
func (o *Outbox) Name() string { return "outbox" }

// Send implements Sender; the id is the outbox row's id.
func (o *Outbox) Send(ctx context.Context, m Message) (string, error) {
	if err := checkMessage(o.Name(), m); err != nil {
		return "", err
	}
	id, err := o.st.AddOutboxMessage(ctx, store.OutboxMessage{PhoneNumber: m.To, Body: m.Body, CreatedAt: o.now().UTC()})
	if err != nil {
		// The store's text is kept out of Error(): a database error may
		// quote the values it was given. It stays reachable via Unwrap.
		return "", &Error{Provider: o.Name(), Code: "store", Message: "storing the message failed", cause: err}
	}
	o.log.InfoContext(ctx, "sms kept in the development outbox", "phone", pii.MaskPhone(m.To), "outbox_id", id)
	return strconv.FormatInt(id, 10), nil
}
