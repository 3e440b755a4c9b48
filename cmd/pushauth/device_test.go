package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// readState reads a state file as the test sees it, checking it is private.
func readState(t *testing.T, path string) deviceState {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st deviceState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return st
}

// mustRealCLI is realCLI that fails the test unless the command succeeds.
func mustRealCLI(t *testing.T, ts *servertest.TestServer, args ...string) result {
	t.Helper()
	r := realCLI(t, ts, "", args...)
	if r.code != 0 {
		t.Fatalf("pushauth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// outboxCount is the number of outbox messages to number.
func outboxCount(t *testing.T, ts *servertest.TestServer, number string) int {
	t.Helper()
	resp, err := ts.Admin.ListOutboxMessages(ts.AdminCtx(servertest.Context(t)), &pushauthv1.ListOutboxMessagesRequest{PhoneNumber: number, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.GetMessages())
}

// TestDeviceLifecycle registers a phone through the outbox and uses it:
// show, update, a second phone with the same number, deregister.
func TestDeviceLifecycle(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		dir := t.TempDir()
		state := filepath.Join(dir, "phone.json")
		const number, masked = "+31612345678", "+31*******78"

		r := mustRealCLI(t, ts, "device", "register", "--phone", number, "--token", ts.AdminToken, "--state", state, "--name", "Pixel 8 van Jan")
		if !strings.Contains(r.stderr, "SMS sent to "+masked+", expires ") ||
			!strings.Contains(r.stderr, "Reading the SMS from the server's development outbox") ||
			!strings.Contains(r.stderr, "Registered device dev_") {
			t.Errorf("register stderr:\n%s", r.stderr)
		}
		rows := tableRows(t, r.stdout, "ID  ")
		if len(rows) != 1 || !strings.HasPrefix(rows[0][0], "dev_") || rows[0][1] != "android" || rows[0][2] != "Pixel 8 van Jan" || rows[0][3] != masked {
			t.Errorf("register stdout:\n%s", r.stdout)
		}
		devID := rows[0][0]

		st := readState(t, state)
		cred := st.DeviceCredential
		if st.DeviceID != devID || !strings.HasPrefix(cred, "pdc_") || st.PhoneNumber != number ||
			st.MaskedPhoneNumber != masked || st.VerificationID != "" || st.Addr != ts.Addr ||
			st.Platform != "android" || st.PublicKeyFormat != keyFormatSPKI || st.Deregistered {
			t.Errorf("state: %+v", st)
		}
		if _, err := st.privateKey(); err != nil {
			t.Error(err)
		}
		// The credential in the state file is the one the server issued.
		got, err := ts.Device.GetDevice(ts.WithToken(servertest.Context(t), cred), &pushauthv1.GetDeviceRequest{})
		if err != nil || got.GetDevice().GetId() != devID {
			t.Fatalf("GetDevice with the stored credential: %v, %v", got, err)
		}

		// device show: the address comes from the state file.
		r = cli(t, nil, nil, "device", "show", "--state", state)
		rows = tableRows(t, r.stdout, "ID  ")
		if r.code != 0 || len(rows) != 1 || rows[0][0] != devID || rows[0][3] != masked {
			t.Errorf("show: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		r = mustRealCLI(t, ts, "device", "show", "--state", state, "--json")
		var shown pushauthv1.GetDeviceResponse
		if err := protojson.Unmarshal([]byte(r.stdout), &shown); err != nil || shown.GetDevice().GetId() != devID ||
			shown.GetDevice().GetPlatform() != pushauthv1.Platform_PLATFORM_ANDROID {
			t.Errorf("show --json: %v\n%s", err, r.stdout)
		}

		// A second register on the same state file is refused, before any SMS.
		r = realCLI(t, ts, "", "device", "register", "--phone", number, "--token", ts.AdminToken, "--state", state)
		if r.code != 1 || !strings.Contains(r.stderr, "already holds the registered device "+devID) ||
			!strings.Contains(r.stderr, "use --force") || r.stdout != "" {
			t.Errorf("register again: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		if n := outboxCount(t, ts, number); n != 1 {
			t.Errorf("%d SMS to %s, want 1", n, number)
		}
		if readState(t, state).DeviceCredential != cred {
			t.Error("the refused register changed the state file")
		}

		// A second phone with the same number, after the resend cooldown.
		ts.Clock.Advance(31 * time.Second)
		state2 := filepath.Join(dir, "phone2.json")
		r = mustRealCLI(t, ts, "device", "register", "--phone", number, "--token", ts.AdminToken, "--state", state2)
		dev2 := readState(t, state2).DeviceID
		if dev2 == "" || dev2 == devID || !strings.Contains(r.stdout, dev2) {
			t.Errorf("second phone: %s\n%s", dev2, r.stdout)
		}

		// device update changes only the fields given.
		before, err := ts.Store.GetDevice(servertest.Context(t), devID)
		if err != nil {
			t.Fatal(err)
		}
		r = mustRealCLI(t, ts, "device", "update", "--name", "X", "--state", state)
		rows = tableRows(t, r.stdout, "ID  ")
		if len(rows) != 1 || rows[0][0] != devID || rows[0][2] != "X" {
			t.Errorf("update:\n%s", r.stdout)
		}
		after, err := ts.Store.GetDevice(servertest.Context(t), devID)
		if err != nil {
			t.Fatal(err)
		}
		if after.Name != "X" || after.PushToken != before.PushToken || after.AppVersion != before.AppVersion {
			t.Errorf("after update: %+v\nbefore: %+v", after, before)
		}
		r = mustRealCLI(t, ts, "device", "update", "--push-token", "fcm-new", "--app-version", "2.0", "--state", state)
		if after, _ = ts.Store.GetDevice(servertest.Context(t), devID); after.Name != "X" || after.PushToken != "fcm-new" || after.AppVersion != "2.0" {
			t.Errorf("after second update: %+v", after)
		}

		// device deregister: the credential is dropped, the key kept.
		stale, err := os.ReadFile(state)
		if err != nil {
			t.Fatal(err)
		}
		r = mustRealCLI(t, ts, "device", "deregister", "--state", state)
		if !strings.Contains(r.stdout, "Deregistered device "+devID) {
			t.Errorf("deregister:\n%s", r.stdout)
		}
		st = readState(t, state)
		if !st.Deregistered || st.DeregisterTime == nil || st.DeviceCredential != "" || st.DeviceID != devID || st.PrivateKey == "" {
			t.Errorf("state after deregister: %+v", st)
		}
		if b, _ := os.ReadFile(state); strings.Contains(string(b), cred) {
			t.Error("the state file still holds the credential")
		}

		r = realCLI(t, ts, "", "device", "show", "--state", state)
		if r.code != 1 || !strings.Contains(r.stderr, "the device "+devID+" in "+state+" was deregistered") || r.stdout != "" {
			t.Errorf("show after deregister: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		// A copy of the state from before (another copy of the app) meets
		// the server's refusal.
		staleState := filepath.Join(dir, "stale.json")
		if err := os.WriteFile(staleState, stale, 0o600); err != nil {
			t.Fatal(err)
		}
		r = realCLI(t, ts, "", "device", "show", "--state", staleState)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "pushauth: PermissionDenied: ") ||
			!strings.Contains(r.stderr, "hint: device "+devID+" has been deregistered") || r.stdout != "" {
			t.Errorf("show with the old credential: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		r = realCLI(t, ts, "", "device", "deregister", "--state", staleState)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "pushauth: PermissionDenied: ") {
			t.Errorf("deregister again: exit %d\nstderr: %s", r.code, r.stderr)
		}

		// The other phone of the number is untouched.
		r = mustRealCLI(t, ts, "device", "show", "--state", state2)
		if !strings.Contains(r.stdout, dev2) {
			t.Errorf("second phone after the first deregistered:\n%s", r.stdout)
		}

		// A deregistered state file may be registered again without --force.
		ts.Clock.Advance(31 * time.Second)
		r = mustRealCLI(t, ts, "device", "register", "--phone", number, "--token", ts.AdminToken, "--state", state)
		if st = readState(t, state); st.Deregistered || st.DeviceID == devID || st.DeviceCredential == "" {
			t.Errorf("state after registering again: %+v", st)
		}
		// --force replaces a registered device.
		ts.Clock.Advance(31 * time.Second)
		r = mustRealCLI(t, ts, "device", "register", "--phone", number, "--token", ts.AdminToken, "--state", state2, "--force")
		if !strings.Contains(r.stderr, "Replacing device "+dev2) || readState(t, state2).DeviceID == dev2 {
			t.Errorf("--force: %s", r.stderr)
		}
	})
}

// TestDeviceRegisterByCodeAndLink registers without an admin token: the code
// is typed, wrong first, and then the link from the SMS finishes it.
func TestDeviceRegisterByCodeAndLink(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		state := filepath.Join(t.TempDir(), "phone.json")
		const number = "+31612345679"

		// Without a token the code is asked for; nothing typed leaves the
		// verification pending.
		r := realCLI(t, ts, "\n", "device", "register", "--phone", "06 12345679", "--region", "nl", "--locale", "nl", "--state", state)
		if r.code != 1 || !strings.Contains(r.stderr, "SMS sent to +31*******79") ||
			!strings.Contains(r.stderr, "Enter the 6-digit code from the SMS:") ||
			!strings.Contains(r.stderr, "pushauth: no code entered; the verification is pending in "+state) {
			t.Fatalf("register without code: exit %d\nstderr: %s", r.code, r.stderr)
		}
		st := readState(t, state)
		if !strings.HasPrefix(st.VerificationID, "ver_") || st.PhoneNumber != number || st.DeviceCredential != "" || st.VerificationExpireTime == nil {
			t.Errorf("pending state: %+v", st)
		}
		verID := st.VerificationID

		// admin outbox shows the SMS, in Dutch, with its code and link.
		r = mustRealCLI(t, ts, "admin", "outbox", "--phone", number, "--token", ts.AdminToken)
		rows := tableRows(t, r.stdout, "TIME  ")
		if len(rows) != 1 || rows[0][0] != servertest.Epoch.Format(time.RFC3339) || rows[0][1] != number ||
			!strings.HasPrefix(rows[0][2], "Je verificatiecode voor pushauth is ") {
			t.Fatalf("admin outbox:\n%s", r.stdout)
		}
		code, _ := smsProof(rows[0][2])
		link := regexp.MustCompile(`https://\S+/v/[A-Za-z0-9_-]+`).FindString(rows[0][2])
		if code == "" || link == "" {
			t.Fatalf("no code or link in %q", rows[0][2])
		}

		// A wrong code: the server's refusal with the tries left; the
		// verification stays pending, and no new SMS is sent.
		n, _ := strconv.Atoi(code)
		wrong := fmt.Sprintf("%06d", (n+1)%1_000_000)
		r = realCLI(t, ts, "", "device", "register", "--phone", number, "--code", wrong, "--state", state)
		want := "pushauth: PermissionDenied: wrong code; 4 tries left\n" +
			"hint: the verification is still pending in " + state + ": run the command again with the right --code (or --link) to retry without a new SMS\n"
		if r.code != 1 || !strings.HasSuffix(r.stderr, want) || r.stdout != "" {
			t.Errorf("wrong code: exit %d\nstderr: %s\nwant suffix:\n%s", r.code, r.stderr, want)
		}
		if !strings.Contains(r.stderr, "Finishing the pending verification for +31*******79") {
			t.Errorf("wrong code did not finish the pending verification:\n%s", r.stderr)
		}
		if readState(t, state).VerificationID != verID {
			t.Error("the pending verification was dropped")
		}

		// The link from the SMS finishes it.
		r = realCLI(t, ts, "", "device", "register", "--phone", number, "--link", link, "--state", state, "--json")
		if r.code != 0 {
			t.Fatalf("register --link: exit %d\nstderr: %s", r.code, r.stderr)
		}
		var dev pushauthv1.Device
		if err := protojson.Unmarshal([]byte(r.stdout), &dev); err != nil || !strings.HasPrefix(dev.GetId(), "dev_") ||
			dev.GetMaskedPhoneNumber() != "+31*******79" {
			t.Errorf("register --json: %v\n%s", err, r.stdout)
		}
		if strings.Contains(r.stdout, "redential") {
			t.Errorf("register --json prints more than the device:\n%s", r.stdout)
		}
		if n := outboxCount(t, ts, number); n != 1 {
			t.Errorf("%d SMS sent, want 1", n)
		}
		st = readState(t, state)
		if st.DeviceID != dev.GetId() || st.VerificationID != "" || st.DeviceCredential == "" {
			t.Errorf("state: %+v", st)
		}

		// The used link is refused, with what to do: a state file with the
		// used verification pending, as if the answer had been lost.
		if err := os.WriteFile(state, []byte(`{"version":1,"addr":"`+ts.Addr+`","platform":"android","public_key_format":"spki",`+
			`"private_key":"`+st.PrivateKey+`","phone_number":"`+number+`","verification_id":"`+verID+`"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		r = realCLI(t, ts, "", "device", "register", "--phone", number, "--link", link, "--state", state)
		if r.code != 1 || !strings.Contains(r.stderr, "pushauth: FailedPrecondition: this code was already used") ||
			!strings.Contains(r.stderr, "hint: run \"pushauth device register --phone NUMBER\" without --code or --link for a new SMS") {
			t.Errorf("used link: exit %d\nstderr: %s", r.code, r.stderr)
		}
		if st = readState(t, state); st.VerificationID != "" {
			t.Errorf("the dead verification stayed in the state: %+v", st)
		}
	})
}

// TestDeviceRegisterIOS registers with the iOS key format.
func TestDeviceRegisterIOS(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		state := filepath.Join(t.TempDir(), "iphone.json")
		r := mustRealCLI(t, ts, "device", "register", "--phone", "+31612345670", "--platform", "ios", "--token", ts.AdminToken, "--state", state)
		rows := tableRows(t, r.stdout, "ID  ")
		if len(rows) != 1 || rows[0][1] != "ios" {
			t.Errorf("register:\n%s", r.stdout)
		}
		st := readState(t, state)
		key, err := st.privateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := key.PublicKey()
		if st.Platform != "ios" || st.PublicKeyFormat != keyFormatX963 || err != nil || len(pub) != 65 || pub[0] != 4 {
			t.Errorf("state: %+v, public key %x, %v", st, pub, err)
		}
		dev, err := ts.Store.GetDevice(servertest.Context(t), st.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		if dev.Platform != "IOS" || len(dev.PushToken) != 64 {
			t.Errorf("stored device: %+v", dev)
		}
		r = mustRealCLI(t, ts, "device", "show", "--state", state)
		if !strings.Contains(r.stdout, st.DeviceID) || !strings.Contains(r.stdout, "+31*******70") {
			t.Errorf("show:\n%s", r.stdout)
		}
	})
}

// TestDeviceRegisterLimit asks twice quickly for an SMS to one number: the
// second is refused with the wait.
func TestDeviceRegisterLimit(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		dir := t.TempDir()
		const number = "+31612345671"
		mustRealCLI(t, ts, "device", "register", "--phone", number, "--token", ts.AdminToken, "--state", filepath.Join(dir, "a.json"))
		ts.Clock.Advance(10 * time.Second)
		second := filepath.Join(dir, "b.json")
		r := realCLI(t, ts, "", "device", "register", "--phone", number, "--token", ts.AdminToken, "--state", second)
		if r.code != 1 || r.stdout != "" ||
			!strings.HasPrefix(r.stderr, "pushauth: ResourceExhausted: an SMS was just sent to this number; ask again in 20s\n"+
				"  try again in 20 seconds (after ") {
			t.Errorf("second SMS: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}
		if _, err := os.Stat(second); !os.IsNotExist(err) {
			t.Errorf("the refused register left a state file: %v", err)
		}
		// After the wait it works.
		ts.Clock.Advance(20 * time.Second)
		mustRealCLI(t, ts, "device", "register", "--phone", number, "--token", ts.AdminToken, "--state", second)
	})
}

// TestDeviceCommandErrors checks command lines refused before any call.
func TestDeviceCommandErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.json")
	pending := filepath.Join(dir, "pending.json")
	key, err := newDeviceKey(platformAndroid)
	if err != nil {
		t.Fatal(err)
	}
	format := string(key.Format)
	enc, err := encodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := saveState(pending, &deviceState{Addr: "127.0.0.1:1", Platform: platformAndroid, PublicKeyFormat: format, PrivateKey: enc,
		PhoneNumber: "+31612345678", VerificationID: "ver_1"}); err != nil {
		t.Fatal(err)
	}
	registered := filepath.Join(dir, "registered.json")
	if err := saveState(registered, &deviceState{Addr: "127.0.0.1:1", Platform: platformAndroid, PublicKeyFormat: format, PrivateKey: enc,
		PhoneNumber: "+31612345678", DeviceID: "dev_1", DeviceCredential: "pdc_x.y"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no phone", []string{"register"}, 2, "--phone is required"},
		{"code and link", []string{"register", "--phone", "+31612345678", "--code", "123456", "--link", "https://x/v/abcdefghijklmnop"}, 2, "use either --code or --link"},
		{"short code", []string{"register", "--phone", "+31612345678", "--code", "12345"}, 2, "--code must be the 6 digits"},
		{"bad link", []string{"register", "--phone", "+31612345678", "--link", "https://x/y"}, 2, "--link must be the link from the SMS"},
		{"bad platform", []string{"register", "--phone", "+31612345678", "--platform", "symbian"}, 2, "want android or ios"},
		{"bad region", []string{"register", "--phone", "0612345678", "--region", "NLD"}, 2, "--region must be a two-letter"},
		{"no state dir", []string{"register", "--phone", "+31612345678", "--code", "123456", "--state", filepath.Join(dir, "no", "s.json")}, 1, "cannot write the device state"},
		{"update nothing", []string{"update", "--state", registered}, 2, "nothing to change"},
		{"show without state", []string{"show", "--state", missing}, 1, "no device state in " + missing},
		{"show pending", []string{"show", "--state", pending}, 1, "the registration in " + pending + " is not finished"},
		{"plaintext to remote", []string{"show", "--state", registered, "--addr", "192.0.2.1:8470"}, 1,
			"refusing to send the device credential unencrypted to 192.0.2.1:8470"},
		{"outbox limit", []string{"--limit", "101"}, 2, "--limit must be between 0 and 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			group := "device"
			if tt.name == "outbox limit" {
				group = "admin outbox"
			}
			args := append(strings.Fields(group), tt.args...)
			r := cli(t, map[string]string{envAddr: "127.0.0.1:1"}, nil, args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
				t.Errorf("exit %d, want %d\nstderr: %s\nwant: %s", r.code, tt.code, r.stderr, tt.want)
			}
			if strings.Contains(r.stderr, "pdc_") {
				t.Errorf("stderr shows the credential: %s", r.stderr)
			}
		})
	}
}

// TestDeviceStateEnv checks that PUSHAUTH_DEVICE_STATE names the state file.
func TestDeviceStateEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "env.json")
	r := cli(t, map[string]string{envDeviceState: path}, nil, "device", "show")
	if r.code != 1 || !strings.Contains(r.stderr, "no device state in "+path) {
		t.Errorf("exit %d\nstderr: %s", r.code, r.stderr)
	}
}

func TestSMSProof(t *testing.T) {
	tests := []struct{ body, code, link string }{
		{"Your pushauth verification code is 123456. Or tap https://a.example/v/AAAA123456BBBBBBBBBBBB - valid for 10 minutes.", "123456", "AAAA123456BBBBBBBBBBBB"},
		{"Code 654321 via https://a.example/v/-123456-abcdefghijk-", "654321", "-123456-abcdefghijk-"},
		{"no code here", "", ""},
	}
	for _, tt := range tests {
		if code, link := smsProof(tt.body); code != tt.code || link != tt.link {
			t.Errorf("smsProof(%q) = %q, %q; want %q, %q", tt.body, code, link, tt.code, tt.link)
		}
	}
}

func TestFmtWait(t *testing.T) {
	tests := map[time.Duration]string{
		0:                                  "1 second",
		1500 * time.Millisecond:            "2 seconds",
		30 * time.Second:                   "30 seconds",
		time.Minute:                        "1 minute",
		61 * time.Second:                   "1 minute 1 second",
		59*time.Minute + 59*time.Second:    "59 minutes 59 seconds",
		time.Hour:                          "1 hour",
		20*time.Hour + 55*time.Minute:      "20 hours 55 minutes",
		2*time.Hour + 59*time.Minute + 1e9: "3 hours",
	}
	for d, want := range tests {
		if got := fmtWait(d); got != want {
			t.Errorf("fmtWait(%v) = %q, want %q", d, got, want)
		}
	}
}
