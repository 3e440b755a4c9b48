package backup

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/store"
)

// Skipped is an account the new phone must pair again.
type Skipped struct {
	Connection   store.Connection
	RelyingParty store.RelyingParty
	Reason       string
}

// Restored is what a restore hands the new phone.
type Restored struct {
	Blob       []byte
	KeyShare   []byte
	Moved      []store.Connection
	Skipped    []Skipped
	OldDevice  string
	RPsOfMoved map[string]store.RelyingParty
}

// Restore checks the passcode and moves the number's backup and accounts to
// dev, a newly registered phone with the same verified number, revoking the
// phone that made the backup after telling it.
func (s *Service) Restore(ctx context.Context, dev store.Device, passcode string) (Restored, error) {
	b, err := s.store.GetBackup(ctx, dev.PhoneNumber)
	if errors.Is(err, store.ErrNotFound) {
		return Restored{}, fault.New(fault.NotFound, "there is no backup for this number")
	}
	if err != nil {
		return Restored{}, err
	}
	if b.DeviceID == dev.ID {
		return Restored{}, fault.New(fault.FailedPrecondition, "this phone made the backup: restore it on a new phone")
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	if err := s.checkPasscode(ctx, dev, b, passcode, now, "passcode"); err != nil {
		return Restored{}, err
	}
	share, err := s.keys.Open(SharePurpose, []byte(b.PhoneNumber), b.SealedShare)
	if err != nil {
		return Restored{}, fmt.Errorf("open key share: %w", err)
	}
	old := b.DeviceID
	conns, err := s.store.ListDeviceConnections(ctx, old)
	if err != nil {
		return Restored{}, err
	}
	out := Restored{Blob: b.Blob, KeyShare: share, OldDevice: old, RPsOfMoved: map[string]store.RelyingParty{}}
	// Tell the old phone first: once revoked it can no longer listen.
	s.notice(ctx, old, "This phone's accounts were moved to a new phone with the same number; it is no longer registered.")
	err = s.store.InTx(ctx, func(tx store.Store) error {
		out.Moved, out.Skipped = nil, nil
		// First, and only if the backup is still the one the passcode was
		// checked against: a concurrent wipe or replacement wins, and this
		// restore moves nothing. On PostgreSQL the row stays locked until
		// commit.
		moved := b
		moved.DeviceID, moved.UpdatedAt = dev.ID, now
		// Made again under the first server key: after a key rotation the
		// passcode verifier, a keyed hash, can only be redone here, where
		// the passcode is known (pushauthd reseal redoes the share too).
		moved.Verifier = s.verifier(b.PhoneNumber, passcode)
		moved.SealedShare = s.keys.Seal(SharePurpose, []byte(b.PhoneNumber), share)
		if err := tx.PutBackup(ctx, moved, b.Version); err != nil {
			return err
		}
		if err := tx.ResetGuesses(ctx, s.budget(dev.PhoneNumber).Key, now); err != nil {
			return err
		}
		for _, c := range conns {
			rp, err := tx.GetRelyingParty(ctx, c.RelyingPartyID)
			if err != nil {
				return err
			}
			if !rp.Policy.AllowBackupRestore {
				out.Skipped = append(out.Skipped, Skipped{Connection: c, RelyingParty: rp, Reason: "the relying party does not allow restore; pair again"})
				continue
			}
			err = tx.TransferConnection(ctx, c.ID, dev.ID)
			if errors.Is(err, store.ErrConflict) {
				out.Skipped = append(out.Skipped, Skipped{Connection: c, RelyingParty: rp, Reason: "this phone is already connected to the account"})
				continue
			}
			if err != nil {
				return err
			}
			c.DeviceID = dev.ID
			out.Moved = append(out.Moved, c)
			out.RPsOfMoved[rp.ID] = rp
			if err := audit.Write(ctx, tx, now, audit.Entry{Actor: "device:" + dev.ID, Action: "connection.restored", RelyingPartyID: rp.ID, Target: c.ID,
				Details: map[string]string{"from_device": old, "to_device": dev.ID, "user_ref": c.UserRef}}); err != nil {
				return err
			}
		}
		for _, sk := range out.Skipped {
			if err := tx.RemoveConnection(ctx, sk.Connection.ID, now); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
			if err := tx.RemoveConnectionTOTPFactors(ctx, sk.Connection.ID, now); err != nil {
				return err
			}
		}
		if err := tx.RevokeDevice(ctx, old, now); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: "device:" + dev.ID, Action: "backup.restored", Target: dev.ID,
			Details: map[string]string{"from_device": old, "moved": fmt.Sprint(len(out.Moved)), "needs_repairing": fmt.Sprint(len(out.Skipped))}})
	})
	if errors.Is(err, store.ErrConflict) {
		return Restored{}, fault.New(fault.Aborted, "the backup changed or was deleted meanwhile; nothing was restored")
	}
	if err != nil {
		return Restored{}, fmt.Errorf("restore: %w", err)
	}
	// Every replica ends the old phone's open streams.
	if err := events.AnnounceRevocation(ctx, s.pub, events.Revocation{Kind: events.RevokedDevice, ID: old}); err != nil {
		s.log.WarnContext(ctx, "announce revocation of the replaced device", "device_id", old, "err", err)
	}
	for _, c := range out.Moved {
		ev := events.RelyingPartyEvent{Type: "connection_restored", UserRef: c.UserRef, DeviceID: dev.ID, Time: now}
		if err := events.PublishRelyingPartyEvent(ctx, s.pub, c.RelyingPartyID, ev); err != nil {
			s.log.WarnContext(ctx, "publish restore event", "err", err)
		}
	}
	return out, nil
}

func (s *Service) notice(ctx context.Context, deviceID, text string) {
	if err := events.PublishDeviceNews(ctx, s.pub, deviceID, events.DeviceNews{Type: events.NewsNotice, Notice: text}); err != nil {
		s.log.WarnContext(ctx, "notice to replaced device", "device_id", deviceID, "err", err)
	}
}
