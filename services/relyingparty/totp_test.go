package relyingparty_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"
	"google.golang.org/grpc/codes"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := ptotp.GenerateCodeCustom(secret, at, ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTOTP(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := servertest.Context(t)
		rp := ts.CreateRelyingParty(t, "mijn-portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		rctx := ts.WithToken(ctx, key)

		// Codes from the paired app: the seed comes with the pairing approval, once.
		phone := servertest.NewPhone(t, false)
		ts.Register(t, phone, "+31612345678")
		ph, _ := ts.Device.CreatePairingPhrase(ts.WithToken(ctx, phone.Credential), &pushauthv1.CreatePairingPhraseRequest{})
		if _, err := ts.RP.ClaimPairingPhrase(rctx, &pushauthv1.ClaimPairingPhraseRequest{Phrase: ph.GetPhrase(), UserRef: "jan", AccountLabel: "jan"}); err != nil {
			t.Fatal(err)
		}
		dr := ts.Pending(t, phone)
		resp, err := ts.Device.RespondToRequest(ts.WithToken(ctx, phone.Credential), phone.SignedResponse(t, dr, pushauthv1.Decision_DECISION_APPROVE, "", ts.Clock.Now()))
		if err != nil {
			t.Fatal(err)
		}
		seed := resp.GetTotpSeed()
		if seed.GetSecret() == "" || seed.GetDigits() != 6 || seed.GetPeriodSeconds() != 30 || seed.GetAlgorithm() != "SHA1" {
			t.Fatalf("seed %v", seed)
		}
		again, err := ts.Device.RespondToRequest(ts.WithToken(ctx, phone.Credential), phone.SignedResponse(t, dr, pushauthv1.Decision_DECISION_APPROVE, "", ts.Clock.Now()))
		if err != nil || again.GetTotpSeed() != nil {
			t.Fatalf("the seed was handed out twice: %v %v", again, err)
		}
		now := ts.Clock.Now()
		v, err := ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "jan", Code: code(t, seed.GetSecret(), now)})
		if err != nil || v.GetFactorKind() != "CONNECTION" {
			t.Fatalf("app code: %v %v", v, err)
		}
		_, err = ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "jan", Code: code(t, seed.GetSecret(), now)})
		wantCode(t, err, codes.PermissionDenied, "already used")

		// Another authenticator app, by QR code.
		en, err := ts.RP.EnrollTotp(rctx, &pushauthv1.EnrollTotpRequest{UserRef: "jan", AccountLabel: "jan@example.nl"})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(en.GetQrPng(), []byte("\x89PNG")) || en.GetOtpauthUri() == "" {
			t.Fatalf("enrol: %v", en)
		}
		k, err := otp.NewKeyFromURL(en.GetOtpauthUri())
		if err != nil || k.Issuer() != rp.GetDisplayName() || k.AccountName() != "jan@example.nl" {
			t.Fatalf("uri %q: %v", en.GetOtpauthUri(), err)
		}
		// Not active before confirmation.
		ts.Clock.Advance(30 * time.Second)
		now = ts.Clock.Now()
		_, err = ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "jan", Code: code(t, en.GetSecret(), now)})
		wantCode(t, err, codes.PermissionDenied, "wrong code")
		if _, err := ts.RP.ConfirmTotp(rctx, &pushauthv1.ConfirmTotpRequest{UserRef: "jan", FactorId: en.GetFactorId(), Code: code(t, en.GetSecret(), now)}); err != nil {
			t.Fatal(err)
		}
		// The confirming code's step is used; the next step's code passes once,
		// even 30 s late (±1 step), and not twice.
		ts.Clock.Advance(30 * time.Second)
		next := code(t, en.GetSecret(), ts.Clock.Now())
		ts.Clock.Advance(30 * time.Second)
		v, err = ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "jan", Code: next})
		if err != nil || v.GetFactorKind() != "APP" || v.GetFactorId() != en.GetFactorId() {
			t.Fatalf("enrolled app code: %v %v", v, err)
		}
		_, err = ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "jan", Code: next})
		wantCode(t, err, codes.PermissionDenied, "already used")

		f, err := ts.RP.ListUserFactors(rctx, &pushauthv1.ListUserFactorsRequest{UserRef: "jan"})
		if err != nil || len(f.GetPushDevices()) != 1 || len(f.GetTotpFactors()) != 2 {
			t.Fatalf("factors: %v %v", f, err)
		}
		if _, err := ts.RP.RemoveTotp(rctx, &pushauthv1.RemoveTotpRequest{UserRef: "jan", FactorId: en.GetFactorId()}); err != nil {
			t.Fatal(err)
		}
		_, err = ts.RP.RemoveTotp(rctx, &pushauthv1.RemoveTotpRequest{UserRef: "piet", FactorId: f.GetTotpFactors()[0].GetId()})
		wantCode(t, err, codes.NotFound, "")

		// Unknown user: nothing to verify against.
		_, err = ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "nobody", Code: "123456"})
		wantCode(t, err, codes.FailedPrecondition, "no active TOTP")
	})
}

