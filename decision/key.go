package decision

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
)

// ErrNotP256 means a public key is well-formed but not on P-256.
var ErrNotP256 = errors.New("decision: not a P-256 key")

// ParsePublicKey reads a device's public key in either phone format and
// returns it with its canonical SubjectPublicKeyInfo DER form, which is
// what the server stores and GetDeviceKey returns. Android Keystore exports
// SubjectPublicKeyInfo DER; the iOS Secure Enclave the 65-byte uncompressed
// X9.63 point.
func ParsePublicKey(b []byte) (*ecdsa.PublicKey, []byte, error) {
	if len(b) == 65 && b[0] == 4 {
		// crypto/ecdh rejects points not on the curve.
		if _, err := ecdh.P256().NewPublicKey(b); err != nil {
			return nil, nil, fmt.Errorf("decision: invalid P-256 point: %w", err)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
		if err != nil {
			return nil, nil, fmt.Errorf("decision: invalid P-256 point: %w", err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, nil, fmt.Errorf("decision: %w", err)
		}
		return pub, der, nil
	}
	k, err := x509.ParsePKIXPublicKey(b)
	if err != nil {
		return nil, nil, fmt.Errorf("decision: neither SubjectPublicKeyInfo DER nor a 65-byte uncompressed point: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, nil, ErrNotP256
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("decision: %w", err)
	}
	return pub, der, nil
}

// VerifySignature reports whether sig is an ASN.1 DER ECDSA-SHA256
// signature of msg (a Payload or a RegistrationProof) by pub.
func VerifySignature(pub *ecdsa.PublicKey, msg, sig []byte) bool {
	h := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(pub, h[:], sig)
}

// ErrBadSignature means a signature does not verify with the key given.
var ErrBadSignature = errors.New("decision: the signature does not verify with the device's key")

// Verify checks a signed decision as a login server receives it
// (Request.signed_decision): the signature with the device's public key in
// either format (GetDeviceKey returns SubjectPublicKeyInfo DER), then the
// payload's form. It returns the signed Fields for the caller to compare
// with what it asked (request id, kind, user, decision).
func Verify(publicKey, payload, sig []byte) (Fields, error) {
	pub, _, err := ParsePublicKey(publicKey)
	if err != nil {
		return Fields{}, err
	}
	if !VerifySignature(pub, payload, sig) {
		return Fields{}, ErrBadSignature
	}
	return Parse(payload)
}
