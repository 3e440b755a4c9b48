package approval

import (
	"regexp"
	"time"

	"github.com/pushauth/pushauth/decision"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/store"
)

// DecisionVersion names the signed decision format (docs/decisions.md); the
// strings themselves live in package decision, shared with apps and login
// servers.
const DecisionVersion = decision.Version

// Decisions a phone can send.
const (
	DecisionApprove     = decision.Approve
	DecisionDeny        = decision.Deny
	DecisionReportFraud = decision.ReportFraud
)

// ContextHash is decision.ContextHash of a stored request's context.
func ContextHash(c store.RequestContext, accountLabel string) string {
	return decision.ContextHash(decision.Context{
		AppName: c.AppName, IPAddress: c.IPAddress, Location: c.Location, Browser: c.Browser, Action: c.Action,
	}, accountLabel)
}

// SignedFields are what a decision signature covers.
type SignedFields = decision.Fields

// FieldsFor fills SignedFields for a request as the server knows it.
func FieldsFor(r store.Request, deviceID, verdict, answer string, auto bool, ruleID string, signedAt time.Time) SignedFields {
	return SignedFields{
		RequestID:      r.ID,
		Kind:           r.Kind,
		Decision:       verdict,
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

// SingleLine is decision.SingleLine: every field of a signed string must be
// one line.
func SingleLine(s string) bool { return decision.SingleLine(s) }

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
