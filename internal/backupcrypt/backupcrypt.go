// Package backupcrypt is the phone's side of the backup: the blob format and
// key derivation of docs/backup-and-totp.md, which the server never sees
// inside. The CLI's device simulator uses it; an app implements the same
// from that page.
//
// A blob is a 41-byte header followed by AES-256-GCM ciphertext:
//
//	"PAB1" | Argon2id memory KiB (uint32 BE) | time (uint32 BE) | threads (1 byte) | salt (16) | nonce (12) | ciphertext‖tag
//
// with the header as additional data. The key is
// HKDF-SHA256(IKM = Argon2id(passcode, salt, time, memory, threads, 32) ‖ key_share,
// salt = empty, info = "pushauth-backup-v1", 32 bytes). Salt, nonce and key
// share are new for every upload; the header carries what a new phone needs
// besides the passcode and the share RestoreBackup returns.
package backupcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/argon2"
)

// Sizes and names of the format.
const (
	Magic      = "PAB1"
	ShareSize  = 32
	SaltSize   = 16
	NonceSize  = 12
	HeaderSize = len(Magic) + 4 + 4 + 1 + SaltSize + NonceSize // 41
	Info       = "pushauth-backup-v1"
)

// Params are the Argon2id costs written into a blob's header.
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultParams are RFC 9106's second recommended choice: 64 MiB, 3 passes,
// 4 lanes, which a phone computes in well under a second.
var DefaultParams = Params{MemoryKiB: 64 * 1024, Time: 3, Threads: 4}

// Limits a header must keep to: a crafted blob must not make a phone hang.
const (
	MaxMemoryKiB = 1 << 20 // 1 GiB
	MaxTime      = 10
)

// ErrFormat means the blob is not in this format (or is cut short).
var ErrFormat = errors.New("backupcrypt: not a pushauth backup (unknown format)")

// ErrWrongKey means the blob does not open with this passcode and share.
var ErrWrongKey = errors.New("backupcrypt: cannot decrypt the backup with this passcode and key share")

// NewShare returns a new random key share for one upload.
func NewShare() []byte {
	s := make([]byte, ShareSize)
	_, _ = rand.Read(s) // never fails: crypto/rand aborts the program instead
	return s
}

// Key derives the AES-256 key of a blob.
func Key(passcode string, share, salt []byte, p Params) ([]byte, error) {
	if len(share) != ShareSize {
		return nil, fmt.Errorf("backupcrypt: key share must be %d bytes", ShareSize)
	}
	pk := argon2.IDKey([]byte(passcode), salt, p.Time, p.MemoryKiB, p.Threads, 32)
	return hkdf.Key(sha256.New, append(pk, share...), nil, Info, 32)
}

// Seal encrypts plain for an upload with passcode and share, with a new salt
// and nonce, under DefaultParams.
func Seal(passcode string, share, plain []byte) ([]byte, error) {
	return SealWith(DefaultParams, passcode, share, plain)
}

// SealWith is Seal with chosen Argon2id costs.
func SealWith(p Params, passcode string, share, plain []byte) ([]byte, error) {
	header := make([]byte, HeaderSize)
	copy(header, Magic)
	binary.BigEndian.PutUint32(header[4:], p.MemoryKiB)
	binary.BigEndian.PutUint32(header[8:], p.Time)
	header[12] = p.Threads
	salt, nonce := header[13:13+SaltSize], header[13+SaltSize:]
	_, _ = rand.Read(salt)
	_, _ = rand.Read(nonce)
	gcm, err := newGCM(passcode, share, salt, p)
	if err != nil {
		return nil, err
	}
	return gcm.Seal(header, nonce, plain, header), nil
}

// Open decrypts a blob RestoreBackup returned, with the share it returned.
func Open(passcode string, share, blob []byte) ([]byte, error) {
	p, salt, nonce, err := ParseHeader(blob)
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(passcode, share, salt, p)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, blob[HeaderSize:], blob[:HeaderSize])
	if err != nil {
		return nil, ErrWrongKey
	}
	return plain, nil
}

// ParseHeader reads a blob's Argon2id costs, salt and nonce, refusing costs
// beyond MaxMemoryKiB and MaxTime.
func ParseHeader(blob []byte) (Params, []byte, []byte, error) {
	if len(blob) < HeaderSize+16 || string(blob[:len(Magic)]) != Magic {
		return Params{}, nil, nil, ErrFormat
	}
	p := Params{MemoryKiB: binary.BigEndian.Uint32(blob[4:]), Time: binary.BigEndian.Uint32(blob[8:]), Threads: blob[12]}
	if p.Threads == 0 || p.Time == 0 || p.Time > MaxTime || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxMemoryKiB {
		return Params{}, nil, nil, fmt.Errorf("%w: Argon2id costs out of range", ErrFormat)
	}
	return p, blob[13 : 13+SaltSize], blob[13+SaltSize : HeaderSize], nil
}

func newGCM(passcode string, share, salt []byte, p Params) (cipher.AEAD, error) {
	key, err := Key(passcode, share, salt, p)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
