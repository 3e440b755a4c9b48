package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// passcodePattern is what the server accepts as a backup passcode.
var passcodePattern = regexp.MustCompile(`^[0-9]{4,12}$`)

// The backup blob is the format of docs/backup-and-totp.md
// (package phone): AES-256-GCM under
// HKDF-SHA256(Argon2id(passcode, salt) ‖ key_share), with a new random key
// share, salt and nonce for every upload. The share goes to the server with
// the blob and comes back only from a restore, after the passcode; the state
// file keeps nothing of it. The plaintext is the JSON of backupContent.

// backupContent is what a backup holds.
type backupContent struct {
	Version  int            `json:"version"`
	Accounts []stateAccount `json:"accounts"`
}

// sealBackup encrypts the accounts under passcode and a new key share, and
// returns the blob and the share to upload with it.
func sealBackup(passcode string, accounts []stateAccount) (blob, share []byte, err error) {
	plain, err := json.Marshal(backupContent{Version: 1, Accounts: accounts})
	if err != nil {
		return nil, nil, err
	}
	share = phone.NewKeyShare()
	blob, err = phone.SealBackup(passcode, share, plain)
	return blob, share, err
}

// openBackup decrypts a restored blob with the key share restored with it.
func openBackup(passcode string, share, blob []byte) (*backupContent, error) {
	plain, err := phone.OpenBackup(passcode, share, blob)
	switch {
	case errors.Is(err, phone.ErrBackupFormat):
		return nil, errors.New("the backup was not made in the format of docs/backup-and-totp.md (an older version of this tool?)")
	case err != nil:
		return nil, errors.New("cannot decrypt the backup with this passcode and the key share the server returned")
	}
	var c backupContent
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, fmt.Errorf("the backup's content is damaged: %v", err)
	}
	return &c, nil
}

// explainBackup adds what to do to the errors of the backup calls, where
// PERMISSION_DENIED means a wrong passcode rather than a revoked device.
func (d *deviceCall) explainBackup(err error, restore bool) error {
	switch status.Code(err) {
	case codes.PermissionDenied:
		if restore {
			return withHint(err, "check the passcode of the backup; \"pushauth device backup-info\" shows the attempts left")
		}
		return withHint(err, "replacing a backup needs its passcode in --current-passcode")
	case codes.InvalidArgument:
		return withHint(err, "choose another passcode: digits only, at least 4, not a trivial one such as 1234 or 0000")
	case codes.ResourceExhausted:
		return withHint(err, "too many wrong passcodes: the backup is locked for a while; the 5th wrong passcode deletes it")
	case codes.NotFound:
		return withHint(err, "no backup for this phone number: make one on the old phone with \"pushauth device backup --passcode NNNN\"")
	}
	return d.explain(err)
}

func passcodeFlag(fs *flag.FlagSet, name, usage string) *string {
	return fs.String(name, "", usage)
}

var deviceBackupCmd = &command{
	path:    "device backup",
	args:    "--passcode NNNN [--current-passcode NNNN] [--state FILE] [flags]",
	summary: "store the device's accounts and their code seeds, encrypted with a passcode, as the server's backup",
	details: `The backup holds the accounts of the state file (relying party, label and
TOTP seed), encrypted here as docs/backup-and-totp.md says: AES-256-GCM under
a key from the passcode (Argon2id) and a new random key share, which goes to
the server with the blob; the server never sees the accounts in clear. The passcode is digits only, at
least 4; trivial ones (0000, 1234, ...) are refused. Replacing a backup needs
its passcode in --current-passcode; a wrong one counts as a failed attempt.`,
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := stateFlag(fs)
		passcode := passcodeFlag(fs, "passcode", "the backup's new `passcode`: 4 to 12 digits (required)")
		current := passcodeFlag(fs, "current-passcode", "the `passcode` of the backup being replaced")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			switch {
			case *passcode == "":
				return usageErrorf("--passcode is required")
			case !passcodePattern.MatchString(*passcode):
				return usageErrorf("--passcode must be 4 to 12 digits")
			case *current != "" && !passcodePattern.MatchString(*current):
				return usageErrorf("--current-passcode must be 4 to 12 digits")
			}
			d, err := openDevice(e, cf, *state)
			if err != nil {
				return err
			}
			defer d.c.close()
			blob, share, err := sealBackup(*passcode, d.st.Accounts)
			if err != nil {
				return err
			}
			cctx, cancel := d.ctx(ctx)
			defer cancel()
			resp, err := d.c.device.PutBackup(cctx, &pushauthv1.PutBackupRequest{Blob: blob, Passcode: *passcode, CurrentPasscode: *current, KeyShare: share})
			if err != nil {
				return d.explainBackup(err, false)
			}
			if d.st.BackupKeyShare != "" { // kept by older versions; no longer needed
				d.st.BackupKeyShare = ""
				if err := saveState(d.path, d.st); err != nil {
					return fmt.Errorf("the backup is stored, but: %w", err)
				}
			}
			// The response's key share is a secret: only its update time is shown.
			shown := &pushauthv1.PutBackupResponse{UpdateTime: resp.GetUpdateTime()}
			return output(e.stdout, cf, shown, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "backup stored (%d accounts)\n", len(d.st.Accounts))
				return err
			})
		}
	},
}

