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
	cfg   Config
	store store.Store
	keys  *keyring.Keyring
	now   func() time.Time
}

// New returns a Service.
func New(cfg Config, st store.Store, keys *keyring.Keyring, now func() time.Time) *Service {
	return &Service{cfg: cfg, store: st, keys: keys, now: now}
}

// Seed is a new secret as an authenticator app takes it.
type Seed struct {
	FactorID string
	Secret   string // base32
	URI      string // otpauth://…
}

const sealPurpose = "totp-seed"

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
	f.SealedSecret = s.keys.Seal(sealPurpose, []byte(f.ID), []byte(key.Secret()))
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
	f.SealedSecret = s.keys.Seal(sealPurpose, []byte(f.ID), []byte(key.Secret()))
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
	if err := s.checkLock(ctx, rp.ID, userRef); err != nil {
		return err
	}
	step, ok, err := s.match(f, code)
	if err != nil {
		return err
	}
	if !ok {
		return s.fail(ctx, rp.ID, userRef)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	return s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.ActivateTOTPFactor(ctx, f.ID, now); err != nil {
			return err
		}
		if err := tx.UseTOTPStep(ctx, f.ID, step); err != nil {
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

// Verify checks code against every active factor of the user. A code's time
// step is accepted once; wrong codes count towards a lock-out; a success
// resets the count.
func (s *Service) Verify(ctx context.Context, actor string, rp store.RelyingParty, userRef, code string) (store.TOTPFactor, error) {
	if err := s.checkLock(ctx, rp.ID, userRef); err != nil {
		return store.TOTPFactor{}, err
	}
	factors, err := s.store.ListUserTOTPFactors(ctx, rp.ID, userRef)
	if err != nil {
		return store.TOTPFactor{}, err
	}
	active := 0
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
		active++
		step, ok, err := s.match(f, code)
		if err != nil {
			return store.TOTPFactor{}, err
		}
		if !ok {
			continue
		}
		if err := s.store.UseTOTPStep(ctx, f.ID, step); errors.Is(err, store.ErrConflict) {
			_ = s.fail(ctx, rp.ID, userRef)
			return store.TOTPFactor{}, fault.New(fault.PermissionDenied, "this code was already used; wait for the next one")
		} else if err != nil {
			return store.TOTPFactor{}, err
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		err = s.store.InTx(ctx, func(tx store.Store) error {
			if err := tx.UpdateUserState(ctx, rp.ID, userRef, func(u *store.UserState) error {
				u.TOTPFailures, u.TOTPLockedUntil, u.UpdatedAt = 0, time.Time{}, now
				return nil
			}); err != nil {
				return err
			}
			return audit.Write(ctx, tx, now, audit.Entry{Actor: actor, Action: "totp.verified", RelyingPartyID: rp.ID, Target: f.ID,
				Details: map[string]string{"user_ref": userRef, "kind": f.Kind}})
		})
		return f, err
	}
	if active == 0 {
		return store.TOTPFactor{}, fault.New(fault.FailedPrecondition, "this user has no active TOTP factor: offer another method")
	}
	return store.TOTPFactor{}, s.fail(ctx, rp.ID, userRef)
}

// match reports whether code is valid for f within ±Skew steps, and for
// which step.
func (s *Service) match(f store.TOTPFactor, code string) (int64, bool, error) {
	sec, err := s.keys.Open(sealPurpose, []byte(f.ID), f.SealedSecret)
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

func (s *Service) checkLock(ctx context.Context, rpID, userRef string) error {
	u, err := s.store.GetUserState(ctx, rpID, userRef)
	if err != nil {
		return err
	}
	if now := s.now(); now.Before(u.TOTPLockedUntil) {
		retry := u.TOTPLockedUntil.Sub(now)
		return fault.Exhausted(fmt.Sprintf("too many wrong codes; try again in %s", retry.Round(time.Second)), retry)
	}
	return nil
}

// fail counts a wrong code and answers it.
func (s *Service) fail(ctx context.Context, rpID, userRef string) error {
	now := s.now().UTC().Truncate(time.Microsecond)
	var n int
	var until time.Time
	err := s.store.UpdateUserState(ctx, rpID, userRef, func(u *store.UserState) error {
		u.TOTPFailures++
		n = u.TOTPFailures
		if n >= s.cfg.MaxFailures {
			lock := s.cfg.LockDuration
			for i := s.cfg.MaxFailures; i < n && lock < s.cfg.MaxLock; i++ {
				lock *= 2
			}
			u.TOTPLockedUntil = now.Add(min(lock, s.cfg.MaxLock))
			until = u.TOTPLockedUntil
		}
		u.UpdatedAt = now
		return nil
	})
	if err != nil {
		return err
	}
	if !until.IsZero() {
		return fault.Exhausted(fmt.Sprintf("wrong code; too many wrong codes, try again in %s", until.Sub(now).Round(time.Second)), until.Sub(now))
	}
	return fault.Newf(fault.PermissionDenied, "wrong code; %d tries left before a lock-out", s.cfg.MaxFailures-n)
}
