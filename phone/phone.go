// Package phone is the app's side of pushauth, as a reference for app
// developers and the phone of tests and the CLI: the device key in both
// native formats, the registration proof, answering requests with a signed
// decision, pairing, and backup encryption exactly as
// docs/backup-and-totp.md says.
//
// The signed strings themselves are package decision's; this package builds
// them from what a phone is shown and signs them.
package phone

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/pushauth/pushauth/decision"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Format is how a platform exports a public key.
type Format string

// Public key formats, as the platforms send them.
const (
	// SPKI is X.509 SubjectPublicKeyInfo DER, what Android Keystore exports.
	SPKI Format = "spki"
	// X963 is the 65-byte uncompressed point, what the iOS Secure Enclave
	// exports.
	X963 Format = "x963"
)

// FormatOf is the key format of a platform: X963 for iOS, else SPKI.
func FormatOf(p pushauthv1.Platform) Format {
	if p == pushauthv1.Platform_PLATFORM_IOS {
		return X963
	}
	return SPKI
}

// Key is a device key: a P-256 private key and the format its public half is
// sent in. On a real phone the private key never leaves the keystore.
type Key struct {
	Private *ecdsa.PrivateKey
	Format  Format
}

// NewKey makes a new device key for a platform.
func NewKey(p pushauthv1.Platform) (*Key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Key{Private: priv, Format: FormatOf(p)}, nil
}

// PublicKey is the public key as the platform sends it
// (DeviceRegistration.public_key).
func (k *Key) PublicKey() ([]byte, error) {
	switch k.Format {
	case SPKI, "":
		return x509.MarshalPKIXPublicKey(&k.Private.PublicKey)
	case X963:
		return k.Private.PublicKey.Bytes()
	}
	return nil, fmt.Errorf("phone: unknown public key format %q", k.Format)
}

// Sign signs msg as phones do: ECDSA over SHA-256, ASN.1 DER.
func (k *Key) Sign(msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	return ecdsa.SignASN1(rand.Reader, k.Private, h[:])
}

// MarshalPrivate is the private key as PKCS#8 DER, for a simulator that keeps
// it in a file.
func (k *Key) MarshalPrivate() ([]byte, error) { return x509.MarshalPKCS8PrivateKey(k.Private) }

// ParsePrivate reads a PKCS#8 DER P-256 key written by MarshalPrivate.
func ParsePrivate(der []byte, f Format) (*Key, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("phone: the private key is not PKCS#8: %w", err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, errors.New("phone: the private key is not a P-256 key")
	}
	return &Key{Private: ek, Format: f}, nil
}

// RegistrationProof signs decision.RegistrationProof for verificationID and
// this key's public key (DeviceRegistration.proof_signature).
func (k *Key) RegistrationProof(verificationID string) ([]byte, error) {
	pub, err := k.PublicKey()
	if err != nil {
		return nil, err
	}
	return k.Sign(decision.RegistrationProof(verificationID, pub))
}

// DeviceInfo describes the phone at registration.
type DeviceInfo struct {
	Platform   pushauthv1.Platform
	PushToken  string // FCM registration token or APNs device token (hex)
	Name       string // e.g. "Pixel 8 van Jan"
	AppVersion string
}

// Registration is the device part of CompletePhoneVerification, signed for
// verificationID.
func (k *Key) Registration(verificationID string, d DeviceInfo) (*pushauthv1.DeviceRegistration, error) {
	pub, err := k.PublicKey()
	if err != nil {
		return nil, err
	}
	sig, err := k.Sign(decision.RegistrationProof(verificationID, pub))
	if err != nil {
		return nil, err
	}
	return &pushauthv1.DeviceRegistration{
		PublicKey: pub, ProofSignature: sig, Platform: d.Platform,
		PushToken: d.PushToken, Name: d.Name, AppVersion: d.AppVersion,
	}, nil
}
