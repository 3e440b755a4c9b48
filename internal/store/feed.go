package store

import (
	"context"
	"time"
)

// FeedEvent is a security event a committed change still has to hand to
// the event stream. Body is the event as the stream carries it (opaque here).
type FeedEvent struct {
	ID             string
	RelyingPartyID string
	Type           string
	Body           []byte
	CreatedAt      time.Time
	// Traceparent is the W3C trace context of the call that made the event,
	// "" unless it was traced; webhook deliveries continue its trace.
	Traceparent string
}

// EventOutbox is the transactional outbox of security events. audit.Write
// fills it in the transaction of the change; a relay on every replica hands
// its rows to the event stream.
type EventOutbox interface {
	// AddEvents inserts events (inside the transaction of their change).
	// ErrConflict if an ID is taken.
	AddEvents(ctx context.Context, events []FeedEvent) error
	// ClaimEvents returns up to limit (> 0) events that no relay holds at
	// now, oldest first, and holds them until until. Concurrent callers get
	// disjoint events; an event whose holder died comes back once its hold
	// ends.
	ClaimEvents(ctx context.Context, now, until time.Time, limit int) ([]FeedEvent, error)
	// DeleteEvents removes the events with these IDs; missing ones are
	// ignored.
	DeleteEvents(ctx context.Context, ids []string) error
}

// WebhookEndpoint is an address an operator registered to receive a
// relying party's events.
type WebhookEndpoint struct {
	ID             string
	RelyingPartyID string
	URL            string
	Description    string
	// Secret is the signing secret sealed with the server's key.
	Secret         []byte
	CreatedAt      time.Time
	UpdatedAt      time.Time
	DisabledAt     time.Time // zero while enabled
	DisabledReason string
	// FailingSince is the first failed attempt since the last success;
	// zero while deliveries succeed.
	FailingSince time.Time
}

// Webhook delivery states.
const (
	WebhookPending   = "pending"
	WebhookDelivered = "delivered"
	WebhookFailed    = "failed" // given up
)

// WebhookDelivery is one event to deliver to one endpoint.
type WebhookDelivery struct {
	ID            string
	EndpointID    string
	EventID       string
	EventType     string
	Body          []byte
	State         string
	Attempts      int
	NextAttemptAt time.Time
	ClaimedUntil  time.Time
	// Claim is the token of the worker that holds the delivery.
	Claim      string
	LastStatus int    // HTTP status of the last attempt, 0 when none came back
	LastError  string // why the last attempt failed
	CreatedAt  time.Time
	FinishedAt time.Time // delivered or given up
	// Traceparent is the event's (see FeedEvent), "" when it was not traced.
	Traceparent string
}

// Webhooks stores webhook endpoints and their delivery queue.
type Webhooks interface {
	// CreateWebhookEndpoint inserts e. ErrConflict if its ID is taken.
	CreateWebhookEndpoint(ctx context.Context, e WebhookEndpoint) error
	// GetWebhookEndpoint returns the endpoint or ErrNotFound.
	GetWebhookEndpoint(ctx context.Context, id string) (WebhookEndpoint, error)
	// ListWebhookEndpoints returns a relying party's endpoints (all of them
	// when relyingPartyID is ""), oldest first, disabled ones only when
	// includeDisabled.
	ListWebhookEndpoints(ctx context.Context, relyingPartyID string, includeDisabled bool) ([]WebhookEndpoint, error)
	// SetWebhookSecret replaces the sealed secret. ErrNotFound if there is
	// no such endpoint.
	SetWebhookSecret(ctx context.Context, id string, sealed []byte, at time.Time) error
	// DisableWebhookEndpoint disables an enabled endpoint. ErrNotFound if
	// there is none, ErrConflict if it is disabled already (only one caller
	// of many wins).
	DisableWebhookEndpoint(ctx context.Context, id, reason string, at time.Time) error
	// RecordWebhookResult notes an attempt's outcome on the endpoint: a
	// success clears FailingSince, a failure sets it unless set. It returns
	// FailingSince after the change.
	RecordWebhookResult(ctx context.Context, id string, ok bool, at time.Time) (time.Time, error)

	// AddWebhookDeliveries queues deliveries; one whose (EndpointID,
	// EventID) is queued already is skipped, so a repeated hand-over queues
	// an event once.
	AddWebhookDeliveries(ctx context.Context, ds []WebhookDelivery) error
	// ClaimWebhookDeliveries returns up to limit pending deliveries due at
	// now, of enabled endpoints, that nobody holds, oldest due first, and
	// holds them for claim until until. Concurrent callers on any replica get
	// disjoint deliveries.
	ClaimWebhookDeliveries(ctx context.Context, now, until time.Time, claim string, limit int) ([]WebhookDelivery, error)
	// FinishWebhookAttempt writes an attempt's outcome (State, Attempts,
	// NextAttemptAt, LastStatus, LastError, FinishedAt of d) and releases
	// the hold, only while d.Claim still holds it; ErrConflict otherwise.
	FinishWebhookAttempt(ctx context.Context, d WebhookDelivery) error
	// ListWebhookDeliveries returns an endpoint's deliveries, newest first,
	// at most limit (> 0), created before before when it is set.
	ListWebhookDeliveries(ctx context.Context, endpointID string, before time.Time, limit int) ([]WebhookDelivery, error)
	// DeleteWebhookDeliveriesBefore deletes up to limit deliveries that
	// finished (delivered or given up) before cutoff, oldest first, and
	// returns how many. Pending ones are kept.
	DeleteWebhookDeliveriesBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error)
}
