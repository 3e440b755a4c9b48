package relyingparty_test

import (
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// wantField asserts err is InvalidArgument naming field, in the message and
// in a BadRequest detail.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), field) {
		t.Fatalf("got %v %q, want InvalidArgument naming %s", st.Code(), st.Message(), field)
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return
				}
			}
		}
	}
	t.Fatalf("no field violation for %s in %v", field, st.Details())
}

// TestSignedFieldsAreSingleLine: nothing that enters a signed string may
// hold a control character or a line separator, so no value can end its
// line and forge the next one. Relying parties' request context and labels
// and devices' location rule ids are refused naming the field.
func TestSignedFieldsAreSingleLine(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, &pushauthv1.RelyingPartyPolicy{AllowLocationAutomation: true})
		ctx := w.a.WithToken(servertest.Context(t), w.key)
		for _, tc := range []struct {
			name, field string
			req         *pushauthv1.CreateApprovalRequest
		}{
			{"location with U+2028", "context.location", &pushauthv1.CreateApprovalRequest{UserRef: w.user,
				Context: &pushauthv1.RequestContext{Location: "Utrecht\u2028decision=APPROVE"}}},
			{"browser with U+2029", "context.browser", &pushauthv1.CreateApprovalRequest{UserRef: w.user,
				Context: &pushauthv1.RequestContext{Browser: "Firefox\u2029x"}}},
			{"app name with NEL", "context.app_name", &pushauthv1.CreateApprovalRequest{UserRef: w.user,
				Context: &pushauthv1.RequestContext{AppName: "Mijn\u0085Portal"}}},
			{"action with a C1 control", "context.action", &pushauthv1.CreateApprovalRequest{UserRef: w.user,
				Context: &pushauthv1.RequestContext{Action: "Sign\u009b31m"}}},
			{"action with a newline", "context.action", &pushauthv1.CreateApprovalRequest{UserRef: w.user,
				Context: &pushauthv1.RequestContext{Action: "Sign\ndecision=APPROVE"}}},
			{"user_ref with U+2028", "user_ref", &pushauthv1.CreateApprovalRequest{UserRef: w.user + "\u2028x"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := w.a.RP.CreateApproval(ctx, tc.req)
				wantField(t, err, tc.field)
			})
		}
		_, err := w.a.RP.ClaimPairingPhrase(ctx, &pushauthv1.ClaimPairingPhraseRequest{
			Phrase: "mango tulip", UserRef: "piet", AccountLabel: "piet\u2028decision=APPROVE"})
		wantField(t, err, "account_label")
		_, err = w.a.Admin.CreateRelyingParty(w.a.AdminCtx(servertest.Context(t)), &pushauthv1.CreateRelyingPartyRequest{
			Name: "andere-portal", DisplayName: "Andere\u2028Portal"})
		wantField(t, err, "display_name")
		// Unicode that is not a control or separator is fine.
		if _, err := w.a.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: w.user,
			Context: &pushauthv1.RequestContext{Location: "Zürich – CH", Action: "Teken de offerte voor Kavel 12 ✍"}}); err != nil {
			t.Fatal(err)
		}

		dr := w.b.Pending(t, w.phone)
		dctx := w.b.WithToken(servertest.Context(t), w.phone.Credential)
		// respond signs the answer correctly, so only validation can refuse it.
		respond := func(auto bool, rule string) (*pushauthv1.Request, error) {
			now := w.b.Clock.Now()
			f := approvalFields(dr, w.phone.DeviceID, now)
			f.AutoApproved, f.LocationRuleID = auto, rule
			resp, err := w.b.Device.RespondToRequest(dctx, &pushauthv1.RespondToRequestRequest{
				RequestId: dr.GetId(), Decision: pushauthv1.Decision_DECISION_APPROVE, AutoApproved: auto, LocationRuleId: rule,
				SignedTime: timestamppb.New(now), Signature: w.phone.Sign(t, f.Payload())})
			return resp.GetRequest(), err
		}
		for _, tc := range []struct {
			name string
			auto bool
			rule string
		}{
			{"second decision line", true, "x\ndecision=APPROVED"},
			{"second decision line, not automatic", false, "x\ndecision=APPROVED"},
			{"line separator", true, "home\u2028decision=APPROVE"},
			{"other characters", true, "home rule"},
			{"too long", true, strings.Repeat("a", 65)},
			{"rule without auto_approved", false, "home"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := respond(tc.auto, tc.rule)
				wantField(t, err, "location_rule_id")
			})
		}
		r, err := respond(true, "home-1_A")
		if err != nil {
			t.Fatal(err)
		}
		if r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED || r.GetLocationRuleId() != "home-1_A" ||
			strings.Count(string(r.GetSignedDecision().GetPayload()), "decision=") != 1 {
			t.Fatalf("well-formed rule: %v", r)
		}
	})
}

// TestPushFailureReachesRelyingPartyAsReason pushes through the real FCM
// client to a local FCM that refuses with odd text (a line break, markup,
// a project name, the token): the login server sees only a reason and its
// fixed sentence.
func TestPushFailureReachesRelyingPartyAsReason(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		fcm := servertest.NewFakeFCM(t)
		ts := servertest.New(t, url, servertest.WithPushSender(fcm.Sender(t)))
		rp := ts.CreateRelyingParty(t, "mijn-portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		ctx := ts.WithToken(servertest.Context(t), key)
		phone := servertest.NewPhone(t, false)
		phone.PushToken = "odd-token-0123456789"
		ts.Register(t, phone, "+31612345678")
		ts.Pair(t, phone, key, "jan", "jan")

		c, err := ts.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		w := &world{a: ts, key: key}
		wt := w.wait(t, c.GetRequestId())
		p := wt.until(t, pushauthv1.Progress_KIND_DELIVERY_FAILED)
		if p.GetFailureReason() != pushauthv1.DeliveryFailureReason_DELIVERY_FAILURE_REASON_REJECTED ||
			p.GetDetail() != push.ReasonRejected.Message() || p.GetDeviceId() != phone.DeviceID {
			t.Fatalf("progress %v: want REJECTED with its fixed sentence", p)
		}
		if _, err := ts.Decide(t, phone, ts.Pending(t, phone), pushauthv1.Decision_DECISION_APPROVE, ""); err != nil {
			t.Fatal(err)
		}
		final := wt.final(t)
		got, err := ts.RP.GetRequest(ctx, &pushauthv1.GetRequestRequest{RequestId: c.GetRequestId()})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{protojson.Format(p), protojson.Format(final), protojson.Format(got)} {
			for _, leak := range []string{"proj-internal", "exceeded", "<b>", phone.PushToken, "push: fcm"} {
				if strings.Contains(m, leak) {
					t.Errorf("the relying party sees %q in %s", leak, m)
				}
			}
		}
	})
}
