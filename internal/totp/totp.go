// Package totp is the other way in when push cannot be used: RFC 6238 codes
// from the paired pushauth app (each connection gets a seed at pairing) or
// from another authenticator app enrolled by QR code. Seeds are sealed at
// rest; a code's time step is accepted once; wrong codes lock the user out
// for a while.
package totp

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"
	"rsc.io/qr"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/feed"
	"github.com/pushauth/pushauth/internal/guess"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/store"
)

// Parameters every authenticator app understands.
const (
	Period    = 30 * time.Second
	Digits    = 6
	Algorithm = "SHA1"
	// Skew is how many time steps either side of now are accepted.
	Skew = 1
)

// Config bounds guessing.
type Config struct {
	// MaxFailures wrong codes in a row lock the user out for LockDuration,
	// doubling with every further failure up to MaxLock.
	MaxFailures  int
	LockDuration time.Duration
	MaxLock      time.Duration
}

// DefaultConfig is 5 tries, then 5 minutes doubling up to a day.
func DefaultConfig() Config {
	return Config{MaxFailures: 5, LockDuration: 5 * time.Minute, MaxLock: 24 * time.Hour}
}

// Service manages TOTP factors.
type Service struct {
	cfg    Config
	store  store.Store
	keys   *keyring.Keyring
	now    func() time.Time
	checks guess.Observer
}

// New returns a Service. checks may be nil.
func New(cfg Config, st store.Store, keys *keyring.Keyring, now func() time.Time, checks guess.Observer) *Service {
	return &Service{cfg: cfg, store: st, keys: keys, now: now, checks: checks}
}

// Seed is a new secret as an authenticator app takes it.
type Seed struct {
	FactorID string
	Secret   string // base32
	URI      string // otpauth://…
}

// SealPurpose is the keyring purpose TOTP seeds are sealed for, bound to the
// factor id (the row); package reseal re-seals them after a rotation.
const SealPurpose = "totp-seed"

func (s *Service) newSeed(issuer, label string) (*otp.Key, error) {
	return ptotp.Generate(ptotp.GenerateOpts{
		Issuer: issuer, AccountName: label, Period: uint(Period / time.Second), Digits: otp.DigitsSix,
		Algorithm: otp.AlgorithmSHA1, SecretSize: 20,
	})
}

// ConnectionSeed gives an active connection its seed, once: a second call
// for the same connection returns nil. The app keeps it and the backup
// covers it.
func (s *Service) ConnectionSeed(ctx context.Context, c store.Connection, rp store.RelyingParty) (*Seed, error) {
	if _, err := s.store.GetConnectionTOTPFactor(ctx, c.ID); err == nil {
		return nil, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	key, err := s.newSeed(rp.DisplayName, c.AccountLabel)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	f := store.TOTPFactor{
		ID: secret.NewID("otp", now.UnixMilli()), RelyingPartyID: c.RelyingPartyID, UserRef: c.UserRef,
		Kind: store.TOTPKindConnection, ConnectionID: c.ID, Label: c.AccountLabel,
		Status: store.TOTPActive, CreatedAt: now, ConfirmedAt: now,
	}
	f.SealedSecret = s.keys.Seal(SealPurpose, []byte(f.ID), []byte(key.Secret()))
	if err := s.store.CreateTOTPFactor(ctx, f); err != nil {
		return nil, fmt.Errorf("create connection seed: %w", err)
	}
	return &Seed{FactorID: f.ID, Secret: key.Secret(), URI: key.URL()}, nil
}

// Enrolled is a new authenticator-app factor waiting for a first code.
type Enrolled struct {
	Seed
	QRPNG []byte
}

// Enroll starts enrolling another authenticator app for a user.
func (s *Service) Enroll(ctx context.Context, actor string, rp store.RelyingParty, userRef, label string) (Enrolled, error) {
	key, err := s.newSeed(rp.DisplayName, label)
	if err != nil {
		return Enrolled{}, err
	}
	code, err := qr.Encode(key.URL(), qr.M)
	if err != nil {
		return Enrolled{}, fmt.Errorf("qr code: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	f := store.TOTPFactor{
		ID: secret.NewID("otp", now.UnixMilli()), RelyingPartyID: rp.ID, UserRef: userRef, Kind: store.TOTPKindApp,
		Label: label, Status: store.TOTPPending, CreatedAt: now,
	}
	f.SealedSecret = s.keys.Seal(SealPurpose, []byte(f.ID), []byte(key.Secret()))
	err = s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.CreateTOTPFactor(ctx, f); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: actor, Action: "totp.enrolled", RelyingPartyID: rp.ID, Target: f.ID,
			Details: map[string]string{"user_ref": userRef, "kind": f.Kind}})
	})
	if err != nil {
		return Enrolled{}, fmt.Errorf("enroll totp: %w", err)
	}
	return Enrolled{Seed: Seed{FactorID: f.ID, Secret: key.Secret(), URI: key.URL()}, QRPNG: code.PNG()}, nil
}

