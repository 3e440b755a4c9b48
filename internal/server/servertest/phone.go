package servertest

import (
	"crypto/ecdsa"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Phone is a simulated authenticator app: a P-256 key, and after Register a
// device id and credential. It is package phone's app with test helpers:
// the signing and the signed strings are phone's and decision's.
type Phone struct {
	Key       *ecdsa.PrivateKey
	PublicKey []byte // as sent: SPKI DER (Android) or the raw point (iOS)
	Platform  pushauthv1.Platform
	// PushToken is registered; empty means a random working token.
	PushToken string
	// Locale is sent at registration (StartPhoneVerification.locale).
	Locale     string
	DeviceID   string
	Credential string
}

// NewPhone makes a phone with a fresh key; ios selects the iOS key format.
func NewPhone(t testing.TB, ios bool) *Phone {
	t.Helper()
	platform := pushauthv1.Platform_PLATFORM_ANDROID
	if ios {
		platform = pushauthv1.Platform_PLATFORM_IOS
	}
	key, err := phone.NewKey(platform)
	if err != nil {
		t.Fatal(err)
	}
	p := &Phone{Key: key.Private, Platform: platform}
	if p.PublicKey, err = key.PublicKey(); err != nil {
		t.Fatal(err)
	}
	return p
}

// AppKey is p's key as package phone's Key.
func (p *Phone) AppKey() *phone.Key {
	return &phone.Key{Private: p.Key, Format: phone.FormatOf(p.Platform)}
}

// App is p as package phone's Device on ts's DeviceService, with ts's clock.
func (p *Phone) App(ts *TestServer) *phone.Device {
	return &phone.Device{Key: p.AppKey(), ID: p.DeviceID, Credential: p.Credential, API: ts.Device, Now: ts.Clock.Now}
}

// Sign signs msg the way phones do: ECDSA over SHA-256, ASN.1 DER.
func (p *Phone) Sign(t testing.TB, msg []byte) []byte {
	t.Helper()
	sig, err := p.AppKey().Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// Registration is the device part of CompletePhoneVerification, signed for
// verificationID.
func (p *Phone) Registration(t testing.TB, verificationID string) *pushauthv1.DeviceRegistration {
	t.Helper()
	if p.PushToken == "" {
		p.PushToken = "push-token-" + randomHex(8)
	}
	reg, err := p.AppKey().Registration(verificationID, phone.DeviceInfo{
		Platform: p.Platform, PushToken: p.PushToken, Name: "Test phone", AppVersion: "1.0.0",
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

var (
	smsCode = regexp.MustCompile(`\b(\d{6})\b`)
	smsLink = regexp.MustCompile(`/v/([A-Za-z0-9_-]{16,64})`)
)

// LastSMS reads the newest outbox message to number (E.164) and returns its
// code and link token.
func (ts *TestServer) LastSMS(t testing.TB, number string) (code, linkToken string) {
	t.Helper()
	resp, err := ts.Admin.ListOutboxMessages(ts.AdminCtx(Context(t)), &pushauthv1.ListOutboxMessagesRequest{PhoneNumber: number, Limit: 1})
	if err != nil {
		t.Fatalf("ListOutboxMessages: %v", err)
	}
	if len(resp.GetMessages()) == 0 {
		t.Fatalf("no SMS to %s in the outbox", number)
	}
	body := resp.GetMessages()[0].GetBody()
	c, l := smsCode.FindStringSubmatch(body), smsLink.FindStringSubmatch(body)
	if c == nil || l == nil {
		t.Fatalf("SMS without code or link: %q", body)
	}
	return c[1], l[1]
}

// Register runs the whole registration of p for number (E.164) through the
// API and the outbox, and fills in DeviceID and Credential.
func (ts *TestServer) Register(t testing.TB, p *Phone, number string) {
	t.Helper()
	ctx := Context(t)
	st, err := ts.Device.StartPhoneVerification(ctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: number, Locale: p.Locale})
	if err != nil {
		t.Fatalf("StartPhoneVerification: %v", err)
	}
	code, _ := ts.LastSMS(t, number)
	resp, err := ts.Device.CompletePhoneVerification(ctx, &pushauthv1.CompletePhoneVerificationRequest{
		VerificationId: st.GetVerificationId(),
		Proof:          &pushauthv1.CompletePhoneVerificationRequest_Code{Code: code},
		Device:         p.Registration(t, st.GetVerificationId()),
	})
	if err != nil {
		t.Fatalf("CompletePhoneVerification: %v", err)
	}
	p.DeviceID, p.Credential = resp.GetDevice().GetId(), resp.GetDeviceCredential()
}

// Decide signs and sends a decision on dr as the app would: the signed
// string is built from what the phone was shown.
func (ts *TestServer) Decide(t testing.TB, p *Phone, dr *pushauthv1.DeviceRequest, d pushauthv1.Decision, answer string) (*pushauthv1.Request, error) {
	t.Helper()
	req := p.SignedResponse(t, dr, d, answer, ts.Clock.Now())
	resp, err := ts.Device.RespondToRequest(ts.WithToken(Context(t), p.Credential), req)
	return resp.GetRequest(), err
}

// SignedResponse builds a RespondToRequest signed at signedAt over what dr
// shows (phone.Fields), without comparing the context hash: tests send what
// a careful phone would not.
func (p *Phone) SignedResponse(t testing.TB, dr *pushauthv1.DeviceRequest, d pushauthv1.Decision, answer string, signedAt time.Time) *pushauthv1.RespondToRequestRequest {
	t.Helper()
	a := phone.Answer{Decision: d, Number: answer, SignedAt: signedAt}
	f, err := phone.Fields(p.DeviceID, dr, a)
	if err != nil {
		t.Fatalf("phone.Fields: %v", err)
	}
	req, err := p.AppKey().SignFields(f, a)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// Pending returns the one request waiting for p, failing if there is not
// exactly one.
func (ts *TestServer) Pending(t testing.TB, p *Phone) *pushauthv1.DeviceRequest {
	t.Helper()
	resp, err := ts.Device.ListPendingRequests(ts.WithToken(Context(t), p.Credential), &pushauthv1.ListPendingRequestsRequest{})
	if err != nil {
		t.Fatalf("ListPendingRequests: %v", err)
	}
	if len(resp.GetRequests()) != 1 {
		t.Fatalf("%d pending requests, want 1: %v", len(resp.GetRequests()), resp.GetRequests())
	}
	return resp.GetRequests()[0]
}

// Pair connects p to userRef at the relying party of apiKey through the
// phrase flow and returns the pairing request's final state.
func (ts *TestServer) Pair(t testing.TB, p *Phone, apiKey, userRef, label string) *pushauthv1.Request {
	t.Helper()
	return ts.PairWith(t, p, apiKey, userRef, label, nil)
}

// PairWith is Pair that calls beforeAnswer, when not nil, with the pairing
// request's id before the phone approves it: a test that checks the
// pairing push must see it first, since a push for a request already
// decided is dropped.
func (ts *TestServer) PairWith(t testing.TB, p *Phone, apiKey, userRef, label string, beforeAnswer func(requestID string)) *pushauthv1.Request {
	t.Helper()
	ctx := Context(t)
	ph, err := ts.Device.CreatePairingPhrase(ts.WithToken(ctx, p.Credential), &pushauthv1.CreatePairingPhraseRequest{})
	if err != nil {
		t.Fatalf("CreatePairingPhrase: %v", err)
	}
	claim, err := ts.RP.ClaimPairingPhrase(ts.WithToken(ctx, apiKey), &pushauthv1.ClaimPairingPhraseRequest{
		Phrase: strings.ToUpper(ph.GetPhrase()), UserRef: userRef, AccountLabel: label,
	})
	if err != nil {
		t.Fatalf("ClaimPairingPhrase: %v", err)
	}
	dr, err := ts.Device.GetRequest(ts.WithToken(ctx, p.Credential), &pushauthv1.DeviceServiceGetRequestRequest{RequestId: claim.GetRequestId()})
	if err != nil {
		t.Fatalf("device GetRequest: %v", err)
	}
	if beforeAnswer != nil {
		beforeAnswer(claim.GetRequestId())
	}
	r, err := ts.Decide(t, p, dr.GetRequest(), pushauthv1.Decision_DECISION_APPROVE, "")
	if err != nil {
		t.Fatalf("approve pairing: %v", err)
	}
	return r
}
