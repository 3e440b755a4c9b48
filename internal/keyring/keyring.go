// Package keyring derives pushauth's server-side keys from master secrets,
// so an operator manages a single setting: keyed hashes (codes, links,
// phrases, passcode verifiers) and sealing each get their own subkey. A
// database dump without the master secret cannot be brute-forced or opened.
//
// A keyring holds one or more master keys, each with an id, so keys can be
// rotated: the first key seals and hashes new data, every key opens and
// matches old data. Sealed data names the key that sealed it.
package keyring

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// MasterSize is the length of a master secret in bytes.
const MasterSize = 32

// DefaultID is the id of a master key written without one (a bare base64
// key, as before rotation existed), so such a key keeps opening what it
// sealed once ids are added to the setting.
const DefaultID = "k0"

// maxIDLen bounds key ids so they fit the one-byte length in a header.
const maxIDLen = 32

// Sealed data is either
//
//	v1 (legacy, before key ids): nonce(12) | AES-GCM(ciphertext|tag), AAD = purpose
//	v2: 0xFA 0x02 | len(id) | id | nonce(12) | AES-GCM(ciphertext|tag),
//	    AAD = header | uvarint(len(purpose)) | purpose | row AAD
//
// v1 has no header, so its first bytes are a random nonce that may look
// like a v2 header; Open therefore falls back to v1 when v2 does not open.
const (
	sealMagic   = 0xFA
	sealVersion = 0x02
)

// Key is one master key and its id as written in the secret_key setting.
type Key struct {
	ID     string
	Master []byte
}

// key holds the subkeys derived from one master key.
type key struct {
	id       string
	master   []byte
	hashKey  []byte
	sealV1   cipher.AEAD // opens legacy headerless data only
	sealV2   cipher.AEAD
	sealHead []byte // v2 header naming this key
}

// Keyring holds the derived keys; the first key is used for new data.
type Keyring struct {
	keys []key
}

// New derives a Keyring from one MasterSize-byte master secret with id
// DefaultID.
func New(master []byte) (*Keyring, error) {
	return NewRing(Key{ID: DefaultID, Master: master})
}

// NewRing derives a Keyring from keys; keys[0] seals and hashes new data.
func NewRing(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("keyring: no key")
	}
	k := &Keyring{}
	seen := map[string]bool{}
	for _, mk := range keys {
		if !validID(mk.ID) {
			return nil, fmt.Errorf("keyring: key id must be 1 to %d letters, digits, '-', '_' or '.'", maxIDLen)
		}
		if seen[mk.ID] {
			return nil, fmt.Errorf("keyring: key id %q appears twice", mk.ID)
		}
		seen[mk.ID] = true
		d, err := derive(mk)
		if err != nil {
			return nil, err
		}
		k.keys = append(k.keys, d)
	}
	return k, nil
}

func derive(mk Key) (key, error) {
	if len(mk.Master) != MasterSize {
		return key{}, fmt.Errorf("keyring: master secret %q must be %d bytes, got %d", mk.ID, MasterSize, len(mk.Master))
	}
	hk, err := hkdf.Key(sha256.New, mk.Master, nil, "pushauth keyed hash v1", 32)
	if err != nil {
		return key{}, fmt.Errorf("keyring: %w", err)
	}
	v1, err := gcm(mk.Master, "pushauth seal v1")
	if err != nil {
		return key{}, err
	}
	v2, err := gcm(mk.Master, "pushauth seal v2")
	if err != nil {
		return key{}, err
	}
	head := append([]byte{sealMagic, sealVersion, byte(len(mk.ID))}, mk.ID...)
	return key{id: mk.ID, master: bytes.Clone(mk.Master), hashKey: hk, sealV1: v1, sealV2: v2, sealHead: head}, nil
}

func gcm(master []byte, info string) (cipher.AEAD, error) {
	sk, err := hkdf.Key(sha256.New, master, nil, info, 32)
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
	return aead, nil
}

// IDs lists the key ids, the one used for new data first.
func (k *Keyring) IDs() []string {
	ids := make([]string, len(k.keys))
	for i, key := range k.keys {
		ids[i] = key.id
	}
	return ids
}

// Has reports whether master is one of the keys, whatever its id.
func (k *Keyring) Has(master []byte) bool {
	for _, key := range k.keys {
		if subtle.ConstantTimeCompare(key.master, master) == 1 {
			return true
		}
	}
	return false
}

// ErrUnseal means sealed data was not sealed by these keys for this purpose
// and row, or was changed.
var ErrUnseal = errors.New("keyring: cannot open sealed data")

// Seal encrypts plaintext with AES-256-GCM under the first key, bound to
// purpose and to aad, the identity of the row it is stored in (a factor
// id, a phone number), so a sealed TOTP seed can neither be opened as a
// backup share nor be copied to another factor.
func (k *Keyring) Seal(purpose string, aad, plaintext []byte) []byte {
	key := k.keys[0]
	a := key.sealV2
	out := make([]byte, 0, len(key.sealHead)+a.NonceSize()+len(plaintext)+a.Overhead())
	out = append(out, key.sealHead...)
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand never fails
	out = append(out, nonce...)
	return a.Seal(out, nonce, plaintext, additional(key.sealHead, purpose, aad))
}