var deviceRestoreCmd = &command{
	path:    "device restore",
	args:    "--passcode NNNN [--state FILE] [flags]",
	summary: "restore the backup of this phone number on a newly registered phone; the old phone is revoked",
	details: `Register the new phone with the same number first ("pushauth device register
--phone NUMBER --state NEW.json"). With the right passcode, the accounts whose
relying parties allow restore move to this device, with their TOTP seeds; the
others must be paired again; the old device is revoked. Each wrong passcode
counts: after the 2nd, 3rd and 4th the backup is locked for a while, and the
5th deletes it.`,
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := stateFlag(fs)
		passcode := passcodeFlag(fs, "passcode", "the backup's `passcode` (required)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			switch {
			case *passcode == "":
				return usageErrorf("--passcode is required")
			case !passcodePattern.MatchString(*passcode):
				return usageErrorf("--passcode must be 4 to 12 digits")
			}
			d, err := openDevice(e, cf, *state)
			if err != nil {
				return err
			}
			defer d.c.close()
			cctx, cancel := d.ctx(ctx)
			defer cancel()
			resp, err := d.c.device.RestoreBackup(cctx, &pushauthv1.RestoreBackupRequest{Passcode: *passcode})
			if err != nil {
				return d.explainBackup(err, true)
			}
			content, derr := openBackup(*passcode, resp.GetKeyShare(), resp.GetBlob())
			if derr != nil {
				fmt.Fprintf(e.stderr, "pushauth: the accounts moved, but their offline codes are lost: %v\n", derr)
				content = &backupContent{}
			}
			restored := 0
			for _, c := range resp.GetMovedConnections() {
				a := stateAccount{RelyingPartyName: c.GetRelyingPartyName(), RelyingPartyID: c.GetRelyingPartyId(),
					AccountLabel: c.GetAccountLabel(), ConnectionID: c.GetId()}
				for _, b := range content.Accounts {
					if (b.RelyingPartyID == a.RelyingPartyID || b.RelyingPartyID == "" && b.RelyingPartyName == a.RelyingPartyName) &&
						b.AccountLabel == a.AccountLabel {
						a.Secret, a.Digits, a.PeriodSeconds, a.Algorithm, a.RequestID = b.Secret, b.Digits, b.PeriodSeconds, b.Algorithm, b.RequestID
						restored++
						break
					}
				}
				if a.Secret != "" {
					d.st.putAccount(a)
				}
			}
			d.st.BackupKeyShare = ""
			if err := saveState(d.path, d.st); err != nil {
				return fmt.Errorf("the backup is restored, but: %w", err)
			}
			// Leave the secrets (blob, key share) out of --json.
			shown := &pushauthv1.RestoreBackupResponse{MovedConnections: resp.GetMovedConnections(),
				NeedsRepairing: resp.GetNeedsRepairing(), ReplacedDeviceId: resp.GetReplacedDeviceId()}
			return output(e.stdout, cf, shown, func(w io.Writer) error {
				fmt.Fprintf(w, "Restored the backup: %d accounts moved to device %s (offline codes for %d).\n",
					len(resp.GetMovedConnections()), sanitize(d.st.DeviceID), restored)
				if len(resp.GetMovedConnections()) > 0 {
					t := newTable(w, "CONNECTION ID", "RELYING PARTY", "ACCOUNT")
					for _, c := range resp.GetMovedConnections() {
						t.row(c.GetId(), c.GetRelyingPartyName(), c.GetAccountLabel())
					}
					if err := t.flush(); err != nil {
						return err
					}
				}
				if n := len(resp.GetNeedsRepairing()); n > 0 {
					fmt.Fprintf(w, "\n%d accounts need pairing again (\"pushauth device pair\"):\n", n)
					t := newTable(w, "RELYING PARTY", "ACCOUNT", "REASON")
					for _, r := range resp.GetNeedsRepairing() {
						t.row(r.GetRelyingPartyName(), r.GetAccountLabel(), r.GetReason())
					}
					if err := t.flush(); err != nil {
						return err
					}
				}
				if id := resp.GetReplacedDeviceId(); id != "" {
					fmt.Fprintf(w, "Replaced device %s: it is revoked.\n", sanitize(id))
				}
				return nil
			})
		}
	},
}

