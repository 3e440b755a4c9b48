package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/pushauth/pushauth/internal/server/servertest"
)

// secretWatch fails the test when a command's output shows a secret: a
// credential, an API key, a seed, or an otpauth URI.
type secretWatch struct {
	t       *testing.T
	secrets []string
}

func (s *secretWatch) add(v ...string) {
	for _, x := range v {
		if x != "" {
			s.secrets = append(s.secrets, x)
		}
	}
}

// finish waits for p and checks its output; allowed may appear (the enroll
// command's own secret and URI), replaced in the order given.
func (s *secretWatch) finish(p *proc, allowed ...string) result {
	s.t.Helper()
	select {
	case <-p.done:
	case <-servertest.Context(s.t).Done():
		s.t.Fatalf("%s did not end\nstdout: %s\nstderr: %s", p.name(), p.stdout.String(), p.stderr.String())
	}
	r := result{code: p.code, stdout: p.stdout.String(), stderr: p.stderr.String()}
	out := r.stdout + r.stderr
	for _, a := range allowed {
		out = strings.ReplaceAll(out, a, "<allowed>")
	}
	bad := strings.Contains(out, "pdc_") || secretPattern.MatchString(out) || strings.Contains(out, "otpauth://")
	for _, x := range s.secrets {
		bad = bad || strings.Contains(out, x)
	}
	if bad {
		s.t.Errorf("%s shows a secret:\nstdout: %s\nstderr: %s", p.name(), r.stdout, r.stderr)
	}
	return r
}

// want is finish that checks the exit code and what the output holds.
func (s *secretWatch) want(p *proc, code int, stdout, stderr []string, allowed ...string) result {
	s.t.Helper()
	r := s.finish(p, allowed...)
	ok := r.code == code
	for _, x := range stdout {
		ok = ok && strings.Contains(r.stdout, x)
	}
	for _, x := range stderr {
		ok = ok && strings.Contains(r.stderr, x)
	}
	if !ok {
		s.t.Errorf("%s: exit %d, want %d with stdout %q and stderr %q\nstdout: %s\nstderr: %s", p.name(), r.code, code, stdout, stderr, r.stdout, r.stderr)
	}
	return r
}