func additional(head []byte, purpose string, aad []byte) []byte {
	b := make([]byte, 0, len(head)+binary.MaxVarintLen64+len(purpose)+len(aad))
	b = append(b, head...)
	b = binary.AppendUvarint(b, uint64(len(purpose)))
	b = append(b, purpose...)
	return append(b, aad...)
}

// Open decrypts what Seal sealed for purpose and aad, under whichever
// configured key sealed it. Data sealed before key ids existed (no header)
// was bound to purpose only and opens whatever aad is given.
func (k *Keyring) Open(purpose string, aad, sealed []byte) ([]byte, error) {
	pt, _, err := k.open(purpose, aad, sealed)
	return pt, err
}

// Reseal opens sealed and seals it again under the first key, so that the
// key that sealed it can be dropped from the setting. current says it was
// already sealed under the first key in the current format; next is then
// sealed itself.
func (k *Keyring) Reseal(purpose string, aad, sealed []byte) (next []byte, current bool, err error) {
	pt, id, err := k.open(purpose, aad, sealed)
	if err != nil {
		return nil, false, err
	}
	if id == k.keys[0].id {
		return sealed, true, nil
	}
	return k.Seal(purpose, aad, pt), false, nil
}

// open is Open that also names the key that opened sealed: "" for data
// sealed before key ids existed.
func (k *Keyring) open(purpose string, aad, sealed []byte) ([]byte, string, error) {
	var unknown string
	if len(sealed) >= 3 && sealed[0] == sealMagic && sealed[1] == sealVersion {
		n := int(sealed[2])
		if len(sealed) >= 3+n {
			id := string(sealed[3 : 3+n])
			if key, ok := k.byID(id); ok {
				head := sealed[:3+n]
				if pt, err := openGCM(key.sealV2, sealed[3+n:], additional(head, purpose, aad)); err == nil {
					return pt, id, nil
				}
			} else if validID(id) {
				unknown = id
			}
		}
	}
	for _, key := range k.keys {
		if pt, err := openGCM(key.sealV1, sealed, []byte(purpose)); err == nil {
			return pt, "", nil
		}
	}
	if unknown != "" {
		return nil, "", fmt.Errorf("%w: it was sealed under key id %q, which secret_key does not hold", ErrUnseal, unknown)
	}
	return nil, "", ErrUnseal
}

func openGCM(a cipher.AEAD, b, additional []byte) ([]byte, error) {
	n := a.NonceSize()
	if len(b) < n+a.Overhead() {
		return nil, ErrUnseal
	}
	return a.Open(nil, b[:n], b[n:], additional)
}

func (k *Keyring) byID(id string) (key, bool) {
	for _, key := range k.keys {
		if key.id == id {
			return key, true
		}
	}
	return key{}, false
}

// Hash is a keyed hash of value for purpose under the first key. Different
// purposes never collide, so a code hash cannot stand in for a link hash.
func (k *Keyring) Hash(purpose, value string) []byte {
	return k.keys[0].hash(purpose, value)
}

// Hashes is value's keyed hash under every key, the first key's first, for
// looking up a value stored by its hash across a key rotation.
func (k *Keyring) Hashes(purpose, value string) [][]byte {
	out := make([][]byte, len(k.keys))
	for i, key := range k.keys {
		out[i] = key.hash(purpose, value)
	}
	return out
}

func (key key) hash(purpose, value string) []byte {
	m := hmac.New(sha256.New, key.hashKey)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return m.Sum(nil)
}

// Matches reports whether value hashes to stored under any key, so hashes
// made before a rotation keep verifying. Every key is tried, each compared
// in constant time.
func (k *Keyring) Matches(purpose, value string, stored []byte) bool {
	ok := 0
	for _, key := range k.keys {
		ok |= subtle.ConstantTimeCompare(key.hash(purpose, value), stored)
	}
	return ok == 1
}

// Parse builds a Keyring from the secret_key setting (see ParseKeys).
func Parse(s string) (*Keyring, error) {
	keys, err := ParseKeys(s)
	if err != nil {
		return nil, err
	}
	return NewRing(keys...)
}

// ParseKeys reads the secret_key setting: comma-separated "id:base64"
// entries, the first used for new data, e.g. "k2:BASE64,k1:BASE64". An
// entry without "id:" gets DefaultID, so a single bare base64 key (the
// form before rotation) stays valid. Every problem is reported, one per
// line, naming keys by position and id but never showing key material.
func ParseKeys(s string) ([]Key, error) {
	var keys []Key
	var errs []error
	seen := map[string]bool{}
	n := 0
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		n++
		id, b64, hasID := strings.Cut(entry, ":")
		if !hasID {
			id, b64 = DefaultID, entry
		}
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		name := fmt.Sprintf("key %d (%s)", n, id)
		if !validID(id) {
			errs = append(errs, fmt.Errorf("key %d: the id before ':' must be 1 to %d letters, digits, '-', '_' or '.'", n, maxIDLen))
			name = fmt.Sprintf("key %d", n)
		} else if seen[id] {
			msg := fmt.Sprintf("key %d: id %q is used twice", n, id)
			if id == DefaultID {
				msg += fmt.Sprintf(" (a key without an id gets id %s)", DefaultID)
			}
			errs = append(errs, errors.New(msg))
		}
		seen[id] = true
		master, err := ParseMaster(b64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		keys = append(keys, Key{ID: id, Master: master})
	}
	if n == 0 {
		errs = append(errs, errors.New("no key given"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return keys, nil
}

func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// ParseMaster decodes one master secret written as base64 (standard or URL).
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
