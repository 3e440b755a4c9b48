// Package registration turns a phone into a registered device and checks the
// device credential it is given.
package registration

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/store"
)

// CredentialKind starts every device credential ("pdc_…").
const CredentialKind = "pdc"

// ErrBadCredential is returned by Authenticate for any credential that does
// not work; it deliberately does not say why.
var ErrBadCredential = errors.New("registration: invalid device credential")

// ErrRevokedDevice is returned by Authenticate for a deregistered device.
var ErrRevokedDevice = errors.New("registration: device revoked")

// touchEvery bounds how often a device's last-seen time is written.
const touchEvery = time.Minute

// Devices checks device credentials.
type Devices struct {
	store store.Store
	now   func() time.Time
}

// NewDevices returns Devices on st, reading time from now.
func NewDevices(st store.Store, now func() time.Time) *Devices {
	return &Devices{store: st, now: now}
}

// Authenticate finds the device that owns credential.
func (d *Devices) Authenticate(ctx context.Context, credential string) (store.Device, error) {
	prefix, random, err := secret.Parse(CredentialKind, credential)
	if err != nil {
		return store.Device{}, ErrBadCredential
	}
	dev, err := d.store.GetDeviceByCredentialPrefix(ctx, prefix)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, ErrBadCredential
	}
	if err != nil {
		return store.Device{}, err
	}
	if !secret.Matches(random, dev.CredentialHash) {
		return store.Device{}, ErrBadCredential
	}
	if !dev.RevokedAt.IsZero() {
		return store.Device{}, ErrRevokedDevice
	}
	if now := d.now(); now.Sub(dev.LastSeenAt) >= touchEvery {
		at := now.UTC().Truncate(time.Microsecond)
		if err := d.store.TouchDevice(ctx, dev.ID, at); err != nil {
			return store.Device{}, fmt.Errorf("touch device: %w", err)
		}
		dev.LastSeenAt = at
	}
	return dev, nil
}

// Get returns a device as stored now (the caller's credential may come from
// a per-replica cache a few seconds old).
func (d *Devices) Get(ctx context.Context, id string) (store.Device, error) {
	return d.store.GetDevice(ctx, id)
}

// DeviceChange is an update of a device's own fields; nil leaves one as is.
type DeviceChange struct {
	PushToken  *string
	Name       *string
	AppVersion *string
	// Locale is the app's language for push alerts (BCP 47).
	Locale *string
}

// Update applies a device's change to itself. A new push token revives a
// token that was marked dead.
func (d *Devices) Update(ctx context.Context, id string, c DeviceChange) (store.Device, error) {
	var dev store.Device
	err := d.store.InTx(ctx, func(tx store.Store) error {
		var err error
		if dev, err = tx.GetDevice(ctx, id); err != nil {
			return err
		}
		if c.PushToken != nil {
			if *c.PushToken == "" {
				return fault.Invalid("push_token", "must not be empty")
			}
			if *c.PushToken != dev.PushToken {
				dev.PushToken, dev.PushTokenDead = *c.PushToken, false
			}
		}
		if c.Name != nil {
			if *c.Name == "" {
				return fault.Invalid("name", "must not be empty")
			}
			dev.Name = *c.Name
		}
		if c.AppVersion != nil {
			dev.AppVersion = *c.AppVersion
		}
		if c.Locale != nil {
			dev.Locale = *c.Locale
		}
		return tx.UpdateDevice(ctx, dev)
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("update device: %w", err)
	}
	return dev, nil
}

// Deregister revokes a device; its credential stops working at once.
func (d *Devices) Deregister(ctx context.Context, id string) error {
	now := d.now().UTC().Truncate(time.Microsecond)
	err := d.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.RevokeDevice(ctx, id, now); err != nil {
			return err
		}
		// Its accounts go with it.
		conns, err := tx.ListDeviceConnections(ctx, id)
		if err != nil {
			return err
		}
		for _, c := range conns {
			if err := tx.RemoveConnection(ctx, c.ID, now); err != nil {
				return err
			}
			if err := tx.RemoveConnectionTOTPFactors(ctx, c.ID, now); err != nil {
				return err
			}
			if err := audit.Write(ctx, tx, now, audit.Entry{Actor: "device:" + id, Action: "connection.removed", RelyingPartyID: c.RelyingPartyID,
				Target: c.ID, Details: map[string]string{"device_id": id, "user_ref": c.UserRef, "by": "deregistration"}}); err != nil {
				return err
			}
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: "device:" + id, Action: "device.revoked", Target: id,
			Details: map[string]string{"by": "device", "connections_removed": fmt.Sprint(len(conns))}})
	})
	if errors.Is(err, store.ErrConflict) {
		return nil // already revoked: the wanted state
	}
	if err != nil {
		return fmt.Errorf("deregister device: %w", err)
	}
	return nil
}