// TestBackupRestoreAndCodes: a phone pairs and backs up its accounts; a
// new phone with the same number restores them, takes over the logins and
// shows codes the login server accepts; an authenticator app is enrolled
// and verified.
func TestBackupRestoreAndCodes(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		dir := t.TempDir()
		mustRealAdmin(t, ts, "rp", "create", "--name", "portal", "--display-name", "Mijn Portal", "--allow-backup-restore")
		_, key := ts.CreateAPIKey(t, "portal")
		keyFile := filepath.Join(dir, "api-key")
		if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		rpEnv := map[string]string{envAPIKeyFile: keyFile}
		sw := &secretWatch{t: t}
		sw.add(key)
		const number, user, label = "+31612345678", "jan@example.nl", "Jan (portal)"

		// Phone 1 registers and pairs.
		phone1 := filepath.Join(dir, "phone1.json")
		mustRealCLI(t, ts, "device", "register", "--phone", number, "--token", ts.AdminToken, "--state", phone1, "--name", "Old phone")
		st1 := readState(t, phone1)
		sw.add(st1.DeviceCredential)
		pair := start(t, ts, nil, "device", "pair", "--yes", "--state", phone1)
		words := pair.waitOut(`Type these words on the login page: ([a-z]+ [a-z]+)\n`, 1)[1]
		claim := start(t, ts, rpEnv, "rp", "pair", "--phrase", words, "--user", user, "--label", label)
		sw.want(claim, 0, []string{"connected: " + label + " is paired with device " + st1.DeviceID}, nil)
		sw.want(pair, 0, []string{"Connected: account " + label + " at Mijn Portal"}, []string{"Offline codes for " + label})
		st1 = readState(t, phone1)
		if len(st1.Accounts) != 1 || st1.Accounts[0].Secret == "" || st1.Accounts[0].AccountLabel != label ||
			st1.Accounts[0].RelyingPartyName != "Mijn Portal" || !strings.HasPrefix(st1.Accounts[0].ConnectionID, "con_") ||
			!strings.HasPrefix(st1.Accounts[0].RequestID, "req_") {
			t.Fatalf("phone 1 accounts: %+v", st1.Accounts)
		}
		seed := st1.Accounts[0].Secret
		sw.add(seed)

		// Backups: a trivial passcode is refused, 4831 is taken.
		r := sw.finish(start(t, ts, nil, "device", "backup", "--passcode", "1234", "--state", phone1))
		if r.code != 1 || !strings.Contains(r.stderr, "pushauth: InvalidArgument: ") || !strings.Contains(r.stderr, "passcode") {
			t.Errorf("trivial passcode: exit %d\nstderr: %s", r.code, r.stderr)
		}
		sw.want(start(t, ts, nil, "device", "backup", "--passcode", "4831", "--state", phone1), 0, []string{"backup stored (1 accounts)"}, nil)
		if st := readState(t, phone1); st.BackupKeyShare != "" {
			t.Error("a key share is kept after the backup: it belongs with the blob on the server")
		}
		sw.want(start(t, ts, nil, "device", "backup-info", "--state", phone1), 0, []string{"attempts left:", "yes, for +31"}, nil)

		// Phone 2 registers with the same number, after the SMS cooldown.
		ts.Clock.Advance(31 * time.Second)
		phone2 := filepath.Join(dir, "phone2.json")
		mustRealCLI(t, ts, "device", "register", "--phone", number, "--token", ts.AdminToken, "--state", phone2, "--name", "New phone")
		st2 := readState(t, phone2)
		sw.add(st2.DeviceCredential)
		r = sw.finish(start(t, ts, nil, "device", "code", "--state", phone2))
		if r.code == 0 || !strings.Contains(r.stderr, "no account with offline codes") {
			t.Errorf("device code before restore: exit %d\nstderr: %s", r.code, r.stderr)
		}

		// A wrong passcode, then the right one.
		r = sw.finish(start(t, ts, nil, "device", "restore", "--passcode", "0000", "--state", phone2))
		if r.code != 1 || !strings.Contains(r.stderr, "PermissionDenied") || !strings.Contains(r.stderr, "attempts left") {
			t.Errorf("restore with a wrong passcode: exit %d\nstderr: %s", r.code, r.stderr)
		}
		sw.want(start(t, ts, nil, "device", "restore", "--passcode", "4831", "--state", phone2), 0,
			[]string{"Restored the backup: 1 accounts moved to device " + st2.DeviceID + " (offline codes for 1)", "Mijn Portal", label,
				"Replaced device " + st1.DeviceID + ": it is revoked."}, nil)
		st2 = readState(t, phone2)
		if len(st2.Accounts) != 1 || st2.Accounts[0].Secret != seed || st2.Accounts[0].AccountLabel != label {
			t.Fatalf("phone 2 accounts after restore: %+v", st2.Accounts)
		}

		// Logins now go to phone 2; phone 1 is revoked.
		watch := start(t, ts, nil, "device", "watch", "--approve", "--once", "--state", phone2)
		watch.waitErr(`Watching for requests to device `, 1)
		login := start(t, ts, rpEnv, "rp", "login", "--user", user)
		sw.want(login, 0, []string{"approved: " + user + " may log in (on device " + st2.DeviceID + ")"}, nil)
		sw.want(watch, 0, []string{"Approved: the login of " + label + " at Mijn Portal goes on."}, nil)
		if r := sw.finish(start(t, ts, nil, "device", "show", "--state", phone1)); r.code != 1 {
			t.Errorf("device show on the revoked phone: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}

		// Offline codes of phone 2: accepted once.
		r = sw.want(start(t, ts, nil, "device", "code", "--state", phone2), 0, []string{label + " at Mijn Portal, valid for "}, nil)
		code := regexp.MustCompile(`^([0-9]{6})  `).FindStringSubmatch(r.stdout)
		if code == nil {
			t.Fatalf("device code: %q", r.stdout)
		}
		sw.want(start(t, ts, nil, "device", "code", "--account", label, "--state", phone2), 0, []string{code[1]}, nil)
		sw.want(start(t, ts, rpEnv, "rp", "totp", "verify", "--user", user, "--code", code[1]), 0, []string{"valid: the code belongs to factor", "paired pushauth app"}, nil)
		sw.want(start(t, ts, rpEnv, "rp", "totp", "verify", "--user", user, "--code", code[1]), 1, nil, []string{"PermissionDenied", "already used"})

		// An authenticator app: enroll, confirm, verify once.
		qr := filepath.Join(dir, "qr.png")
		enroll := start(t, ts, rpEnv, "rp", "totp", "enroll", "--user", user, "--label", "jan@example.nl", "--qr", qr)
		m := enroll.waitOut(`factor:\s+(\S+)\nsecret:\s+([A-Z2-7]+)\nuri:\s+(otpauth://\S+)\n`, 1)
		factor, secret, uri := m[1], m[2], m[3]
		sw.want(enroll, 0, nil, []string{"rp totp confirm --user " + user + " --factor " + factor}, uri, secret)
		sw.add(secret)
		if png, err := os.ReadFile(qr); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
			t.Errorf("QR code: %v, %d bytes", err, len(png))
		}
		gen := func() string {
			c, err := totp.GenerateCodeCustom(secret, ts.Clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		sw.want(start(t, ts, rpEnv, "rp", "factors", "--user", user), 0, []string{"Push devices:", st2.DeviceID, factor, "authenticator app", "paired pushauth app"}, nil)
		sw.want(start(t, ts, rpEnv, "rp", "totp", "confirm", "--user", user, "--factor", factor, "--code", gen()), 0, []string{"confirmed: factor " + factor}, nil)
		ts.Clock.Advance(30 * time.Second)
		next := gen()
		sw.want(start(t, ts, rpEnv, "rp", "totp", "verify", "--user", user, "--code", next), 0, []string{"valid: the code belongs to factor " + factor + " (authenticator app)"}, nil)
		sw.want(start(t, ts, rpEnv, "rp", "totp", "verify", "--user", user, "--code", next), 1, nil, []string{"already used"})
		sw.want(start(t, ts, rpEnv, "rp", "totp", "remove", "--user", user, "--factor", factor), 0, []string{"removed factor " + factor}, nil)

		// The backup can be deleted.
		sw.want(start(t, ts, nil, "device", "delete-backup", "--state", phone2), 0, []string{"backup deleted"}, nil)
		sw.want(start(t, ts, nil, "device", "backup-info", "--state", phone2), 0, []string{"No backup for"}, nil)
	})
}

func TestBackupBlob(t *testing.T) {
	accts := []stateAccount{{RelyingPartyName: "Mijn Portal", AccountLabel: "jan", Secret: "JBSWY3DPEHPK3PXP"}}
	blob, share, err := sealBackup("4831", accts)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(blob, []byte("JBSWY3DPEHPK3PXP")) || bytes.Contains(blob, []byte("jan")) || !bytes.HasPrefix(blob, []byte("PAB1")) {
		t.Fatal("the blob holds the accounts in clear, or is not in the documented format")
	}
	c, err := openBackup("4831", share, blob)
	if err != nil || len(c.Accounts) != 1 || c.Accounts[0] != accts[0] {
		t.Fatalf("openBackup: %v %+v", err, c)
	}
	if _, err := openBackup("4832", share, blob); err == nil {
		t.Fatal("a wrong passcode decrypts the blob")
	}
	other := bytes.Clone(share)
	other[0] ^= 1
	if _, err := openBackup("4831", other, blob); err == nil {
		t.Fatal("another key share decrypts the blob")
	}
}