var deviceBackupInfoCmd = &command{
	path:    "device backup-info",
	args:    "[--state FILE] [flags]",
	summary: "say whether this phone number has a backup and how many passcode attempts are left",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := stateFlag(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			d, err := openDevice(e, cf, *state)
			if err != nil {
				return err
			}
			defer d.c.close()
			cctx, cancel := d.ctx(ctx)
			defer cancel()
			resp, err := d.c.device.GetBackupInfo(cctx, &pushauthv1.GetBackupInfoRequest{})
			if err != nil {
				return d.explain(err)
			}
			return output(e.stdout, cf, resp, func(w io.Writer) error {
				if !resp.GetExists() {
					_, err := fmt.Fprintf(w, "No backup for %s.\n", sanitize(d.st.display()))
					return err
				}
				tw := newTabWriter(w)
				fmt.Fprintf(tw, "backup:\tyes, for %s\n", sanitize(d.st.display()))
				fmt.Fprintf(tw, "updated:\t%s\n", fmtTime(resp.GetUpdateTime()))
				fmt.Fprintf(tw, "attempts left:\t%d\n", resp.GetAttemptsLeft())
				if resp.GetLockedUntil() != nil {
					fmt.Fprintf(tw, "locked until:\t%s\n", fmtExpiry(e, resp.GetLockedUntil()))
				}
				return tw.Flush()
			})
		}
	},
}

var deviceDeleteBackupCmd = &command{
	path:    "device delete-backup",
	args:    "[--state FILE] [flags]",
	summary: "delete this phone number's backup",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := stateFlag(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			d, err := openDevice(e, cf, *state)
			if err != nil {
				return err
			}
			defer d.c.close()
			cctx, cancel := d.ctx(ctx)
			defer cancel()
			resp, err := d.c.device.DeleteBackup(cctx, &pushauthv1.DeleteBackupRequest{})
			if err != nil {
				return d.explainBackup(err, false)
			}
			if d.st.BackupKeyShare != "" {
				d.st.BackupKeyShare = ""
				if err := saveState(d.path, d.st); err != nil {
					return fmt.Errorf("the backup is deleted, but: %w", err)
				}
			}
			return output(e.stdout, cf, resp, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "backup deleted for %s\n", sanitize(d.st.display()))
				return err
			})
		}
	},
}

var deviceCodeCmd = &command{
	path:    "device code",
	args:    "[--account LABEL] [--state FILE]",
	summary: "show the current 6-digit code of a connected account, as the app does offline",
	details: `The code is computed here from the account's TOTP seed in the state file
(RFC 6238: SHA-1, 30-second steps), without the server; "pushauth rp totp
verify" checks it. With one account --account may be left out; else it
names the account by its label (or "RELYING PARTY/LABEL").`,
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := stateFlag(fs)
		account := fs.String("account", "", "the account's `label`, or \"RELYING PARTY/LABEL\" (needed when the device has several accounts)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			path := statePath(e, *state)
			st, err := loadRegistered(path)
			if err != nil {
				return err
			}
			a, err := pickAccount(st, *account, path)
			if err != nil {
				return err
			}
			period := a.PeriodSeconds
			if period <= 0 {
				period = 30
			}
			digits := otp.DigitsSix
			if a.Digits == 8 {
				digits = otp.DigitsEight
			}
			alg := otp.AlgorithmSHA1
			switch strings.ToUpper(a.Algorithm) {
			case "SHA256":
				alg = otp.AlgorithmSHA256
			case "SHA512":
				alg = otp.AlgorithmSHA512
			}
			now := e.clock()
			code, err := totp.GenerateCodeCustom(a.Secret, now, totp.ValidateOpts{Period: uint(period), Digits: digits, Algorithm: alg})
			if err != nil {
				return fmt.Errorf("the seed of %s in %s is unusable: %v", sanitize(a.AccountLabel), path, err)
			}
			left := period - int(now.Unix()%int64(period))
			_, err = fmt.Fprintf(e.stdout, "%s  %s at %s, valid for %d s\n", code, sanitize(a.AccountLabel), sanitize(a.RelyingPartyName), left)
			return err
		}
	},
}

// pickAccount finds the account named by sel (a label, or "RP/LABEL"), or
// the only one when sel is empty.
func pickAccount(st *deviceState, sel, path string) (*stateAccount, error) {
	if len(st.Accounts) == 0 {
		return nil, fmt.Errorf("no account with offline codes in %s: connect one with \"pushauth device pair\" or restore a backup", path)
	}
	var found []*stateAccount
	for i := range st.Accounts {
		a := &st.Accounts[i]
		if sel == "" || a.AccountLabel == sel || a.RelyingPartyName+"/"+a.AccountLabel == sel {
			found = append(found, a)
		}
	}
	if len(found) == 1 {
		return found[0], nil
	}
	var names []string
	for _, a := range st.Accounts {
		names = append(names, fmt.Sprintf("%q (%s)", a.AccountLabel, a.RelyingPartyName))
	}
	list := sanitize(strings.Join(names, ", "))
	if len(found) == 0 {
		return nil, usageErrorf("no account %q in %s; the accounts are: %s", sel, path, list)
	}
	return nil, usageErrorf("several accounts match; pick one with --account LABEL (or \"RELYING PARTY/LABEL\"): %s", list)
}
