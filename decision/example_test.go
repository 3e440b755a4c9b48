package decision_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/pushauth/pushauth/decision"
)

// A phone builds the decision string from what it shows and signs it; the
// login server verifies it with the device's key and reads it back.
func Example() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	shown := decision.Context{AppName: "Mijn Portal", IPAddress: "192.0.2.1", Location: "Utrecht, NL"}
	f := decision.Fields{
		RequestID:      "req_01",
		Kind:           decision.KindLogin,
		Decision:       decision.Approve,
		NumberAnswer:   "42",
		DeviceID:       "dev_01",
		RelyingPartyID: "rp_01",
		UserRef:        "jan",
		ContextSHA256:  decision.ContextHash(shown, "jan@example.nl"),
		SignedAt:       time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	h := sha256.Sum256(f.Payload())
	sig, _ := ecdsa.SignASN1(rand.Reader, key, h[:])

	// The login server: GetDeviceKey returns SubjectPublicKeyInfo DER.
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	got, err := decision.Verify(spki, f.Payload(), sig)
	if err != nil {
		fmt.Println("do not trust:", err)
		return
	}
	fmt.Println(got.RequestID, got.UserRef, got.Decision, got.NumberAnswer)
	// Output: req_01 jan APPROVE 42
}

func ExampleFields_Payload() {
	f := decision.Fields{
		RequestID: "req_01", Kind: decision.KindPairing, Decision: decision.Deny,
		DeviceID: "dev_01", RelyingPartyID: "rp_01", UserRef: "jan", ContextSHA256: "…",
		SignedAt: time.Unix(1893553445, 900_000_000),
	}
	fmt.Printf("%s\n", f.Payload())
	// Output:
	// pushauth-decision-v1
	// request_id=req_01
	// kind=PAIRING
	// decision=DENY
	// number=
	// device_id=dev_01
	// relying_party_id=rp_01
	// user_ref=jan
	// context_sha256=…
	// auto_approved=false
	// location_rule_id=
	// signed_at=1893553445
}

func ExampleParse() {
	f, err := decision.Parse([]byte("pushauth-decision-v1\nrequest_id=req_01\nkind=LOGIN\ndecision=REPORT_FRAUD\nnumber=\n" +
		"device_id=dev_01\nrelying_party_id=rp_01\nuser_ref=jan\ncontext_sha256=ab\nauto_approved=false\n" +
		"location_rule_id=\nsigned_at=1893553445"))
	fmt.Println(f.Decision, f.SignedAt.Format(time.RFC3339), err)
	// Output: REPORT_FRAUD 2030-01-02T03:04:05Z <nil>
}

func ExampleRegistrationProof() {
	fmt.Printf("%q\n", decision.RegistrationProof("ver_01", []byte("key bytes as sent")))
	// Output: "pushauth-register-v1\nver_01\nc607b6319ce01352032f66c016e64f5df48b9af13e1ddf9e8a2316bd88ff6879"
}
