// Package decision holds the byte strings a pushauth phone signs, in one
// place for the server, the apps and the login servers: the decision
// string a phone signs when it answers a request, and the registration
// proof it signs when it registers its key (docs/decisions.md,
// docs/registration.md).
//
// A phone builds Fields from what it shows and signs Fields.Payload; the
// server rebuilds the same Fields from its records and verifies; a login
// server gets the payload and signature back (Request.signed_decision),
// checks the signature with VerifySignature against the device's key and
// reads the payload with Parse to compare it with what it asked.
//
// Signatures are ECDSA P-256 over SHA-256, ASN.1 DER: SHA256withECDSA on
// Android, .ecdsaSignatureMessageX962SHA256 on iOS.
package decision

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Version is the first line of every decision string.
const Version = "pushauth-decision-v1"

// Decisions a phone can sign.
const (
	Approve     = "APPROVE"
	Deny        = "DENY"
	ReportFraud = "REPORT_FRAUD"
)

// Kinds of request, as the decision string spells them.
const (
	KindLogin   = "LOGIN"
	KindPairing = "PAIRING"
)

// Context is what the phone shows of the login besides the account label:
// the fields of pushauth.v1.RequestContext.
type Context struct {
	AppName   string
	IPAddress string
	Location  string
	Browser   string
	Action    string
}

// ContextHash is the lower-case hex SHA-256 of what the phone displays: six
// "name=value\n" lines. A phone compares it with DeviceRequest.context_sha256
// before it signs, so it never signs something the server describes
// differently.
func ContextHash(c Context, accountLabel string) string {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"app_name", c.AppName}, {"ip_address", c.IPAddress}, {"location", c.Location},
		{"browser", c.Browser}, {"action", c.Action}, {"account_label", accountLabel},
	} {
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(kv[1])
		b.WriteByte('\n')
	}
	h := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(h[:])
}

// Fields are what a decision signature covers, in the order of the string.
type Fields struct {
	RequestID      string
	Kind           string // KindLogin or KindPairing
	Decision       string // Approve, Deny or ReportFraud
	NumberAnswer   string // the digits the user typed, or ""
	DeviceID       string
	RelyingPartyID string
	UserRef        string
	ContextSHA256  string // ContextHash of what was shown
	AutoApproved   bool
	LocationRuleID string
	SignedAt       time.Time // only whole seconds are signed (the floor)
}

// names are the keys of the decision string's lines after the version.
var names = [...]string{
	"request_id", "kind", "decision", "number", "device_id", "relying_party_id",
	"user_ref", "context_sha256", "auto_approved", "location_rule_id", "signed_at",
}

// values lists f's values in the order of names.
func (f Fields) values() [len(names)]string {
	return [...]string{
		f.RequestID, f.Kind, f.Decision, f.NumberAnswer, f.DeviceID, f.RelyingPartyID,
		f.UserRef, f.ContextSHA256, strconv.FormatBool(f.AutoApproved), f.LocationRuleID,
		strconv.FormatInt(f.SignedAt.Unix(), 10),
	}
}

// Payload is the exact byte string a phone signs: Version and one
// "name=value" line per field, joined by "\n", without a trailing newline.
func (f Fields) Payload() []byte {
	var b strings.Builder
	b.WriteString(Version)
	for i, v := range f.values() {
		b.WriteByte('\n')
		b.WriteString(names[i])
		b.WriteByte('=')
		b.WriteString(v)
	}
	return []byte(b.String())
}

// Check reports the first field that is not SingleLine, so that a caller
// refuses to sign (or accept) a string whose values could add lines.
func (f Fields) Check() error {
	for i, v := range f.values() {
		if !SingleLine(v) {
			return fmt.Errorf("decision: %s must be a single line", names[i])
		}
	}
	return nil
}

// ErrFormat means a payload is not a decision string of this Version.
var ErrFormat = errors.New("decision: not a " + Version + " string")

// Parse reads a decision string. It accepts only what Payload produces:
// the version line, then every field once, in order, each a single line;
// so a payload that parses is one a phone could have signed for exactly
// these Fields.
func Parse(payload []byte) (Fields, error) {
	lines := strings.Split(string(payload), "\n")
	if len(lines) != len(names)+1 || lines[0] != Version {
		return Fields{}, ErrFormat
	}
	var v [len(names)]string
	for i, l := range lines[1:] {
		val, ok := strings.CutPrefix(l, names[i]+"=")
		if !ok {
			return Fields{}, fmt.Errorf("%w: line %d is not %s=…", ErrFormat, i+2, names[i])
		}
		if !SingleLine(val) {
			return Fields{}, fmt.Errorf("%w: %s holds a control character", ErrFormat, names[i])
		}
		v[i] = val
	}
	f := Fields{
		RequestID: v[0], Kind: v[1], Decision: v[2], NumberAnswer: v[3], DeviceID: v[4],
		RelyingPartyID: v[5], UserRef: v[6], ContextSHA256: v[7], LocationRuleID: v[9],
	}
	switch v[8] {
	case "true":
		f.AutoApproved = true
	case "false":
	default:
		return Fields{}, fmt.Errorf("%w: auto_approved is neither true nor false", ErrFormat)
	}
	secs, err := strconv.ParseInt(v[10], 10, 64)
	if err != nil || strconv.FormatInt(secs, 10) != v[10] {
		return Fields{}, fmt.Errorf("%w: signed_at is not Unix seconds", ErrFormat)
	}
	f.SignedAt = time.Unix(secs, 0).UTC()
	return f, nil
}

// SingleLine reports whether s holds no control character (U+0000–U+001F,
// U+007F–U+009F) and no line or paragraph separator (U+2028, U+2029). Every
// value of a signed string must, so that no value can end its line and
// forge the next one (a second "decision=" line, say).
func SingleLine(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}

// RegistrationVersion is the first line of the registration proof.
const RegistrationVersion = "pushauth-register-v1"

// RegistrationProof is the exact byte string an app signs when it
// registers, to prove it holds the private key of publicKey (the key bytes
// exactly as sent): RegistrationVersion, the verification id and the
// lower-case hex SHA-256 of the key, joined by "\n" (docs/registration.md).
func RegistrationProof(verificationID string, publicKey []byte) []byte {
	h := sha256.Sum256(publicKey)
	return fmt.Appendf(nil, "%s\n%s\n%x", RegistrationVersion, verificationID, h)
}
