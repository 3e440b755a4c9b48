// Package registration turns a phone into a registered device and checks the
// device credential it is given.
package registration

import (
	"context"
	"errors"
	"fmt"
	"time"

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
