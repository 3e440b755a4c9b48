package relyingparty_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestLocationRuleNeverAnswersNumberMatching: with number matching on, a
// location rule cannot know the number, so the phone is told automation is
// not allowed, and an automated approval is refused with the reason, leaving
// the request pending for the user to type the number.
func TestLocationRuleNeverAnswersNumberMatching(t *testing.T) {
	for _, mode := range []pushauthv1.NumberMatchingMode{pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER, pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE} {
		t.Run(mode.String(), func(t *testing.T) {
			servertest.ForEachBackend(t, func(t *testing.T, url string) {
				w := newWorld(t, url, &pushauthv1.RelyingPartyPolicy{NumberMatching: mode, AllowLocationAutomation: true})
				c := w.login(t)
				dr := w.b.Pending(t, w.phone)
				if dr.GetLocationAutomationAllowed() {
					t.Fatal("the phone was offered automation for a request that needs a number")
				}
				ctx := w.b.WithToken(servertest.Context(t), w.phone.Credential)
				now := w.b.Clock.Now()
				for _, answer := range []string{"", c.GetNumber()} {
					req := w.phone.SignedResponse(t, dr, pushauthv1.Decision_DECISION_APPROVE, answer, now)
					f := approvalFields(dr, w.phone.DeviceID, now)
					f.NumberAnswer, f.AutoApproved, f.LocationRuleID = answer, true, "rule-home"
					req.AutoApproved, req.LocationRuleId, req.Signature = true, "rule-home", w.phone.Sign(t, f.Payload())
					_, err := w.b.Device.RespondToRequest(ctx, req)
					wantCode(t, err, codes.PermissionDenied, "asks for the number shown on the login page")
				}
				// Still pending: the user types the number.
				r, err := w.b.Decide(t, w.phone, dr, pushauthv1.Decision_DECISION_APPROVE, c.GetNumber())
				if err != nil || r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED || r.GetReason() != pushauthv1.DecisionReason_DECISION_REASON_USER {
					t.Fatalf("typed approval after the refused automation: %v %v", r, err)
				}
			})
		})
	}
}

// TestLocationRuleWithoutNumberMatching: the same policy without number
// matching offers automation and accepts it.
func TestLocationRuleWithoutNumberMatching(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, &pushauthv1.RelyingPartyPolicy{NumberMatching: pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NONE, AllowLocationAutomation: true})
		w.login(t)
		dr := w.b.Pending(t, w.phone)
		if !dr.GetLocationAutomationAllowed() {
			t.Fatal("automation not offered without number matching")
		}
		now := w.b.Clock.Now()
		req := w.phone.SignedResponse(t, dr, pushauthv1.Decision_DECISION_APPROVE, "", now)
		f := approvalFields(dr, w.phone.DeviceID, now)
		f.AutoApproved, f.LocationRuleID = true, "rule-home"
		req.AutoApproved, req.LocationRuleId, req.Signature = true, "rule-home", w.phone.Sign(t, f.Payload())
		resp, err := w.b.Device.RespondToRequest(w.b.WithToken(servertest.Context(t), w.phone.Credential), req)
		if err != nil || resp.GetRequest().GetReason() != pushauthv1.DecisionReason_DECISION_REASON_LOCATION_RULE {
			t.Fatalf("automated approval: %v %v", resp, err)
		}
	})
}
