package registration

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pushauth/pushauth/decision"
	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/devicekey"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/pii"
	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/store"
)

// Platforms a device can have.
const (
	PlatformAndroid = "ANDROID"
	PlatformIOS     = "IOS"
)

// ProofVersion names the registration string's format.
const ProofVersion = decision.RegistrationVersion

// ProofMessage is decision.RegistrationProof: the exact byte string the app
// signs to prove it holds the private key of publicKey (docs/registration.md).
func ProofMessage(verificationID string, publicKey []byte) []byte {
	return decision.RegistrationProof(verificationID, publicKey)
}

// CompleteParams proves a number and describes the device to register.
type CompleteParams struct {
	VerificationID string
	Code           string // one of Code and LinkToken
	LinkToken      string
	PublicKey      []byte
	ProofSignature []byte
	Platform       string
	PushToken      string
	Name           string
	AppVersion     string
}

// Complete checks the code or link and registers the device. It returns the
// device and its credential, which is never stored in the clear.
func (s *Service) Complete(ctx context.Context, p CompleteParams) (store.Device, string, error) {
	if p.Platform != PlatformAndroid && p.Platform != PlatformIOS {
		return store.Device{}, "", fault.Invalid("device.platform", "must be ANDROID or IOS")
	}
	pub, spki, err := devicekey.Parse(p.PublicKey)
	if err != nil {
		msg := "must be a P-256 key as X.509 SubjectPublicKeyInfo DER or a 65-byte uncompressed point"
		if errors.Is(err, devicekey.ErrNotP256) {
			msg = "is not a P-256 key; generate the key on curve P-256 (secp256r1)"
		}
		return store.Device{}, "", fault.Invalid("device.public_key", msg)
	}
	v, err := s.store.GetVerification(ctx, p.VerificationID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, "", fault.New(fault.NotFound, "verification not found; ask for a new SMS")
	}
	if err != nil {
		return store.Device{}, "", err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	switch {
	case !v.UsedAt.IsZero():
		return store.Device{}, "", fault.New(fault.FailedPrecondition, "this code was already used; ask for a new SMS to register another phone")
	case !now.Before(v.ExpiresAt):
		return store.Device{}, "", fault.New(fault.FailedPrecondition, "the code has expired; ask for a new SMS")
	case v.Attempts >= s.cfg.Limits.MaxAttempts:
		return store.Device{}, "", fault.New(fault.FailedPrecondition, "too many wrong codes for this SMS; ask for a new one")
	}
	if !devicekey.Verify(pub, ProofMessage(v.ID, p.PublicKey), p.ProofSignature) {
		return store.Device{}, "", fault.New(fault.PermissionDenied, "device.proof_signature does not verify: sign the registration string (docs/registration.md) with the registered key")
	}
	masked := pii.MaskPhone(v.PhoneNumber)
	attempts, ticket, err := s.spendTry(ctx, v, now)
	if err != nil {
		return store.Device{}, "", err
	}
	var ok bool
	if p.LinkToken != "" {
		ok = s.keys.Matches("sms-link", p.LinkToken, v.LinkHash)
	} else {
		ok = s.keys.Matches("sms-code", v.ID+":"+p.Code, v.CodeHash)
	}
	s.checked(ok)
	if !ok {
		return store.Device{}, "", s.wrongCode(ctx, v, attempts, masked, now)
	}

	sec, err := secret.New(CredentialKind)
	if err != nil {
		return store.Device{}, "", err
	}
	dev := store.Device{
		ID:               secret.NewID("dev", now.UnixMilli()),
		CredentialPrefix: sec.Prefix,
		CredentialHash:   sec.Hash,
		PhoneNumber:      v.PhoneNumber,
		PublicKey:        spki,
		Platform:         p.Platform,
		PushToken:        p.PushToken,
		Name:             p.Name,
		AppVersion:       p.AppVersion,
		Locale:           v.Locale,
		CreatedAt:        now,
		LastSeenAt:       now,
	}
	err = s.store.InTx(ctx, func(tx store.Store) error {
		// The try spent on this right code is counted already.
		if err := tx.UseVerification(ctx, v.ID, now, s.cfg.Limits.MaxAttempts+1); err != nil {
			return err
		}
		// A right code is no failure of the number.
		if err := tx.GiveBackRate(ctx, ticket); err != nil {
			return err
		}
		if err := tx.CreateDevice(ctx, dev); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{
			Actor: "device:" + dev.ID, Action: "phone_verification.completed", Target: dev.ID,
			Details: map[string]string{"phone": masked, "verification_id": v.ID, "platform": dev.Platform, "by": proofKind(p)},
		})
	})
	if errors.Is(err, store.ErrConflict) {
		return store.Device{}, "", fault.New(fault.FailedPrecondition, "this code was already used; ask for a new SMS to register another phone")
	}
	if err != nil {
		return store.Device{}, "", fmt.Errorf("register device: %w", err)
	}
	s.log.InfoContext(ctx, "device registered", "device_id", dev.ID, "platform", dev.Platform, "phone", masked)
	return dev, sec.Token, nil
}

// spendTry counts a try against the verification and against the
// number's wrong-code budget before the code is compared, so concurrent
// guesses can never compare more codes than the budgets allow. A right code
// gives the number's try back.
func (s *Service) spendTry(ctx context.Context, v store.Verification, now time.Time) (int, store.RateTicket, error) {
	var attempts int
	var ticket store.RateTicket
	err := s.store.InTx(ctx, func(tx store.Store) error {
		var err error
		if ticket, err = tx.TakeRate(ctx, now, s.failureLimit(v.PhoneNumber)); err != nil {
			return err
		}
		attempts, err = tx.AddVerificationAttempt(ctx, v.ID, s.cfg.Limits.MaxAttempts)
		return err
	})
	var le *store.LimitError
	switch {
	case errors.As(err, &le):
		r := s.failuresRefusal(now, le.Until)
		s.refused(r.reason)
		return 0, ticket, fault.Exhausted(r.msg, r.retryAfter)
	case errors.Is(err, store.ErrConflict):
		return 0, ticket, fault.New(fault.FailedPrecondition, "too many wrong codes for this SMS; ask for a new one")
	case errors.Is(err, store.ErrNotFound):
		return 0, ticket, fault.New(fault.FailedPrecondition, "this code was already used; ask for a new SMS to register another phone")
	case err != nil:
		return 0, ticket, fmt.Errorf("count try: %w", err)
	}
	return attempts, ticket, nil
}

// wrongCode records a failed try, already counted by spendTry.
func (s *Service) wrongCode(ctx context.Context, v store.Verification, attempts int, masked string, now time.Time) error {
	if err := audit.Write(ctx, s.store, now, audit.Entry{
		Actor: audit.ActorSystem, Action: "phone_verification.failed", Target: v.ID,
		Details: map[string]string{"phone": masked, "attempts": fmt.Sprint(attempts)},
	}); err != nil {
		s.log.ErrorContext(ctx, "audit wrong code", "err", err)
	}
	left := s.cfg.Limits.MaxAttempts - attempts
	switch {
	case left <= 0:
		return fault.New(fault.PermissionDenied, "wrong code; that was the last try for this SMS: ask for a new one")
	case left == 1:
		return fault.New(fault.PermissionDenied, "wrong code; 1 try left")
	}
	return fault.Newf(fault.PermissionDenied, "wrong code; %d tries left", left)
}

func proofKind(p CompleteParams) string {
	if p.LinkToken != "" {
		return "link"
	}
	return "code"
}
