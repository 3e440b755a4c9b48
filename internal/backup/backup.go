// Package backup keeps the app's encrypted backup of its accounts, guarded
// by a short passcode, and restores it to a new phone with the same number.
//
// The app encrypts the backup itself with a key derived from the passcode
// and a random share the service keeps sealed, so neither the blob nor the
// share alone opens it. The passcode is checked against a keyed hash under a
// server-side pepper, so a database dump alone cannot be brute-forced over
// the 10,000 four-digit passcodes; a small attempt budget with growing
// lock-outs, then a wipe, stops guessing through the API.
package backup

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/store"
)

// MaxBlob is the largest backup accepted.
const MaxBlob = 64 << 10

// Config is the passcode policy.
type Config struct {
	MinPasscodeLength int
	// MaxAttempts wrong passcodes wipe the backup.
	MaxAttempts int
	// Lockouts[i] is the lock after i+1 wrong passcodes (the last repeats).
	Lockouts []time.Duration
}

// DefaultConfig: 4 digits, 5 attempts, locks of 0, 1 min, 5 min, 1 h.
func DefaultConfig() Config {
	return Config{MinPasscodeLength: 4, MaxAttempts: 5, Lockouts: []time.Duration{0, time.Minute, 5 * time.Minute, time.Hour}}
}

// Service stores and restores backups.
type Service struct {
	cfg   Config
	store store.Store
	keys  *keyring.Keyring
	pub   approval.Publisher
	now   func() time.Time
	log   *slog.Logger
}

// New returns a Service. pub carries notices to the replaced phone.
func New(cfg Config, st store.Store, keys *keyring.Keyring, pub approval.Publisher, now func() time.Time, log *slog.Logger) *Service {
	return &Service{cfg: cfg, store: st, keys: keys, pub: pub, now: now, log: log}
}

const sharePurpose = "backup-key-share"

func (s *Service) verifier(number, passcode string) []byte {
	return s.keys.Hash("backup-passcode", number+":"+passcode)
}

// trivial are passcodes too easy to guess, beyond repeats and runs.
var trivial = map[string]bool{"1212": true, "2580": true, "0852": true, "1004": true, "2000": true, "1122": true, "6969": true, "1313": true, "4444": true}

// CheckPasscode refuses passcodes that are not digits, too short, or
// trivially guessable.
func (s *Service) CheckPasscode(p string) error {
	if len(p) < s.cfg.MinPasscodeLength || len(p) > 12 {
		return fault.Invalid("passcode", fmt.Sprintf("must be %d to 12 digits", s.cfg.MinPasscodeLength))
	}
	for _, c := range p {
		if c < '0' || c > '9' {
			return fault.Invalid("passcode", "must be digits only")
		}
	}
	same, up, down := true, true, true
	for i := 1; i < len(p); i++ {
		d := int(p[i]) - int(p[i-1])
		same = same && d == 0
		up = up && (d == 1 || d == -9)
		down = down && (d == -1 || d == 9)
	}
	if same || up || down || trivial[p] {
		return fault.Invalid("passcode", "is too easy to guess (like 0000 or 1234): choose another")
	}
	return nil
}

// Put stores or replaces the backup of the device's number and returns the
// key share.
func (s *Service) Put(ctx context.Context, dev store.Device, blob []byte, passcode, current string) ([]byte, time.Time, error) {
	if len(blob) == 0 || len(blob) > MaxBlob {
		return nil, time.Time{}, fault.Invalid("blob", fmt.Sprintf("must be 1 byte to %d KiB", MaxBlob>>10))
	}
	if err := s.CheckPasscode(passcode); err != nil {
		return nil, time.Time{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	old, err := s.store.GetBackup(ctx, dev.PhoneNumber)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, time.Time{}, err
	default:
		if err := s.checkPasscode(ctx, dev, old, current, now, "current_passcode"); err != nil {
			return nil, time.Time{}, err
		}
	}
	share := make([]byte, 32)
	_, _ = rand.Read(share)
	b := store.Backup{
		PhoneNumber: dev.PhoneNumber, DeviceID: dev.ID, Blob: blob,
		SealedShare: s.keys.Seal(sharePurpose, []byte(dev.PhoneNumber), share), Verifier: s.verifier(dev.PhoneNumber, passcode),
		CreatedAt: now, UpdatedAt: now,
	}
	if !old.CreatedAt.IsZero() {
		b.CreatedAt = old.CreatedAt
	}
	err = s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.PutBackup(ctx, b); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: "device:" + dev.ID, Action: "backup.stored", Target: dev.ID,
			Details: map[string]string{"bytes": strconv.Itoa(len(blob)), "replaced": strconv.FormatBool(!old.CreatedAt.IsZero())}})
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("store backup: %w", err)
	}
	return share, now, nil
}

