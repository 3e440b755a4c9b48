package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pushauth/pushauth/phone"
)

// The device state file: where the simulated phone keeps what a real app
// keeps in its keystore.
const (
	defaultStateFile = "pushauth-device.json" // in the working directory
	envDeviceState   = "PUSHAUTH_DEVICE_STATE"
	stateVersion     = 1
	maxStateFileSize = 64 << 10
)

// Public key formats, as the platforms send them.
const (
	keyFormatSPKI = string(phone.SPKI) // X.509 SubjectPublicKeyInfo DER (Android)
	keyFormatX963 = string(phone.X963) // 65-byte uncompressed point (iOS)
)

// deviceState is the content of a state file. It holds secrets (the private
// key and the device credential): it is written with mode 0600.
type deviceState struct {
	Version int `json:"version"`
	// Addr is the gRPC target of the server the device belongs to.
	Addr     string `json:"addr"`
	Platform string `json:"platform"` // "android" or "ios"
	// PublicKeyFormat says how the public key was sent: "spki" or "x963".
	PublicKeyFormat string `json:"public_key_format"`
	// PrivateKey is the P-256 key, PKCS#8 DER in standard base64.
	PrivateKey string `json:"private_key"`
	// PhoneNumber is the full number: E.164 if it could be normalised here,
	// else as typed (with Region).
	PhoneNumber       string `json:"phone_number"`
	Region            string `json:"region,omitempty"`
	MaskedPhoneNumber string `json:"masked_phone_number,omitempty"`

	// Set while a verification waits for its code.
	VerificationID         string     `json:"verification_id,omitempty"`
	VerificationExpireTime *time.Time `json:"verification_expire_time,omitempty"`

	DeviceID string `json:"device_id,omitempty"`
	// DeviceCredential is the bearer credential; empty before registration
	// and after deregistration.
	DeviceCredential string     `json:"device_credential,omitempty"`
	RegisterTime     *time.Time `json:"register_time,omitempty"`
	Deregistered     bool       `json:"deregistered,omitempty"`
	DeregisterTime   *time.Time `json:"deregister_time,omitempty"`

	// Accounts are the connected accounts whose code seeds the device
	// keeps, as the app does for offline codes and its backup. The seeds
	// are secrets: never shown.
	Accounts []stateAccount `json:"accounts,omitempty"`
	// BackupKeyShare was kept by older versions, which mixed the share of
	// one upload into the next; the share now travels with each blob, and
	// the field is cleared on the next backup or restore.
	BackupKeyShare string `json:"backup_key_share,omitempty"`
}

// stateAccount is a connected account and its RFC 6238 seed.
type stateAccount struct {
	RelyingPartyName string `json:"relying_party_name"`
	RelyingPartyID   string `json:"relying_party_id,omitempty"`
	AccountLabel     string `json:"account_label"`
	ConnectionID     string `json:"connection_id,omitempty"`
	// RequestID is the pairing request that connected the account.
	RequestID string `json:"request_id,omitempty"`
	// Secret is the base32 seed.
	Secret        string `json:"secret"`
	Digits        int    `json:"digits,omitempty"`
	PeriodSeconds int    `json:"period_seconds,omitempty"`
	Algorithm     string `json:"algorithm,omitempty"`
}

// same reports whether a and b are the same account: the same relying
// party (by id when both know it, else by name) and label.
func (a *stateAccount) same(b *stateAccount) bool {
	if a.AccountLabel != b.AccountLabel {
		return false
	}
	if a.RelyingPartyID != "" && b.RelyingPartyID != "" {
		return a.RelyingPartyID == b.RelyingPartyID
	}
	return a.RelyingPartyName == b.RelyingPartyName
}

// putAccount adds a, or replaces the same account.
func (st *deviceState) putAccount(a stateAccount) {
	for i := range st.Accounts {
		if st.Accounts[i].same(&a) {
			st.Accounts[i] = a
			return
		}
	}
	st.Accounts = append(st.Accounts, a)
}