// userFactor returns a factor of the user; others' are NotFound.
func (s *Service) userFactor(ctx context.Context, rpID, userRef, id string) (store.TOTPFactor, error) {
	f, err := s.store.GetTOTPFactor(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (f.RelyingPartyID != rpID || f.UserRef != userRef || f.Status == store.TOTPRemoved)) {
		return store.TOTPFactor{}, fault.New(fault.NotFound, "no such TOTP factor for this user")
	}
	return f, err
}

// Confirm activates an enrolled factor with a code from the app.
func (s *Service) Confirm(ctx context.Context, actor string, rp store.RelyingParty, userRef, id, code string) error {
	f, err := s.userFactor(ctx, rp.ID, userRef, id)
	if err != nil {
		return err
	}
	if f.Status != store.TOTPPending {
		return fault.New(fault.FailedPrecondition, "this factor is already confirmed")
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	spent, err := s.spend(ctx, rp.ID, userRef, now)
	if err != nil {
		return err
	}
	step, ok, err := s.match(f, code)
	if err != nil {
		return err
	}
	guess.Observe(s.checks, guess.TOTPCode, ok)
	if !ok {
		return s.wrong(spent, now)
	}
	return s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.ActivateTOTPFactor(ctx, f.ID, now); err != nil {
			return err
		}
		if err := tx.UseTOTPStep(ctx, f.ID, step); err != nil {
			return err
		}
		if err := s.reset(ctx, tx, rp.ID, userRef, now); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: actor, Action: "totp.confirmed", RelyingPartyID: rp.ID, Target: f.ID,
			Details: map[string]string{"user_ref": userRef}})
	})
}

// Remove removes a user's factor.
func (s *Service) Remove(ctx context.Context, actor string, rp store.RelyingParty, userRef, id string) error {
	f, err := s.userFactor(ctx, rp.ID, userRef, id)
	if err != nil {
		return err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	return s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.RemoveTOTPFactor(ctx, f.ID, now); err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: actor, Action: "totp.removed", RelyingPartyID: rp.ID, Target: f.ID,
			Details: map[string]string{"user_ref": userRef}})
	})
}

// List returns a user's factors.
func (s *Service) List(ctx context.Context, rpID, userRef string) ([]store.TOTPFactor, error) {
	return s.store.ListUserTOTPFactors(ctx, rpID, userRef)
}

