// Backup encryption: the phone's side of the backup, the blob format and
// key derivation of docs/backup-and-totp.md, which the server never sees
// inside.
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

package phone

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

// Sizes and names of the backup format.
const (
	BackupMagic      = "PAB1"
	KeyShareSize     = 32
	BackupSaltSize   = 16
	BackupNonceSize  = 12
	BackupHeaderSize = len(BackupMagic) + 4 + 4 + 1 + BackupSaltSize + BackupNonceSize // 41
	BackupInfo       = "pushauth-backup-v1"
)

// BackupParams are the Argon2id costs written into a blob's header.
type BackupParams struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// DefaultBackupParams are RFC 9106's second recommended choice: 64 MiB, 3 passes,
// 4 lanes, which a phone computes in well under a second.
var DefaultBackupParams = BackupParams{MemoryKiB: 64 * 1024, Time: 3, Threads: 4}

// Limits a header must keep to: a crafted blob must not make a phone hang.
const (
	MaxBackupMemoryKiB = 1 << 20 // 1 GiB
	MaxBackupTime      = 10
)

// ErrBackupFormat means the blob is not in this format (or is cut short).
var ErrBackupFormat = errors.New("phone: not a pushauth backup (unknown format)")

// ErrBackupKey means the blob does not open with this passcode and share.
var ErrBackupKey = errors.New("phone: cannot decrypt the backup with this passcode and key share")

// NewKeyShare returns a new random key share for one upload.
func NewKeyShare() []byte {
	s := make([]byte, KeyShareSize)
	_, _ = rand.Read(s) // never fails: crypto/rand aborts the program instead
	return s
}

// BackupKey derives the AES-256 key of a blob.
func BackupKey(passcode string, share, salt []byte, p BackupParams) ([]byte, error) {
	if len(share) != KeyShareSize {
		return nil, fmt.Errorf("phone: key share must be %d bytes", KeyShareSize)
	}
	pk := argon2.IDKey([]byte(passcode), salt, p.Time, p.MemoryKiB, p.Threads, 32)
	return hkdf.Key(sha256.New, append(pk, share...), nil, BackupInfo, 32)
}

// SealBackup encrypts plain for an upload with passcode and share, with a new salt
// and nonce, under DefaultBackupParams.
func SealBackup(passcode string, share, plain []byte) ([]byte, error) {
	return SealBackupWith(DefaultBackupParams, passcode, share, plain)
}

// SealBackupWith is SealBackup with chosen Argon2id costs.
func SealBackupWith(p BackupParams, passcode string, share, plain []byte) ([]byte, error) {
	header := make([]byte, BackupHeaderSize)
	copy(header, BackupMagic)
	binary.BigEndian.PutUint32(header[4:], p.MemoryKiB)
	binary.BigEndian.PutUint32(header[8:], p.Time)
	header[12] = p.Threads
	salt, nonce := header[13:13+BackupSaltSize], header[13+BackupSaltSize:]
	_, _ = rand.Read(salt)
	_, _ = rand.Read(nonce)
	gcm, err := newGCM(passcode, share, salt, p)
	if err != nil {
		return nil, err
	}
	return gcm.Seal(header, nonce, plain, header), nil
}

// OpenBackup decrypts a blob RestoreBackup returned, with the share it returned.
func OpenBackup(passcode string, share, blob []byte) ([]byte, error) {
	p, salt, nonce, err := ParseBackupHeader(blob)
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(passcode, share, salt, p)
	if err != nil {
		return nil, err
	}
	plain, err := gcm.Open(nil, nonce, blob[BackupHeaderSize:], blob[:BackupHeaderSize])
	if err != nil {
		return nil, ErrBackupKey
	}
	return plain, nil
}

// ParseBackupHeader reads a blob's Argon2id costs, salt and nonce, refusing costs
// beyond MaxBackupMemoryKiB and MaxBackupTime.
func ParseBackupHeader(blob []byte) (BackupParams, []byte, []byte, error) {
	if len(blob) < BackupHeaderSize+16 || string(blob[:len(BackupMagic)]) != BackupMagic {
		return BackupParams{}, nil, nil, ErrBackupFormat
	}
	p := BackupParams{MemoryKiB: binary.BigEndian.Uint32(blob[4:]), Time: binary.BigEndian.Uint32(blob[8:]), Threads: blob[12]}
	if p.Threads == 0 || p.Time == 0 || p.Time > MaxBackupTime || p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxBackupMemoryKiB {
		return BackupParams{}, nil, nil, fmt.Errorf("%w: Argon2id costs out of range", ErrBackupFormat)
	}
	return p, blob[13 : 13+BackupSaltSize], blob[13+BackupSaltSize : BackupHeaderSize], nil
}

func newGCM(passcode string, share, salt []byte, p BackupParams) (cipher.AEAD, error) {
	key, err := BackupKey(passcode, share, salt, p)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
