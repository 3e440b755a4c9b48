// Package feed is the security event feed of each relying party: what
// happened to its users, devices and keys, kept in the JetStream stream
// PUSHAUTH_EVENTS for WatchEvents and handed to webhooks.
//
// Events are derived from the audit log: every change that matters is
// audited in its own transaction, and audit.Write adds the feed's events to
// the event outbox in that same transaction (FromAudit). A relay on every
// replica moves the outbox to the stream, so a replica that dies between
// the commit and the publish loses nothing, and an event of a change that
// rolled back never exists.
package feed

import (
	"encoding/json"
	"time"

	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/store"
)

// Event types. They are subject tokens, so they hold no dots.
const (
	TypeRequestDecided = "request_decided"
	TypeFraudReported  = "fraud_reported"
	TypeDevicePaired   = "device_paired"
	TypeDeviceReplaced = "device_replaced" // a restore moved the account to a new phone
	TypeDeviceRevoked  = "device_revoked"  // the phone deregistered itself
	TypeDeviceRemoved  = "device_removed"  // the connection was removed
	TypeUserBackedOff  = "user_backed_off"
	TypeUserLocked     = "user_locked"
	TypeTOTPLocked     = "totp_locked"
	TypeBackupRestored = "backup_restored"
	TypeAPIKeyCreated  = "api_key_created"
	TypeAPIKeyRevoked  = "api_key_revoked"
)

// Types lists every event type.
var Types = []string{TypeRequestDecided, TypeFraudReported, TypeDevicePaired, TypeDeviceReplaced, TypeDeviceRevoked,
	TypeDeviceRemoved, TypeUserBackedOff, TypeUserLocked, TypeTOTPLocked, TypeBackupRestored, TypeAPIKeyCreated, TypeAPIKeyRevoked}

// Event is one security event, as the stream, WatchEvents and webhooks
// carry it (JSON). Data holds ids and outcomes, never secrets, codes or
// phone numbers.
type Event struct {
	ID             string            `json:"id"`
	Type           string            `json:"type"`
	RelyingPartyID string            `json:"relying_party_id"`
	Time           time.Time         `json:"timestamp"`
	Data           map[string]string `json:"data"`
	// Cursor is the event's sequence in the stream, set when read from it.
	Cursor uint64 `json:"-"`
}

// Decode reads an event the stream carries.
func Decode(b []byte) (Event, error) {
	var e Event
	err := json.Unmarshal(b, &e)
	return e, err
}

// Audit actions the feed adds (besides those other packages write).
const (
	ActionUserBackedOff = "user.backed_off"
	ActionUserLocked    = "user.locked"
	ActionTOTPLocked    = "totp.locked"
)

// FromAudit returns the feed events an audit event stands for, ready for
// the outbox; none for actions a relying party is not told of.
func FromAudit(a store.AuditEvent) []store.FeedEvent {
	if a.RelyingPartyID == "" {
		return nil
	}
	d := a.Details
	pick := func(keys ...string) map[string]string {
		m := map[string]string{}
		for _, k := range keys {
			if v := d[k]; v != "" {
				m[k] = v
			}
		}
		return m
	}
	type ev struct {
		typ  string
		data map[string]string
	}
	var out []ev
	switch a.Action {
	case "request.decided":
		data := pick("user_ref", "kind", "status", "reason", "device_id", "auto_approved")
		data["request_id"] = a.Target
		out = append(out, ev{TypeRequestDecided, data})
		if d["reason"] == store.ReasonFraudReport {
			out = append(out, ev{TypeFraudReported, pick("user_ref", "device_id")})
			out[len(out)-1].data["request_id"] = a.Target
		}
		if d["kind"] == store.KindPairing && d["status"] == store.StatusApproved {
			out = append(out, ev{TypeDevicePaired, pick("user_ref", "device_id")})
			out[len(out)-1].data["request_id"] = a.Target
		}
	case "connection.removed":
		typ := TypeDeviceRemoved
		if d["by"] == "deregistration" {
			typ = TypeDeviceRevoked
		}
		out = append(out, ev{typ, pick("user_ref", "device_id")})
	case "connection.restored":
		out = append(out,
			ev{TypeDeviceReplaced, pick("user_ref", "from_device", "to_device")},
			ev{TypeBackupRestored, pick("user_ref", "to_device")})
	case ActionUserBackedOff:
		out = append(out, ev{TypeUserBackedOff, pick("user_ref", "failures", "until")})
	case ActionUserLocked:
		out = append(out, ev{TypeUserLocked, pick("user_ref", "failures", "until")})
	case ActionTOTPLocked:
		out = append(out, ev{TypeTOTPLocked, pick("user_ref", "failures", "until")})
	case "api_key.created", "api_key.revoked":
		typ := TypeAPIKeyCreated
		if a.Action == "api_key.revoked" {
			typ = TypeAPIKeyRevoked
		}
		data := pick("prefix")
		data["api_key_id"] = a.Target
		out = append(out, ev{typ, data})
	}
	res := make([]store.FeedEvent, 0, len(out))
	for _, e := range out {
		fe := Event{ID: secret.NewID("evt", a.Time.UnixMilli()), Type: e.typ, RelyingPartyID: a.RelyingPartyID, Time: a.Time, Data: e.data}
		b, err := json.Marshal(fe)
		if err != nil {
			continue // a map of strings always encodes
		}
		res = append(res, store.FeedEvent{ID: fe.ID, RelyingPartyID: fe.RelyingPartyID, Type: fe.Type, Body: b, CreatedAt: a.Time})
	}
	return res
}
