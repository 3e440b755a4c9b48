package phone

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/decision"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// ErrContextMismatch means the server's context hash is not the hash of what
// the phone shows: the screen and the server disagree, so it must not sign.
var ErrContextMismatch = errors.New("phone: the server's context hash differs from the hash of what is shown")

// Shown is decision.ContextHash of what a phone shows of dr.
func Shown(dr *pushauthv1.DeviceRequest) string {
	c := dr.GetContext()
	return decision.ContextHash(decision.Context{
		AppName: c.GetAppName(), IPAddress: c.GetIpAddress(), Location: c.GetLocation(),
		Browser: c.GetBrowser(), Action: c.GetAction(),
	}, dr.GetAccountLabel())
}

// Kind is a request kind as the decision string spells it; "" if unknown.
func Kind(k pushauthv1.RequestKind) string {
	switch k {
	case pushauthv1.RequestKind_REQUEST_KIND_LOGIN:
		return decision.KindLogin
	case pushauthv1.RequestKind_REQUEST_KIND_PAIRING:
		return decision.KindPairing
	}
	return ""
}

// Verdict is a decision as the decision string spells it; "" if unknown.
func Verdict(d pushauthv1.Decision) string {
	switch d {
	case pushauthv1.Decision_DECISION_APPROVE:
		return decision.Approve
	case pushauthv1.Decision_DECISION_DENY:
		return decision.Deny
	case pushauthv1.Decision_DECISION_REPORT_FRAUD:
		return decision.ReportFraud
	}
	return ""
}

// Answer is what the user (or a location rule) answered.
type Answer struct {
	Decision pushauthv1.Decision
	// Number is the digits the user typed when number_matching asks.
	Number string
	// AutoApproved and LocationRuleID are set when a location rule on the
	// phone approved (docs/decisions.md, "Always approve from this location").
	AutoApproved   bool
	LocationRuleID string
	// SignedAt is when the phone signs; whole seconds are signed.
	SignedAt time.Time
}

// Fields builds the decision string's fields for answering dr as device
// deviceID, from what the phone shows; it does not compare the context hash
// with the server's (Respond does).
func Fields(deviceID string, dr *pushauthv1.DeviceRequest, a Answer) (decision.Fields, error) {
	kind, verdict := Kind(dr.GetKind()), Verdict(a.Decision)
	switch {
	case kind == "":
		return decision.Fields{}, fmt.Errorf("phone: request %s is of unknown kind %s", dr.GetId(), dr.GetKind())
	case verdict == "":
		return decision.Fields{}, fmt.Errorf("phone: %s is not a decision", a.Decision)
	}
	f := decision.Fields{
		RequestID: dr.GetId(), Kind: kind, Decision: verdict, NumberAnswer: a.Number,
		DeviceID: deviceID, RelyingPartyID: dr.GetRelyingPartyId(), UserRef: dr.GetUserRef(),
		ContextSHA256: Shown(dr), AutoApproved: a.AutoApproved, LocationRuleID: a.LocationRuleID,
		SignedAt: a.SignedAt,
	}
	return f, f.Check()
}

// Respond signs a on dr as shown, for device deviceID, and returns the
// RespondToRequest to send. It refuses to sign (ErrContextMismatch) when the
// server's context hash is not the hash of what is shown.
func (k *Key) Respond(deviceID string, dr *pushauthv1.DeviceRequest, a Answer) (*pushauthv1.RespondToRequestRequest, error) {
	f, err := Fields(deviceID, dr, a)
	if err != nil {
		return nil, err
	}
	if dr.GetContextSha256() != f.ContextSHA256 {
		return nil, fmt.Errorf("%w (request %s)", ErrContextMismatch, dr.GetId())
	}
	return k.SignFields(f, a)
}

// SignFields signs f and returns the RespondToRequest carrying it with a's
// answer. Respond is the checked way; tests use this to send what a phone
// would not.
func (k *Key) SignFields(f decision.Fields, a Answer) (*pushauthv1.RespondToRequestRequest, error) {
	sig, err := k.Sign(f.Payload())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.RespondToRequestRequest{
		RequestId: f.RequestID, Decision: a.Decision, NumberAnswer: a.Number,
		AutoApproved: a.AutoApproved, LocationRuleId: a.LocationRuleID,
		SignedTime: timestamppb.New(a.SignedAt), Signature: sig,
	}, nil
}