// checkPasscode verifies a passcode against a backup, counting, locking and
// finally wiping on failures.
func (s *Service) checkPasscode(ctx context.Context, dev store.Device, b store.Backup, passcode string, now time.Time, field string) error {
	if now.Before(b.LockedUntil) {
		retry := b.LockedUntil.Sub(now)
		return fault.Exhausted(fmt.Sprintf("too many wrong passcodes; try again in %s", retry.Round(time.Second)), retry)
	}
	if passcode != "" && s.keys.Matches("backup-passcode", b.PhoneNumber+":"+passcode, b.Verifier) {
		if b.FailedAttempts > 0 {
			return s.store.ResetBackupFailures(ctx, b.PhoneNumber)
		}
		return nil
	}
	n, err := s.store.AddBackupFailure(ctx, b.PhoneNumber, func(failures int) time.Time {
		if len(s.cfg.Lockouts) == 0 {
			return time.Time{}
		}
		return now.Add(s.cfg.Lockouts[min(failures-1, len(s.cfg.Lockouts)-1)])
	})
	if err != nil {
		return err
	}
	_ = audit.Write(ctx, s.store, now, audit.Entry{Actor: "device:" + dev.ID, Action: "backup.passcode_failed", Target: dev.ID,
		Details: map[string]string{"attempt": strconv.Itoa(n)}})
	if n >= s.cfg.MaxAttempts {
		if err := s.store.DeleteBackup(ctx, b.PhoneNumber); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		_ = audit.Write(ctx, s.store, now, audit.Entry{Actor: audit.ActorSystem, Action: "backup.wiped", Target: dev.ID,
			Details: map[string]string{"reason": "too many wrong passcodes"}})
		s.log.WarnContext(ctx, "backup wiped after wrong passcodes", "device_id", dev.ID)
		return fault.New(fault.PermissionDenied, "wrong passcode; that was the last attempt and the backup was deleted")
	}
	left := s.cfg.MaxAttempts - n
	if passcode == "" {
		return fault.Invalid(field, "a backup exists: give its passcode to replace it")
	}
	return &fault.Error{Kind: fault.PermissionDenied, Field: field, Message: fmt.Sprintf("wrong passcode; %d attempts left", left)}
}

// Info describes the backup of the device's number.
type Info struct {
	Exists       bool
	UpdatedAt    time.Time
	AttemptsLeft int
	LockedUntil  time.Time
}

// Info says whether the device's number has a backup.
func (s *Service) Info(ctx context.Context, dev store.Device) (Info, error) {
	b, err := s.store.GetBackup(ctx, dev.PhoneNumber)
	if errors.Is(err, store.ErrNotFound) {
		return Info{}, nil
	}
	if err != nil {
		return Info{}, err
	}
	i := Info{Exists: true, UpdatedAt: b.UpdatedAt, AttemptsLeft: s.cfg.MaxAttempts - b.FailedAttempts}
	if s.now().Before(b.LockedUntil) {
		i.LockedUntil = b.LockedUntil
	}
	return i, nil
}

// Delete removes the backup of the device's number.
func (s *Service) Delete(ctx context.Context, dev store.Device) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	err := s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.DeleteBackup(ctx, dev.PhoneNumber); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: "device:" + dev.ID, Action: "backup.deleted", Target: dev.ID})
	})
	if errors.Is(err, store.ErrNotFound) {
		return fault.New(fault.NotFound, "there is no backup for this number")
	}
	return err
}
