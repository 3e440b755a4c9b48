package decision_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pushauth/pushauth/decision"
)

var sample = decision.Fields{
	RequestID: "req_1", Kind: decision.KindLogin, Decision: decision.Approve, NumberAnswer: "42",
	DeviceID: "dev_1", RelyingPartyID: "rp_1", UserRef: "jan", ContextSHA256: strings.Repeat("ab", 32),
	SignedAt: time.Date(2030, 1, 2, 3, 4, 5, 900_000_000, time.UTC),
}

// The string is exactly the one docs/decisions.md shows.
func TestPayloadIsTheDocumentedString(t *testing.T) {
	want := "pushauth-decision-v1\nrequest_id=req_1\nkind=LOGIN\ndecision=APPROVE\nnumber=42\ndevice_id=dev_1\n" +
		"relying_party_id=rp_1\nuser_ref=jan\ncontext_sha256=" + strings.Repeat("ab", 32) +
		"\nauto_approved=false\nlocation_rule_id=\nsigned_at=1893553445"
	if got := string(sample.Payload()); got != want {
		t.Fatalf("Payload:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseRoundTrip(t *testing.T) {
	f := sample
	f.AutoApproved, f.LocationRuleID, f.NumberAnswer = true, "home", ""
	got, err := decision.Parse(f.Payload())
	if err != nil {
		t.Fatal(err)
	}
	f.SignedAt = f.SignedAt.Truncate(time.Second)
	if got != f {
		t.Fatalf("Parse = %+v, want %+v", got, f)
	}
}

func TestParseRefusesWhatPayloadNeverWrites(t *testing.T) {
	good := string(sample.Payload())
	for name, p := range map[string]string{
		"other version":   strings.Replace(good, "v1", "v2", 1),
		"trailing \\n":    good + "\n",
		"CRLF":            strings.ReplaceAll(good, "\n", "\r\n"),
		"second decision": good + "\ndecision=APPROVE",
		"swapped lines":   strings.Replace(good, "kind=LOGIN\ndecision=APPROVE", "decision=APPROVE\nkind=LOGIN", 1),
		"bad bool":        strings.Replace(good, "auto_approved=false", "auto_approved=no", 1),
		"bad time":        strings.Replace(good, "signed_at=1893553445", "signed_at=+1893553445", 1),
		"control char":    strings.Replace(good, "user_ref=jan", "user_ref=j\u0085an", 1),
		"empty":           "",
	} {
		if _, err := decision.Parse([]byte(p)); !errors.Is(err, decision.ErrFormat) {
			t.Errorf("%s: Parse = %v, want ErrFormat", name, err)
		}
	}
}

func TestCheck(t *testing.T) {
	if err := sample.Check(); err != nil {
		t.Fatal(err)
	}
	f := sample
	f.UserRef = "jan\u2028decision=APPROVE"
	if err := f.Check(); err == nil || !strings.Contains(err.Error(), "user_ref") {
		t.Fatalf("Check = %v, want one naming user_ref", err)
	}
}

func TestSingleLine(t *testing.T) {
	for _, s := range []string{"", "Utrecht, NL", "Zürich – CH ✍"} {
		if !decision.SingleLine(s) {
			t.Errorf("SingleLine(%q) = false", s)
		}
	}
	for _, s := range []string{"a\nb", "a\rb", "a\x00b", "a\tb", "a\x7fb", "a\u0085b", "a\u009fb", "a\u2028b", "a\u2029b"} {
		if decision.SingleLine(s) {
			t.Errorf("SingleLine(%q) = true", s)
		}
	}
}

// The context hash of docs/decisions.md, computed from the page's lines.
func TestContextHash(t *testing.T) {
	c := decision.Context{AppName: "Mijn Portal", IPAddress: "192.0.2.1", Location: "Utrecht, NL", Browser: "Firefox", Action: ""}
	lines := "app_name=Mijn Portal\nip_address=192.0.2.1\nlocation=Utrecht, NL\nbrowser=Firefox\naction=\naccount_label=jan@example.nl\n"
	sum := sha256.Sum256([]byte(lines))
	if got, want := decision.ContextHash(c, "jan@example.nl"), hexString(sum[:]); got != want {
		t.Fatalf("ContextHash = %s, want %s", got, want)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestRegistrationProof(t *testing.T) {
	key := []byte{1, 2, 3}
	sum := sha256.Sum256(key)
	want := "pushauth-register-v1\nver_1\n" + hexString(sum[:])
	if got := string(decision.RegistrationProof("ver_1", key)); got != want {
		t.Fatalf("RegistrationProof = %q, want %q", got, want)
	}
}

func TestVerifyBothKeyFormats(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	point, _ := key.PublicKey.Bytes()
	h := sha256.Sum256(sample.Payload())
	sig, _ := ecdsa.SignASN1(rand.Reader, key, h[:])
	for _, pub := range [][]byte{spki, point} {
		f, err := decision.Verify(pub, sample.Payload(), sig)
		if err != nil || f.RequestID != "req_1" {
			t.Fatalf("Verify = %+v, %v", f, err)
		}
		_, der, err := decision.ParsePublicKey(pub)
		if err != nil || !bytes.Equal(der, spki) {
			t.Fatalf("ParsePublicKey: %v", err)
		}
	}
	tampered := bytes.Replace(sample.Payload(), []byte("decision=APPROVE"), []byte("decision=DENY"), 1)
	if _, err := decision.Verify(spki, tampered, sig); !errors.Is(err, decision.ErrBadSignature) {
		t.Fatalf("Verify of a changed payload = %v, want ErrBadSignature", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384, _ := x509.MarshalPKIXPublicKey(&other.PublicKey)
	if _, _, err := decision.ParsePublicKey(p384); !errors.Is(err, decision.ErrNotP256) {
		t.Fatalf("ParsePublicKey(P-384) = %v, want ErrNotP256", err)
	}
}
