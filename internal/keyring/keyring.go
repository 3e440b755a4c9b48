// Package keyring derives pushauth's server-side keys from one master secret,
// so an operator manages a single value: keyed hashes (codes, links, phrases)
// and, later, sealing keys each get their own subkey. A database dump without
// the master secret cannot be brute-forced.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
)

// MasterSize is the length of the master secret in bytes.
const MasterSize = 32

// Keyring holds the derived keys.
type Keyring struct {
	hashKey []byte
	seal    cipher.AEAD
}

// New derives a Keyring from a MasterSize-byte master secret.
func New(master []byte) (*Keyring, error) {
	if len(master) != MasterSize {
		return nil, fmt.Errorf("keyring: master secret must be %d bytes, got %d", MasterSize, len(master))
	}
	hk, err := hkdf.Key(sha256.New, master, nil, "pushauth keyed hash v1", 32)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	sk, err := hkdf.Key(sha256.New, master, nil, "pushauth seal v1", 32)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	block, err := aes.NewCipher(sk)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return &Keyring{hashKey: hk, seal: aead}, nil
}

// ErrUnseal means sealed data was not sealed by this key for this purpose,
// or was changed.
var ErrUnseal = errors.New("keyring: cannot open sealed data")

// Seal encrypts plaintext with AES-256-GCM under the server key, bound to
// purpose, so a sealed TOTP seed cannot be opened as a backup share.
func (k *Keyring) Seal(purpose string, plaintext []byte) []byte {
	nonce := make([]byte, k.seal.NonceSize(), k.seal.NonceSize()+len(plaintext)+k.seal.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand never fails
	return k.seal.Seal(nonce, nonce, plaintext, []byte(purpose))
}

// Open decrypts what Seal sealed for purpose.
func (k *Keyring) Open(purpose string, sealed []byte) ([]byte, error) {
	n := k.seal.NonceSize()
	if len(sealed) < n+k.seal.Overhead() {
		return nil, ErrUnseal
	}
	pt, err := k.seal.Open(nil, sealed[:n], sealed[n:], []byte(purpose))
	if err != nil {
		return nil, ErrUnseal
	}
	return pt, nil
}

// ParseMaster decodes a master secret written as base64 (standard or URL).
func ParseMaster(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != MasterSize {
				return nil, fmt.Errorf("must decode to %d bytes, got %d", MasterSize, len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// Hash is a keyed hash of value for purpose. Different purposes never
// collide, so a code hash cannot stand in for a link hash.
func (k *Keyring) Hash(purpose, value string) []byte {
	m := hmac.New(sha256.New, k.hashKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return m.Sum(nil)
}

// Matches reports in constant time whether value hashes to stored.
func (k *Keyring) Matches(purpose, value string, stored []byte) bool {
	return subtle.ConstantTimeCompare(k.Hash(purpose, value), stored) == 1
}
