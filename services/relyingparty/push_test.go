package relyingparty_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestPushThroughFCM runs logins through the real FCM client against a local
// FCM: a live token gets the push (request id only) and the login server
// sees SENT; a dead token shows as DELIVERY_FAILED, is marked dead, and the
// phone still finds the request when it opens the app.
func TestPushThroughFCM(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		fcm := servertest.NewFakeFCM(t)
		ts := servertest.New(t, url, servertest.WithPushSender(fcm.Sender(t)))
		rp := ts.CreateRelyingParty(t, "mijn-portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		ctx := ts.WithToken(servertest.Context(t), key)

		live := servertest.NewPhone(t, false)
		ts.Register(t, live, "+31612345678")
		ts.Pair(t, live, key, "jan", "jan")
		// The pairing request's push may come or not (Pair approves at
		// once; a push for a decided request is skipped).

		c, err := ts.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan", Context: &pushauthv1.RequestContext{Location: "Utrecht, NL"}})
		if err != nil {
			t.Fatal(err)
		}
		data := map[string]string{"kind": "PAIRING"}
		for data["kind"] == "PAIRING" {
			select {
			case data = <-fcm.Pushes:
			case <-time.After(time.Minute):
				t.Fatal("no push reached FCM")
			}
		}
		if data["request_id"] != c.GetRequestId() || data["kind"] != "LOGIN" || len(data) != 2 {
			t.Fatalf("push data %v: want only request id and kind", data)
		}
		w := &world{a: ts, key: key}
		wt := w.wait(t, c.GetRequestId())
		if p := wt.until(t, pushauthv1.Progress_KIND_SENT); p.GetDeviceId() != live.DeviceID {
			t.Fatalf("sent to %q", p.GetDeviceId())
		}
		if _, err := ts.Decide(t, live, ts.Pending(t, live), pushauthv1.Decision_DECISION_APPROVE, ""); err != nil {
			t.Fatal(err)
		}
		wt.final(t)

		dead := servertest.NewPhone(t, false)
		dead.PushToken = "dead-token"
		ts.Clock.Advance(time.Minute)
		ts.Register(t, dead, "+31612345670")
		ts.Pair(t, dead, key, "piet", "piet")
		c, err = ts.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: "piet"})
		if err != nil {
			t.Fatal(err)
		}
		wt = w.wait(t, c.GetRequestId())
		if p := wt.until(t, pushauthv1.Progress_KIND_DELIVERY_FAILED); !strings.Contains(p.GetDetail(), "dead") ||
			p.GetFailureReason() != pushauthv1.DeliveryFailureReason_DELIVERY_FAILURE_REASON_TOKEN_INVALID {
			t.Fatalf("progress %v", p)
		}
		devs, err := ts.RP.ListUserDevices(ctx, &pushauthv1.ListUserDevicesRequest{UserRef: "piet"})
		if err != nil || devs.GetDevices()[0].GetPushTokenAlive() {
			t.Fatalf("dead token not marked: %v %v", devs, err)
		}
		if dr := ts.Pending(t, dead); dr.GetId() != c.GetRequestId() {
			t.Fatalf("the app does not see the request: %v", dr)
		}
		// A new token from the app revives pushes.
		if _, err := ts.Device.UpdateDevice(ts.WithToken(servertest.Context(t), dead.Credential), &pushauthv1.UpdateDeviceRequest{
			PushToken: "fresh-token", UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"push_token"}},
		}); err != nil {
			t.Fatal(err)
		}
		devs, _ = ts.RP.ListUserDevices(ctx, &pushauthv1.ListUserDevicesRequest{UserRef: "piet"})
		if !devs.GetDevices()[0].GetPushTokenAlive() {
			t.Fatal("new push token did not revive the device")
		}
	})
}
