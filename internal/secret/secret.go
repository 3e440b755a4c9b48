// Package secret makes and checks the bearer secrets pushauth hands out (API
// keys, device credentials). A secret is "<kind>_<id>.<random>": the id part
// is visible and indexed so a secret can be found without scanning, and only a
// SHA-256 of the random part is stored. The random part has 256 bits, so a
// fast hash is enough: there is nothing to brute-force.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"strings"
)

// ErrMalformed means a presented secret does not have the expected shape.
var ErrMalformed = errors.New("secret: malformed")

// idEncoding is Crockford's base32 in lower case: its alphabet is in ASCII
// order, so encoded IDs sort like the bytes they encode.
var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// Secret is a freshly made secret. Token is shown to its owner once.
type Secret struct {
	Token  string // the whole secret, as the client sends it
	Prefix string // the visible, unique part: "<kind>_<id>"
	Hash   []byte // what is stored
}

// New makes a secret whose prefix starts with kind (e.g. "pak" for API keys).
func New(kind string) (Secret, error) {
	var id [10]byte
	var rnd [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Secret{}, err
	}
	if _, err := rand.Read(rnd[:]); err != nil {
		return Secret{}, err
	}
	prefix := kind + "_" + idEncoding.EncodeToString(id[:])
	random := base64.RawURLEncoding.EncodeToString(rnd[:])
	return Secret{Token: prefix + "." + random, Prefix: prefix, Hash: hash(random)}, nil
}

// Parse splits a presented token of the given kind into its prefix and its
// random part.
func Parse(kind, token string) (prefix, random string, err error) {
	prefix, random, ok := strings.Cut(token, ".")
	if !ok || !strings.HasPrefix(prefix, kind+"_") || len(prefix) > 64 || len(random) != 43 {
		return "", "", ErrMalformed
	}
	return prefix, random, nil
}

// Kind returns the kind named by a token's prefix, or "" if it has none.
func Kind(token string) string {
	kind, _, ok := strings.Cut(token, "_")
	if !ok || len(kind) > 8 {
		return ""
	}
	return kind
}

// Matches reports in constant time whether random hashes to stored.
func Matches(random string, stored []byte) bool {
	return subtle.ConstantTimeCompare(hash(random), stored) == 1
}

func hash(random string) []byte {
	h := sha256.Sum256([]byte(random))
	return h[:]
}

// NewID returns a random, sortable-enough identifier "<kind>_<26 chars>".
// The first 6 bytes are the time in milliseconds, so IDs made later sort
// later (lists page by ID in creation order).
func NewID(kind string, unixMilli int64) string {
	var b [16]byte
	for i := 5; i >= 0; i-- {
		b[i] = byte(unixMilli)
		unixMilli >>= 8
	}
	if _, err := rand.Read(b[6:]); err != nil {
		panic("secret: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	return kind + "_" + idEncoding.EncodeToString(b[:])
}
