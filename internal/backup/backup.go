// Package backup keeps the app's encrypted backup of its accounts, guarded
// by a short passcode, and restores it to a new phone with the same number.
//
// The app encrypts the backup itself with a key derived from the passcode
// and a random key share it uploads with the blob; the service keeps the
// share sealed and hands it out only with the blob, after a right passcode,
// so neither the blob nor the share alone opens it
// (docs/backup-and-totp.md). The passcode is checked against a keyed hash under a
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

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/guess"
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
	cfg    Config
	store  store.Store
	keys   *keyring.Keyring
	pub    events.Publisher
	now    func() time.Time
	log    *slog.Logger
	checks guess.Observer
}

// New returns a Service. pub carries notices to the replaced phone; checks
// may be nil.
func New(cfg Config, st store.Store, keys *keyring.Keyring, pub events.Publisher, now func() time.Time, log *slog.Logger, checks guess.Observer) *Service {
	return &Service{cfg: cfg, store: st, keys: keys, pub: pub, now: now, log: log, checks: checks}
}

// budget is the passcode's guess budget of a number's backup: it outlives
// a wipe, so a new backup does not hand out fresh tries at once.
func (s *Service) budget(number string) store.GuessBudget {
	return store.GuessBudget{Key: "backup:" + number, Max: s.cfg.MaxAttempts, Lockout: guess.Schedule(s.cfg.Lockouts...)}
}

// SharePurpose is the keyring purpose key shares are sealed for, bound to
// the phone number (the row); package reseal re-seals them after a rotation.
const SharePurpose = "backup-key-share"

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

// ShareSize is the size of a backup's key share.
const ShareSize = 32

// Put stores or replaces the backup of the device's number and returns the
// key share stored with it. Replacing needs the current passcode, and the
// new backup is written only over the backup that passcode was checked
// against.
//
// share is the key share the app encrypted blob with: it is kept sealed with
// this blob, and only a restore with the right passcode hands it out again,
// so the share a restore returns is always the one of the blob it returns.
// An app that sends none (older apps) gets the share the backup already has,
// or a new random one for a first backup: one share for the life of the
// backup, which such an app mixes into the next upload.
func (s *Service) Put(ctx context.Context, dev store.Device, blob []byte, passcode, current string, share []byte) ([]byte, time.Time, error) {
	if len(blob) == 0 || len(blob) > MaxBlob {
		return nil, time.Time{}, fault.Invalid("blob", fmt.Sprintf("must be 1 byte to %d KiB", MaxBlob>>10))
	}
	if err := checkShare(share); err != nil {
		return nil, time.Time{}, err
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
	if len(share) == 0 {
		if share, err = s.keptShare(old); err != nil {
			return nil, time.Time{}, err
		}
	}
	b := store.Backup{
		PhoneNumber: dev.PhoneNumber, DeviceID: dev.ID, Blob: blob,
		SealedShare: s.keys.Seal(SharePurpose, []byte(dev.PhoneNumber), share), Verifier: s.verifier(dev.PhoneNumber, passcode),
		CreatedAt: now, UpdatedAt: now,
	}
	if old.Version > 0 {
		b.CreatedAt = old.CreatedAt
	}
	err = s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.PutBackup(ctx, b, old.Version); err != nil {
			return err
		}
		// A new passcode starts with every try.
		if err := tx.ResetGuesses(ctx, s.budget(dev.PhoneNumber).Key, now); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: "device:" + dev.ID, Action: "backup.stored", Target: dev.ID,
			Details: map[string]string{"bytes": strconv.Itoa(len(blob)), "replaced": strconv.FormatBool(old.Version > 0)}})
	})
	if errors.Is(err, store.ErrConflict) {
		return nil, time.Time{}, fault.New(fault.Aborted, "the backup changed meanwhile (another upload, a restore or a wipe); read it again and retry")
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("store backup: %w", err)
	}
	return share, now, nil
}

// checkShare refuses a key share that is not 32 bytes, or all zero (an app
// that forgot to fill it in). Empty is the older apps' way.
func checkShare(share []byte) error {
	if len(share) == 0 {
		return nil
	}
	if len(share) != ShareSize {
		return fault.Invalid("key_share", fmt.Sprintf("must be %d random bytes, the share the blob is encrypted with (docs/backup-and-totp.md)", ShareSize))
	}
	for _, b := range share {
		if b != 0 {
			return nil
		}
	}
	return fault.Invalid("key_share", "is all zero bytes: fill it from a cryptographic random source")
}

