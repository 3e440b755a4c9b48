package relyingparty_test

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestPushAlertsInTheDevicesLanguage: the locale the app sends at
// registration is kept, and the alert FCM and APNs receive is in that
// language and names the relying party by its display name; UpdateDevice
// changes the language.
func TestPushAlertsInTheDevicesLanguage(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		fcm, apns := servertest.NewFakeFCM(t), servertest.NewFakeAPNs(t)
		ts := servertest.New(t, url, servertest.WithPushProviders(fcm.Sender(t), apns.Sender(t)))
		ctx := servertest.Context(t)
		rp, err := ts.Admin.CreateRelyingParty(ts.AdminCtx(ctx), &pushauthv1.CreateRelyingPartyRequest{Name: "mijn-portal", DisplayName: "Mijn Portal"})
		if err != nil {
			t.Fatal(err)
		}
		_, key := ts.CreateAPIKey(t, rp.GetRelyingParty().GetId())
		next := func(ch chan servertest.ReceivedPush, token string) servertest.ReceivedPush {
			t.Helper()
			for {
				select {
				case p := <-ch:
					if p.Token == token {
						return p
					}
				case <-ctx.Done():
					t.Fatalf("no push to %s", token)
				}
			}
		}
		const (
			nlLogin   = "Mijn Portal vraagt je goedkeuring om in te loggen. Open de app om het verzoek goed te keuren of af te wijzen."
			nlPairing = "Mijn Portal vraagt om je account te verbinden. Open de app om het verzoek goed te keuren of af te wijzen."
			enLogin   = "Mijn Portal asks you to approve a login. Open the app to approve or deny it."
			enPairing = "Mijn Portal asks to connect your account. Open the app to approve or deny it."
		)
		for i, tc := range []struct {
			name, locale string
			ios          bool
			ch           chan servertest.ReceivedPush
			pairing      [2]string
			login        [2]string
		}{
			{"android nl-NL", "nl-NL", false, fcm.Received, [2]string{"Account verbinden", nlPairing}, [2]string{"Verzoek om goedkeuring", nlLogin}},
			{"iOS nl", "nl", true, apns.Received, [2]string{"Account verbinden", nlPairing}, [2]string{"Verzoek om goedkeuring", nlLogin}},
			{"android en-GB", "en-GB", false, fcm.Received, [2]string{"Connect account", enPairing}, [2]string{"Login request", enLogin}},
			{"iOS without locale", "", true, apns.Received, [2]string{"Connect account", enPairing}, [2]string{"Login request", enLogin}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				p := servertest.NewPhone(t, tc.ios)
				p.Locale = tc.locale
				if tc.ios {
					p.PushToken = strings.Repeat("ab", 31) + "0" + string(rune('0'+i))
				}
				ts.Register(t, p, "+3161234567"+string(rune('0'+i)))
				user := "user-" + string(rune('a'+i))
				ts.PairWith(t, p, key, user, user+"@example.nl", func(string) {
					if got := next(tc.ch, p.PushToken); got.Title != tc.pairing[0] || got.Body != tc.pairing[1] || got.Data["kind"] != "PAIRING" {
						t.Fatalf("pairing push %+v, want %q", got, tc.pairing)
					}
				})
				if _, err := ts.RP.CreateApproval(ts.WithToken(ctx, key), &pushauthv1.CreateApprovalRequest{UserRef: user}); err != nil {
					t.Fatal(err)
				}
				if got := next(tc.ch, p.PushToken); got.Title != tc.login[0] || got.Body != tc.login[1] || got.Data["kind"] != "LOGIN" {
					t.Fatalf("login push %+v, want %q", got, tc.login)
				}
				if tc.locale != "nl-NL" {
					return
				}
				// The user switches the phone to English.
				if _, err := ts.Device.UpdateDevice(ts.WithToken(ctx, p.Credential), &pushauthv1.UpdateDeviceRequest{
					Locale: "en-US", UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"locale"}},
				}); err != nil {
					t.Fatal(err)
				}
				if _, err := ts.RP.CancelRequest(ts.WithToken(ctx, key), &pushauthv1.CancelRequestRequest{RequestId: ts.Pending(t, p).GetId()}); err != nil {
					t.Fatal(err)
				}
				if _, err := ts.RP.CreateApproval(ts.WithToken(ctx, key), &pushauthv1.CreateApprovalRequest{UserRef: user}); err != nil {
					t.Fatal(err)
				}
				if got := next(tc.ch, p.PushToken); got.Title != "Login request" || got.Body != enLogin {
					t.Fatalf("push after switching to English %+v", got)
				}
			})
		}
	})
}
