package servertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"regexp"
	"testing"

	"github.com/pushauth/pushauth/internal/registration"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Phone is a simulated authenticator app: a P-256 key, and after Register a
// device id and credential.
type Phone struct {
	Key        *ecdsa.PrivateKey
	PublicKey  []byte // as sent: SPKI DER (Android) or the raw point (iOS)
	Platform   pushauthv1.Platform
	DeviceID   string
	Credential string
}

// NewPhone makes a phone with a fresh key; ios selects the iOS key format.
func NewPhone(t testing.TB, ios bool) *Phone {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &Phone{Key: key, Platform: pushauthv1.Platform_PLATFORM_ANDROID}
	if ios {
		p.Platform = pushauthv1.Platform_PLATFORM_IOS
		p.PublicKey, err = key.PublicKey.Bytes()
	} else {
		p.PublicKey, err = x509.MarshalPKIXPublicKey(&key.PublicKey)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Sign signs msg the way phones do: ECDSA over SHA-256, ASN.1 DER.
func (p *Phone) Sign(t testing.TB, msg []byte) []byte {
	t.Helper()
	h := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, p.Key, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// Registration is the device part of CompletePhoneVerification, signed for
// verificationID.
func (p *Phone) Registration(t testing.TB, verificationID string) *pushauthv1.DeviceRegistration {
	t.Helper()
	return &pushauthv1.DeviceRegistration{
		PublicKey:      p.PublicKey,
		ProofSignature: p.Sign(t, registration.ProofMessage(verificationID, p.PublicKey)),
		Platform:       p.Platform,
		PushToken:      "push-token-" + randomHex(8),
		Name:           "Test phone",
		AppVersion:     "1.0.0",
	}
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
	st, err := ts.Device.StartPhoneVerification(ctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: number})
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
