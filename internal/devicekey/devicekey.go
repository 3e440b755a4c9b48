// Package devicekey reads the P-256 public keys phones produce and checks
// their signatures. Android Keystore exports X.509 SubjectPublicKeyInfo DER;
// the iOS Secure Enclave exports the 65-byte uncompressed X9.63 point. Both
// sign with ASN.1 DER ECDSA over SHA-256.
package devicekey

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
)

// ErrNotP256 means the key is well-formed but not on P-256.
var ErrNotP256 = errors.New("devicekey: not a P-256 key")

// Parse reads a public key in either phone format and returns it with its
// canonical SubjectPublicKeyInfo DER form, which is what pushauth stores.
func Parse(b []byte) (*ecdsa.PublicKey, []byte, error) {
	if len(b) == 65 && b[0] == 4 {
		// Validate the point through crypto/ecdh, which rejects points not
		// on the curve.
		if _, err := ecdh.P256().NewPublicKey(b); err != nil {
			return nil, nil, fmt.Errorf("devicekey: invalid P-256 point: %w", err)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
		if err != nil {
			return nil, nil, fmt.Errorf("devicekey: invalid P-256 point: %w", err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, nil, fmt.Errorf("devicekey: %w", err)
		}
		return pub, der, nil
	}
	k, err := x509.ParsePKIXPublicKey(b)
	if err != nil {
		return nil, nil, fmt.Errorf("devicekey: neither SubjectPublicKeyInfo DER nor a 65-byte uncompressed point: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, nil, ErrNotP256
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("devicekey: %w", err)
	}
	return pub, der, nil
}

// Verify reports whether sig is an ASN.1 DER ECDSA-SHA256 signature of msg.
func Verify(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	h := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(pub, h[:], sig)
}