// Verify checks code against every active factor of the user. Each call
// spends one try of the user's budget before any code is compared (see
// spend); a right code gives the tries back, a replayed one gives its own
// back and is refused; a code's time step is accepted once.
func (s *Service) Verify(ctx context.Context, actor string, rp store.RelyingParty, userRef, code string) (store.TOTPFactor, error) {
	factors, err := s.store.ListUserTOTPFactors(ctx, rp.ID, userRef)
	if err != nil {
		return store.TOTPFactor{}, err
	}
	var active []store.TOTPFactor
	for _, f := range factors {
		if f.Status != store.TOTPActive {
			continue
		}
		if f.Kind == store.TOTPKindConnection {
			c, err := s.store.GetConnection(ctx, f.ConnectionID)
			if err != nil || c.Status != store.ConnectionActive {
				continue
			}
		}
		active = append(active, f)
	}
	if len(active) == 0 {
		return store.TOTPFactor{}, fault.New(fault.FailedPrecondition, "this user has no active TOTP factor: offer another method")
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	spent, err := s.spend(ctx, rp.ID, userRef, now)
	if err != nil {
		return store.TOTPFactor{}, err
	}
	for _, f := range active {
		step, ok, err := s.match(f, code)
		if err != nil {
			return store.TOTPFactor{}, err
		}
		if !ok {
			continue
		}
		guess.Observe(s.checks, guess.TOTPCode, true)
		err = s.store.InTx(ctx, func(tx store.Store) error {
			if err := tx.UseTOTPStep(ctx, f.ID, step); err != nil {
				return err
			}
			if err := s.reset(ctx, tx, rp.ID, userRef, now); err != nil {
				return err
			}
			return audit.Write(ctx, tx, now, audit.Entry{Actor: actor, Action: "totp.verified", RelyingPartyID: rp.ID, Target: f.ID,
				Details: map[string]string{"user_ref": userRef, "kind": f.Kind}})
		})
		if errors.Is(err, store.ErrConflict) {
			if err := s.giveBack(ctx, rp.ID, userRef, now); err != nil {
				return store.TOTPFactor{}, err
			}
			return store.TOTPFactor{}, fault.New(fault.PermissionDenied, "this code was already used; wait for the next one (no try was counted)")
		}
		return f, err
	}
	guess.Observe(s.checks, guess.TOTPCode, false)
	if !spent.lockedUntil.IsZero() {
		// Audited once the code is known to be wrong (a right one undoes the
		// lock), so the relying party's event feed tells only of real locks.
		if err := s.store.InTx(ctx, func(tx store.Store) error {
			return audit.Write(ctx, tx, now, audit.Entry{Actor: audit.ActorSystem, Action: feed.ActionTOTPLocked, RelyingPartyID: rp.ID, Target: userRef,
				Details: map[string]string{"user_ref": userRef, "failures": fmt.Sprint(spent.failures), "until": spent.lockedUntil.Format(time.RFC3339)}})
		}); err != nil {
			return store.TOTPFactor{}, err
		}
	}
	return store.TOTPFactor{}, s.wrong(spent, now)
}

// match reports whether code is valid for f within ±Skew steps, and for
// which step.
func (s *Service) match(f store.TOTPFactor, code string) (int64, bool, error) {
	sec, err := s.keys.Open(SealPurpose, []byte(f.ID), f.SealedSecret)
	if err != nil {
		return 0, false, fmt.Errorf("open totp seed %s: %w", f.ID, err)
	}
	now := s.now()
	cur := now.Unix() / int64(Period/time.Second)
	for off := int64(-Skew); off <= Skew; off++ {
		step := cur + off
		want, err := ptotp.GenerateCodeCustom(string(sec), time.Unix(step*int64(Period/time.Second), 0), ptotp.ValidateOpts{
			Period: uint(Period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil {
			return 0, false, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true, nil
		}
	}
	return 0, false, nil
}

// spent is the user's TOTP budget right after a try was spent.
type spent struct {
	failures    int
	lockedUntil time.Time
}

// spend counts a try against the user's TOTP budget before a code is
// compared, with the lock-out a wrong code would bring, in one locked
// transaction on the user's state: parallel guesses are each counted, and
// once the lock is set the rest are refused uncompared, so a burst costs the
// attacker the budget and locks the user no longer than the same guesses
// one by one would.
func (s *Service) spend(ctx context.Context, rpID, userRef string, now time.Time) (spent, error) {
	var sp spent
	var locked time.Time
	errLocked := errors.New("locked")
	err := s.store.UpdateUserState(ctx, rpID, userRef, func(u *store.UserState) error {
		if now.Before(u.TOTPLockedUntil) {
			locked = u.TOTPLockedUntil
			return errLocked
		}
		u.TOTPFailures++
		u.TOTPLockedUntil = time.Time{}
		if d := s.lockFor(u.TOTPFailures); d > 0 {
			u.TOTPLockedUntil = now.Add(d)
		}
		u.UpdatedAt = now
		sp = spent{failures: u.TOTPFailures, lockedUntil: u.TOTPLockedUntil}
		return nil
	})
	if errors.Is(err, errLocked) {
		retry := locked.Sub(now)
		return spent{}, fault.Exhausted(fmt.Sprintf("too many wrong codes; try again in %s", guess.RoundUp(retry)), retry)
	}
	return sp, err
}

// lockFor is the lock after n wrong codes in a row: none before
// MaxFailures, then LockDuration doubling up to MaxLock.
func (s *Service) lockFor(n int) time.Duration {
	if n < s.cfg.MaxFailures {
		return 0
	}
	lock := s.cfg.LockDuration
	for i := s.cfg.MaxFailures; i < n && lock < s.cfg.MaxLock; i++ {
		lock *= 2
	}
	return min(lock, s.cfg.MaxLock)
}

// reset gives every try back after a right code.
func (s *Service) reset(ctx context.Context, tx store.Store, rpID, userRef string, now time.Time) error {
	return tx.UpdateUserState(ctx, rpID, userRef, func(u *store.UserState) error {
		u.TOTPFailures, u.TOTPLockedUntil, u.UpdatedAt = 0, time.Time{}, now
		return nil
	})
}

// giveBack returns the try of a code that was right but replayed.
func (s *Service) giveBack(ctx context.Context, rpID, userRef string, now time.Time) error {
	return s.store.UpdateUserState(ctx, rpID, userRef, func(u *store.UserState) error {
		u.TOTPFailures = max(0, u.TOTPFailures-1)
		if s.lockFor(u.TOTPFailures) == 0 {
			u.TOTPLockedUntil = time.Time{}
		}
		u.UpdatedAt = now
		return nil
	})
}

// wrong answers a wrong code whose try was spent.
func (s *Service) wrong(sp spent, now time.Time) error {
	if !sp.lockedUntil.IsZero() {
		retry := sp.lockedUntil.Sub(now)
		return fault.Exhausted(fmt.Sprintf("wrong code; too many wrong codes, try again in %s", guess.RoundUp(retry)), retry)
	}
	left := s.cfg.MaxFailures - sp.failures
	if left == 1 {
		return fault.New(fault.PermissionDenied, "wrong code; 1 try left before a lock-out")
	}
	return fault.Newf(fault.PermissionDenied, "wrong code; %d tries left before a lock-out", left)
}