// registered reports whether the state holds a working device.
func (st *deviceState) registered() bool { return st.DeviceCredential != "" }

// pending reports whether a verification waits for its code.
func (st *deviceState) pending() bool { return !st.registered() && st.VerificationID != "" }

// display is the phone number to show: masked.
func (st *deviceState) display() string {
	if st.MaskedPhoneNumber != "" {
		return st.MaskedPhoneNumber
	}
	return "an unverified number"
}

// statePath is --state, else $PUSHAUTH_DEVICE_STATE, else ./pushauth-device.json.
func statePath(e *env, flagValue string) string {
	switch {
	case flagValue != "":
		return flagValue
	case e.getenv(envDeviceState) != "":
		return e.getenv(envDeviceState)
	}
	return defaultStateFile
}

// loadState reads a state file. A missing file is an error wrapping
// fs.ErrNotExist.
func loadState(path string) (*deviceState, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the device state: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read the device state: %w", err)
	}
	if len(b) > maxStateFileSize {
		return nil, fmt.Errorf("%s is too large to be a device state file", path)
	}
	var st deviceState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s is not a device state file: %v", path, err)
	}
	switch {
	case st.Version > stateVersion:
		return nil, fmt.Errorf("%s was written by a newer pushauth (state version %d)", path, st.Version)
	case st.Version < 1 || st.PrivateKey == "":
		return nil, fmt.Errorf("%s is not a device state file", path)
	}
	return &st, nil
}

// loadRegistered reads a state file that must hold a working device.
func loadRegistered(path string) (*deviceState, error) {
	st, err := loadState(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no device state in %s: register first with \"pushauth device register --phone NUMBER\" (or pass --state FILE)", path)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case st.Deregistered:
		when := ""
		if st.DeregisterTime != nil {
			when = " at " + st.DeregisterTime.Local().Format(time.DateTime)
		}
		return nil, fmt.Errorf("the device %s in %s was deregistered%s and its credential dropped; "+
			"register again with \"pushauth device register --phone NUMBER --state %s\"", st.DeviceID, path, when, path)
	case !st.registered():
		return nil, fmt.Errorf("the registration in %s is not finished: run \"pushauth device register --phone NUMBER --state %s\" "+
			"(with --code CODE to finish the pending verification)", path, path)
	}
	return st, nil
}

// saveState writes st to path atomically, readable only by the user: a
// temporary file in the same directory, renamed over path.
func saveState(path string, st *deviceState) (err error) {
	st.Version = stateVersion
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("cannot write the device state: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			err = fmt.Errorf("cannot write the device state to %s: %w", path, err)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(append(b, '\n')); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// checkStateDir fails early if the state file could not be written, before
// an SMS is asked for.
func checkStateDir(path string) error {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot write the device state to %s: %w", path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cannot write the device state to %s: %s is not a directory", path, dir)
	}
	return nil
}

// newDeviceKey makes a device key in the format of platform.
func newDeviceKey(platform string) (*phone.Key, error) {
	return phone.NewKey(platformProto(platform))
}

// encodeKey is the state file's form of a private key.
func encodeKey(key *phone.Key) (string, error) {
	der, err := key.MarshalPrivate()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// privateKey decodes the state's device key.
func (st *deviceState) privateKey() (*phone.Key, error) {
	der, err := base64.StdEncoding.DecodeString(st.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("the private key in the device state is not base64: %v", err)
	}
	f := phone.Format(st.PublicKeyFormat)
	if f != phone.SPKI && f != phone.X963 {
		return nil, fmt.Errorf("unknown public key format %q in the device state", st.PublicKeyFormat)
	}
	k, err := phone.ParsePrivate(der, f)
	if err != nil {
		return nil, fmt.Errorf("the private key in the device state: %v", err)
	}
	return k, nil
}