// keptShare is the share of an upload without one: the existing backup's,
// or a new random one.
func (s *Service) keptShare(old store.Backup) ([]byte, error) {
	if old.Version == 0 {
		share := make([]byte, ShareSize)
		_, _ = rand.Read(share) // never fails: crypto/rand aborts the program instead
		return share, nil
	}
	share, err := s.keys.Open(SharePurpose, []byte(old.PhoneNumber), old.SealedShare)
	if err != nil {
		return nil, fmt.Errorf("open key share: %w", err)
	}
	return share, nil
}

// checkPasscode spends a try of the backup's budget, then compares the
// passcode. The try is spent first, in one locked step with the lock-out a
// wrong passcode brings, so parallel guesses never compare more passcodes
// than the budget holds, and a burst of them locks no longer than the same
// guesses one by one. A right passcode leaves the try spent: the caller
// gives it back (ResetGuesses) in the transaction that acts on it, which is
// conditional on the backup's version. The try that spends the budget
// wipes the backup it was compared against.
func (s *Service) checkPasscode(ctx context.Context, dev store.Device, b store.Backup, passcode string, now time.Time, field string) error {
	if passcode == "" {
		return fault.Invalid(field, "a backup exists: give its passcode")
	}
	budget := s.budget(b.PhoneNumber)
	g, err := s.store.SpendGuess(ctx, budget, now)
	if err != nil {
		return guess.Refusal(err, now, "too many wrong passcodes", "no passcode tries are left for this backup")
	}
	right := s.keys.Matches("backup-passcode", b.PhoneNumber+":"+passcode, b.Verifier)
	guess.Observe(s.checks, guess.BackupPasscode, right)
	if right {
		return nil
	}
	if err := audit.Write(ctx, s.store, now, audit.Entry{Actor: "device:" + dev.ID, Action: "backup.passcode_failed", Target: dev.ID,
		Details: map[string]string{"attempt": strconv.Itoa(g.Failures)}}); err != nil {
		s.log.WarnContext(ctx, "audit wrong passcode", "err", err)
	}
	if g.Failures >= s.cfg.MaxAttempts {
		err := s.store.InTx(ctx, func(tx store.Store) error {
			if err := tx.DeleteBackup(ctx, b.PhoneNumber, b.Version); err != nil {
				return err
			}
			return audit.Write(ctx, tx, now, audit.Entry{Actor: audit.ActorSystem, Action: "backup.wiped", Target: dev.ID,
				Details: map[string]string{"reason": "too many wrong passcodes"}})
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
			return err
		}
		s.log.WarnContext(ctx, "backup wiped after wrong passcodes", "device_id", dev.ID)
		return fault.New(fault.PermissionDenied, "wrong passcode; that was the last attempt and the backup was deleted")
	}
	left := s.cfg.MaxAttempts - g.Failures
	msg := fmt.Sprintf("wrong passcode; %d attempts left", left)
	if left == 1 {
		msg = "wrong passcode; 1 attempt left"
	}
	if !g.LockedUntil.IsZero() {
		msg += fmt.Sprintf(", the next in %s", guess.RoundUp(g.LockedUntil.Sub(now)))
	}
	return &fault.Error{Kind: fault.PermissionDenied, Field: field, Message: msg}
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
	g, err := s.store.GetGuesses(ctx, s.budget(dev.PhoneNumber).Key)
	if err != nil {
		return Info{}, err
	}
	i := Info{Exists: true, UpdatedAt: b.UpdatedAt, AttemptsLeft: max(0, s.cfg.MaxAttempts-g.Failures)}
	if s.now().Before(g.LockedUntil) {
		i.LockedUntil = g.LockedUntil
	}
	return i, nil
}

// Delete removes the backup of the device's number. It needs the passcode,
// except from the phone that made the backup: that phone holds everything
// the backup holds, and may have forgotten the passcode.
func (s *Service) Delete(ctx context.Context, dev store.Device, passcode string) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	b, err := s.store.GetBackup(ctx, dev.PhoneNumber)
	if errors.Is(err, store.ErrNotFound) {
		return fault.New(fault.NotFound, "there is no backup for this number")
	}
	if err != nil {
		return err
	}
	if b.DeviceID != dev.ID || passcode != "" {
		if err := s.checkPasscode(ctx, dev, b, passcode, now, "passcode"); err != nil {
			return err
		}
	}
	err = s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.DeleteBackup(ctx, dev.PhoneNumber, b.Version); err != nil {
			return err
		}
		if err := tx.ResetGuesses(ctx, s.budget(dev.PhoneNumber).Key, now); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: "device:" + dev.ID, Action: "backup.deleted", Target: dev.ID})
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fault.New(fault.NotFound, "there is no backup for this number")
	case errors.Is(err, store.ErrConflict):
		return fault.New(fault.Aborted, "the backup changed meanwhile; read it again and retry")
	}
	return err
}
