package approval

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// DecisionVersion names the signed decision format (docs/decisions.md).
const DecisionVersion = "pushauth-decision-v1"

// Decisions a phone can send.
const (
	DecisionApprove     = "APPROVE"
	DecisionDeny        = "DENY"
	DecisionReportFraud = "REPORT_FRAUD"
)

// ContextHash is the lower-case hex SHA-256 of the canonical form of what the
// phone displays. Every field is single-line, so the lines are unambiguous.
func ContextHash(c store.RequestContext, accountLabel string) string {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"app_name", c.AppName}, {"ip_address", c.IPAddress}, {"location", c.Location},
		{"browser", c.Browser}, {"action", c.Action}, {"account_label", accountLabel},
	} {
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(kv[1])
		b.WriteByte('\n')
	}
	h := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(h[:])
}

// SignedFields are what a decision signature covers.
type SignedFields struct {
	RequestID      string
	Kind           string
	Decision       string
	NumberAnswer   string
	DeviceID       string
	RelyingPartyID string
	UserRef        string
	ContextSHA256  string
	AutoApproved   bool
	LocationRuleID string
	SignedAt       time.Time // whole seconds are signed
}

// Payload is the exact byte string a phone signs for a decision.
func (f SignedFields) Payload() []byte {
	lines := []string{
		DecisionVersion,
		"request_id=" + f.RequestID,
		"kind=" + f.Kind,
		"decision=" + f.Decision,
		"number=" + f.NumberAnswer,
		"device_id=" + f.DeviceID,
		"relying_party_id=" + f.RelyingPartyID,
		"user_ref=" + f.UserRef,
		"context_sha256=" + f.ContextSHA256,
		"auto_approved=" + strconv.FormatBool(f.AutoApproved),
		"location_rule_id=" + f.LocationRuleID,
		"signed_at=" + strconv.FormatInt(f.SignedAt.Unix(), 10),
	}
	return []byte(strings.Join(lines, "\n"))
}

// FieldsFor fills SignedFields for a request as the server knows it.
func FieldsFor(r store.Request, deviceID, decision, answer string, auto bool, ruleID string, signedAt time.Time) SignedFields {
	return SignedFields{
		RequestID:      r.ID,
		Kind:           r.Kind,
		Decision:       decision,
		NumberAnswer:   answer,
		DeviceID:       deviceID,
		RelyingPartyID: r.RelyingPartyID,
		UserRef:        r.UserRef,
		ContextSHA256:  ContextHash(r.Context, r.AccountLabel),
		AutoApproved:   auto,
		LocationRuleID: ruleID,
		SignedAt:       signedAt,
	}
}