func TestTOTPLockout(t *testing.T) {
	ts := servertest.New(t, servertest.Backends[0].NewURL(t))
	ctx := servertest.Context(t)
	rp := ts.CreateRelyingParty(t, "mijn-portal", nil)
	_, key := ts.CreateAPIKey(t, rp.GetId())
	rctx := ts.WithToken(ctx, key)
	en, err := ts.RP.EnrollTotp(rctx, &pushauthv1.EnrollTotpRequest{UserRef: "jan", AccountLabel: "jan"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.RP.ConfirmTotp(rctx, &pushauthv1.ConfirmTotpRequest{UserRef: "jan", FactorId: en.GetFactorId(), Code: code(t, en.GetSecret(), ts.Clock.Now())}); err != nil {
		t.Fatal(err)
	}
	wrong := func() error {
		c := code(t, en.GetSecret(), ts.Clock.Now().Add(10*time.Minute))
		_, err := ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "jan", Code: c})
		return err
	}
	for range 4 {
		wantCode(t, wrong(), codes.PermissionDenied, " left before a lock-out")
	}
	st := wantCode(t, wrong(), codes.ResourceExhausted, "try again")
	if d := retryOf(st); d != 5*time.Minute {
		t.Fatalf("lock %v", d)
	}
	ts.Clock.Advance(time.Minute)
	_, err = ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "jan", Code: code(t, en.GetSecret(), ts.Clock.Now())})
	wantCode(t, err, codes.ResourceExhausted, "try again")
	ts.Clock.Advance(4 * time.Minute)
	if _, err := ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "jan", Code: code(t, en.GetSecret(), ts.Clock.Now())}); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
	// A success resets the count: four more failures do not lock.
	for range 4 {
		wantCode(t, wrong(), codes.PermissionDenied, " left before a lock-out")
	}
}

// TestTOTPCounting is the count of wrong codes as docs/backup-and-totp.md
// states it: a wrong code spends a try whether it came to ConfirmTotp or
// VerifyTotp, a right one (either call) gives every try back, and a replayed
// code is refused with its own message without spending one.
func TestTOTPCounting(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := servertest.Context(t)
		rp := ts.CreateRelyingParty(t, "mijn-portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		rctx := ts.WithToken(ctx, key)
		en, err := ts.RP.EnrollTotp(rctx, &pushauthv1.EnrollTotpRequest{UserRef: "jan", AccountLabel: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		wrongCode := func() string { return code(t, en.GetSecret(), ts.Clock.Now().Add(10*time.Minute)) }
		verify := func(c string) error {
			_, err := ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "jan", Code: c})
			return err
		}

		_, err = ts.RP.ConfirmTotp(rctx, &pushauthv1.ConfirmTotpRequest{UserRef: "jan", FactorId: en.GetFactorId(), Code: wrongCode()})
		wantCode(t, err, codes.PermissionDenied, "wrong code; 4 tries left before a lock-out")
		if _, err := ts.RP.ConfirmTotp(rctx, &pushauthv1.ConfirmTotpRequest{UserRef: "jan", FactorId: en.GetFactorId(), Code: code(t, en.GetSecret(), ts.Clock.Now())}); err != nil {
			t.Fatal(err)
		}
		// The right ConfirmTotp gave the try back.
		wantCode(t, verify(wrongCode()), codes.PermissionDenied, "wrong code; 4 tries left before a lock-out")

		ts.Clock.Advance(30 * time.Second)
		right := code(t, en.GetSecret(), ts.Clock.Now())
		if err := verify(right); err != nil {
			t.Fatal(err)
		}
		// The right VerifyTotp gave the try back, too.
		for _, left := range []string{"4 tries", "3 tries", "2 tries"} {
			wantCode(t, verify(wrongCode()), codes.PermissionDenied, "wrong code; "+left+" left before a lock-out")
		}
		// A replay is refused as such and spends nothing, even as the last try.
		wantCode(t, verify(right), codes.PermissionDenied, "this code was already used; wait for the next one (no try was counted)")
		wantCode(t, verify(wrongCode()), codes.PermissionDenied, "wrong code; 1 try left before a lock-out")
		wantCode(t, verify(right), codes.PermissionDenied, "already used")
		st := wantCode(t, verify(wrongCode()), codes.ResourceExhausted, "too many wrong codes, try again in 5m0s")
		if d := retryOf(st); d != 5*time.Minute {
			t.Fatalf("lock %v", d)
		}
	})
}
