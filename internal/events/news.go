package events

import (
	"context"
	"encoding/json"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// The typed news pushauth sends between replicas and to relying parties.
// Every subject is built here.

// RelyingPartyPrefix starts the subjects of relying parties' events.
const RelyingPartyPrefix = "pushauth.events."

// RelyingPartySubject is the subject a relying party listens on
// ("pushauth.events.<id>").
func RelyingPartySubject(id string) (string, error) { return subject(RelyingPartyPrefix, id) }

// Types of RequestNews and DeviceNews.
const (
	NewsDecided  = "decided"  // a request is final
	NewsProgress = "progress" // a target's delivery or seen mark changed
	NewsRequest  = "request"  // a device has a new request
	NewsClosed   = "closed"   // a request is closed for a device
	NewsNotice   = "notice"   // a sentence for the device's user
)

// RequestNews is what travels on pushauth.request.<id>: what changed, as
// the database already says, so a waiter needs no read. A message with
// neither Target nor Request (or one that does not decode: an older
// replica's) only says "something changed: read".
type RequestNews struct {
	Type string `json:"type"`
	// Target is a target's state after a progress change.
	Target *store.RequestTarget `json:"target,omitempty"`
	// Request is the final request as the deciding transaction wrote it.
	Request *store.Request `json:"request,omitempty"`
	// Targets are the final request's targets as the decider knew them
	// (a phone that answered has seen the request).
	Targets []store.RequestTarget `json:"targets,omitempty"`
}

// DecodeRequestNews reads a RequestNews; anything else is a bare "read".
func DecodeRequestNews(b []byte) RequestNews {
	var n RequestNews
	if json.Unmarshal(b, &n) != nil {
		return RequestNews{}
	}
	return n
}

// DeviceNews is what travels on pushauth.device.<id>.
type DeviceNews struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id,omitempty"`
	Notice    string `json:"notice,omitempty"`
}

// RelyingPartyEvent is what travels on pushauth.events.<relying party id>,
// for relying parties that listen on NATS.
type RelyingPartyEvent struct {
	Type      string    `json:"type"` // "fraud_report", "device_paired", "device_removed", "connection_restored"
	UserRef   string    `json:"user_ref"`
	DeviceID  string    `json:"device_id,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Time      time.Time `json:"time"`
}

// PublishRequestNews sends n on the request's subject.
func PublishRequestNews(ctx context.Context, pub Publisher, requestID string, n RequestNews) error {
	return publishJSON(ctx, pub, RequestPrefix, requestID, n)
}

// PublishDeviceNews sends n on the device's subject.
func PublishDeviceNews(ctx context.Context, pub Publisher, deviceID string, n DeviceNews) error {
	return publishJSON(ctx, pub, DevicePrefix, deviceID, n)
}

// PublishRelyingPartyEvent sends ev on the relying party's subject.
func PublishRelyingPartyEvent(ctx context.Context, pub Publisher, rpID string, ev RelyingPartyEvent) error {
	return publishJSON(ctx, pub, RelyingPartyPrefix, rpID, ev)
}

func publishJSON(ctx context.Context, pub Publisher, prefix, id string, v any) error {
	subj, err := subject(prefix, id)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return pub.Publish(ctx, subj, b)
}
