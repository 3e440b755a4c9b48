// Package devicekey reads the P-256 public keys phones produce and checks
// their signatures. It is package decision's key handling under the names
// the engine uses; the code lives there, shared with apps and login servers.
package devicekey

import (
	"crypto/ecdsa"

	"github.com/pushauth/pushauth/decision"
)

// ErrNotP256 means the key is well-formed but not on P-256.
var ErrNotP256 = decision.ErrNotP256

// Parse reads a public key in either phone format and returns it with its
// canonical SubjectPublicKeyInfo DER form, which is what pushauth stores.
func Parse(b []byte) (*ecdsa.PublicKey, []byte, error) { return decision.ParsePublicKey(b) }

// Verify reports whether sig is an ASN.1 DER ECDSA-SHA256 signature of msg.
func Verify(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	return decision.VerifySignature(pub, msg, sig)
}
