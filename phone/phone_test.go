package phone_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

func TestKeyRoundTrip(t *testing.T) {
	k, err := phone.NewKey(pushauthv1.Platform_PLATFORM_IOS)
	if err != nil {
		t.Fatal(err)
	}
	der, err := k.MarshalPrivate()
	if err != nil {
		t.Fatal(err)
	}
	back, err := phone.ParsePrivate(der, phone.X963)
	if err != nil || !back.Private.Equal(k.Private) {
		t.Fatalf("ParsePrivate: %v", err)
	}
	if _, err := phone.ParsePrivate([]byte("nope"), phone.SPKI); err == nil {
		t.Fatal("ParsePrivate accepted garbage")
	}
}

func TestE164(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"+31 6 12345678", ""}: "+31612345678",
		{"0031612345678", ""}:  "+31612345678",
		{"06-12345678", "nl"}:  "+31612345678",
	} {
		if got, err := phone.E164(in[0], in[1]); err != nil || got != want {
			t.Errorf("E164(%q, %q) = %q, %v", in[0], in[1], got, err)
		}
	}
	for _, in := range [][2]string{{"0612345678", ""}, {"hello", "NL"}, {"", "NL"}} {
		if _, err := phone.E164(in[0], in[1]); !errors.Is(err, phone.ErrNumber) {
			t.Errorf("E164(%q, %q) = %v", in[0], in[1], err)
		}
	}
}

// The phone package registers, pairs and answers against a real server:
// what it signs is what the engine verifies.
func TestAgainstTheServer(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := servertest.Context(t)
		rp := ts.CreateRelyingParty(t, "portal", nil)
		_, apiKey := ts.CreateAPIKey(t, rp.GetId())
		for _, platform := range []pushauthv1.Platform{pushauthv1.Platform_PLATFORM_ANDROID, pushauthv1.Platform_PLATFORM_IOS} {
			number := "+31612345670"
			if platform == pushauthv1.Platform_PLATFORM_IOS {
				number = "+31612345671"
			}
			st, err := ts.Device.StartPhoneVerification(ctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: number})
			if err != nil {
				t.Fatal(err)
			}
			code, _ := ts.LastSMS(t, number)
			key, err := phone.NewKey(platform)
			if err != nil {
				t.Fatal(err)
			}
			dev, err := phone.Register(ctx, ts.Device, key, st.GetVerificationId(), phone.Proof{Code: code},
				phone.DeviceInfo{Platform: platform, PushToken: "tok-" + platform.String(), Name: "test", AppVersion: "1"})
			if err != nil {
				t.Fatalf("%s: Register: %v", platform, err)
			}
			dev.Now = ts.Clock.Now
			words, _, err := dev.PairingPhrase(ctx)
			if err != nil {
				t.Fatal(err)
			}
			user := "user-" + platform.String()
			if _, err := ts.RP.ClaimPairingPhrase(ts.WithToken(ctx, apiKey), &pushauthv1.ClaimPairingPhraseRequest{
				Phrase: strings.ToUpper(words), UserRef: user, AccountLabel: user,
			}); err != nil {
				t.Fatal(err)
			}
			dr, err := dev.Next(ctx, pushauthv1.RequestKind_REQUEST_KIND_UNSPECIFIED)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := dev.Answer(ctx, dr, phone.Answer{Decision: pushauthv1.Decision_DECISION_APPROVE})
			if err != nil || resp.GetRequest().GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED || resp.GetTotpSeed().GetSecret() == "" {
				t.Fatalf("%s: pairing answer: %v %v", platform, resp, err)
			}
			if p, err := dev.Pending(ctx); err != nil || len(p) != 0 {
				t.Fatalf("pending after answering: %v %v", p, err)
			}
		}
	})
}
