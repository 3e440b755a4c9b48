package approval

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/pushauth/pushauth/internal/fault"
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

// SingleLine reports whether s holds no control character (U+0000–U+001F,
// U+007F–U+009F) and no line or paragraph separator (U+2028, U+2029). Every
// field of a signed string must, so that no value can end its line and
// forge the next one (a second "decision=" line, say).
func SingleLine(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// checkSingleLine refuses the first of name/value pairs that is not
// SingleLine, naming its request field. The protos declare the same rule;
// this keeps the domain safe whoever calls it.
func checkSingleLine(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if !SingleLine(pairs[i+1]) {
			return fault.Invalid(pairs[i], "must be a single line without control characters (U+0000–U+001F, U+007F–U+009F, U+2028, U+2029)")
		}
	}
	return nil
}

// checkContext applies checkSingleLine to what enters the context hash.
func checkContext(c store.RequestContext) error {
	return checkSingleLine("context.app_name", c.AppName, "context.ip_address", c.IPAddress,
		"context.location", c.Location, "context.browser", c.Browser, "context.action", c.Action)
}

// locationRuleID is the form of a location rule's id: short, and nothing a
// signed string could trip over.
var locationRuleID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// checkRuleID refuses a location rule id that is malformed or comes
// without auto_approved.
func checkRuleID(resp Response) error {
	switch {
	case resp.LocationRuleID == "":
		return nil
	case !resp.AutoApproved:
		return fault.Invalid("location_rule_id", "must be empty unless auto_approved is true")
	case !locationRuleID.MatchString(resp.LocationRuleID):
		return fault.Invalid("location_rule_id", "must be 1 to 64 letters, digits, '_' or '-'")
	}
	return nil
}
