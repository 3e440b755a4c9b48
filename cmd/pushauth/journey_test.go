package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// proc is a command line running in the background against a real test
// server, as in a terminal of its own: its output is read through pipes as
// it comes, stdin is a pipe the test writes to, and it signs with the test
// server's clock.
type proc struct {
	t      *testing.T
	args   []string
	stdin  *io.PipeWriter
	cancel context.CancelFunc // Ctrl-C

	mu             sync.Mutex
	stdout, stderr strings.Builder
	changed        chan struct{} // closed and replaced when output comes

	done chan struct{}
	code int

	// showsSecret is set for the commands whose output is a secret, such
	// as "admin key create".
	showsSecret bool
}

// start runs "pushauth args... --addr ts.Addr" in the background with the
// environment vars. The test's end stops it.
func start(t *testing.T, ts *servertest.TestServer, vars map[string]string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(servertest.Context(t))
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	p := &proc{t: t, args: args, stdin: inW, cancel: cancel, changed: make(chan struct{}), done: make(chan struct{})}
	e := &env{stdin: inR, stdout: outW, stderr: errW, getenv: func(k string) string { return vars[k] }, now: ts.Clock.Now}
	var readers sync.WaitGroup
	readers.Add(2)
	go p.read(outR, &p.stdout, &readers)
	go p.read(errR, &p.stderr, &readers)
	go func() {
		code := e.dispatch(ctx, append(append([]string{}, args...), "--addr", ts.Addr))
		outW.Close()
		errW.Close()
		readers.Wait()
		p.code = code
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		inW.Close()
		<-p.done
	})
	return p
}

// read copies a pipe into b as it comes.
func (p *proc) read(r io.Reader, b *strings.Builder, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			p.mu.Lock()
			b.Write(buf[:n])
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (p *proc) name() string { return "pushauth " + strings.Join(p.args, " ") }

// waitOut waits until stdout matches re at least n times and returns the
// submatches of the last match.
func (p *proc) waitOut(re string, n int) []string { p.t.Helper(); return p.waitFor(&p.stdout, re, n) }

// waitErr is waitOut for stderr.
func (p *proc) waitErr(re string, n int) []string { p.t.Helper(); return p.waitFor(&p.stderr, re, n) }

func (p *proc) waitFor(b *strings.Builder, re string, n int) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := servertest.Context(p.t)
	exited := false
	for {
		p.mu.Lock()
		text, changed := b.String(), p.changed
		p.mu.Unlock()
		if ms := rx.FindAllStringSubmatch(text, -1); len(ms) >= n {
			return ms[len(ms)-1]
		}
		if exited {
			p.t.Fatalf("%s exited with %d before %q showed %d times\nstdout: %s\nstderr: %s", p.name(), p.code, re, n, p.stdout.String(), p.stderr.String())
		}
		select {
		case <-changed:
		case <-p.done:
			exited = true // look once more: output may have come last
		case <-deadline.Done():
			p.mu.Lock()
			defer p.mu.Unlock()
			p.t.Fatalf("%s: %q did not show %d times\nstdout: %s\nstderr: %s", p.name(), re, n, p.stdout.String(), p.stderr.String())
		}
	}
}

// write types into the command's stdin.
func (p *proc) write(s string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, s); err != nil {
		p.t.Fatalf("%s: write stdin: %v", p.name(), err)
	}
}

// secretPattern matches a whole API key or device credential: its public
// prefix, a dot and the secret part.
var secretPattern = regexp.MustCompile(`(pak|pdc)_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{20,}`)

// wait waits for the command to end and returns what it did. No output may
// show a credential, an API key or a TOTP seed.
func (p *proc) wait() result {
	p.t.Helper()
	select {
	case <-p.done:
	case <-servertest.Context(p.t).Done():
		p.t.Fatalf("%s did not end\nstdout: %s\nstderr: %s", p.name(), p.stdout.String(), p.stderr.String())
	}
	r := result{code: p.code, stdout: p.stdout.String(), stderr: p.stderr.String()}
	out := r.stdout + r.stderr
	if strings.Contains(out, "pdc_") || (!p.showsSecret && secretPattern.MatchString(out)) || strings.Contains(out, "otpauth://") || strings.Contains(strings.ToLower(out), "totp") {
		p.t.Errorf("%s shows a secret:\nstdout: %s\nstderr: %s", p.name(), r.stdout, r.stderr)
	}
	return r
}

// want waits for the command and fails the test unless it exited with code
// and its stdout and stderr hold the given strings.
func (p *proc) want(code int, stdout, stderr []string) result {
	p.t.Helper()
	r := p.wait()
	ok := r.code == code
	for _, s := range stdout {
		ok = ok && strings.Contains(r.stdout, s)
	}
	for _, s := range stderr {
		ok = ok && strings.Contains(r.stderr, s)
	}
	if !ok {
		p.t.Errorf("%s: exit %d, want %d with stdout %q and stderr %q\nstdout: %s\nstderr: %s", p.name(), r.code, code, stdout, stderr, r.stdout, r.stderr)
	}
	return r
}

// run runs a command to its end.
func run1(t *testing.T, ts *servertest.TestServer, vars map[string]string, args ...string) result {
	t.Helper()
	return start(t, ts, vars, args...).wait()
}

// mustRun runs a command that must succeed.
func mustRun(t *testing.T, ts *servertest.TestServer, vars map[string]string, args ...string) result {
	t.Helper()
	r := run1(t, ts, vars, args...)
	if r.code != 0 {
		t.Fatalf("pushauth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// rpWorld is a relying party "portal" with an API key in a file, and a
// phone registered through the CLI.
type rpWorld struct {
	ts    *servertest.TestServer
	dir   string
	key   string
	rpEnv map[string]string // PUSHAUTH_API_KEY_FILE
	state string
	devID string
}

func newRPWorld(t *testing.T, url string) *rpWorld {
	t.Helper()
	// The journey logs in far more often than any user would: the
	// push-bombing limits are not what it tests.
	return newRPWorldOn(t, servertest.New(t, url, manyLogins))
}

// manyLogins lifts the push-bombing limits.
func manyLogins(o *server.Options) {
	o.Approval = approval.DefaultConfig()
	o.Approval.ApprovalsPerMinute, o.Approval.ApprovalsPerHour = 1000, 1000
}

// newRPWorldOn is newRPWorld on a server already running.
func newRPWorldOn(t *testing.T, ts *servertest.TestServer) *rpWorld {
	t.Helper()
	w := &rpWorld{ts: ts, dir: t.TempDir()}
	mustRealAdmin(t, ts, "rp", "create", "--name", "portal", "--display-name", "Mijn Portal")
	_, w.key = ts.CreateAPIKey(t, "portal")
	keyFile := filepath.Join(w.dir, "api-key")
	if err := os.WriteFile(keyFile, []byte(w.key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.rpEnv = map[string]string{envAPIKeyFile: keyFile}
	w.state = filepath.Join(w.dir, "phone.json")
	mustRealCLI(t, ts, "device", "register", "--phone", "+31612345678", "--token", ts.AdminToken, "--state", w.state, "--name", "Pixel van Jan")
	w.devID = readState(t, w.state).DeviceID
	return w
}

// pair connects the phone to user with "device pair" and "rp pair" at once,
// the words going from one command's output to the other's arguments.
func (w *rpWorld) pair(t *testing.T, pairFlag, user, label string) (device, rp *proc) {
	t.Helper()
	args := []string{"device", "pair", "--state", w.state}
	if pairFlag != "" {
		args = append(args, pairFlag)
	}
	device = start(t, w.ts, nil, args...)
	words := device.waitOut(`Type these words on the login page: ([a-z]+ [a-z]+)\n`, 1)[1]
	rp = start(t, w.ts, w.rpEnv, "rp", "pair", "--phrase", words, "--user", user, "--label", label, "--ip", "192.0.2.1")
	return device, rp
}

// watchAndLogin runs "device watch watchArgs... --once" and, once it
// watches, "rp login loginArgs...".
func (w *rpWorld) watchAndLogin(t *testing.T, watchArgs []string, loginArgs ...string) (watch, login *proc) {
	t.Helper()
	watch = start(t, w.ts, nil, append([]string{"device", "watch", "--once", "--state", w.state}, watchArgs...)...)
	watch.waitErr(`Watching for requests to device `, 1)
	login = start(t, w.ts, w.rpEnv, append([]string{"rp", "login"}, loginArgs...)...)
	return watch, login
}

// TestJourney is the whole journey in two terminals, a phone and a login
// server, against the real server: register, pair, approve, deny, report
// fraud, number matching, pending requests, cancel and removing the phone.
func TestJourney(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newRPWorld(t, url)
		ts := w.ts
		const user, label = "jan@example.nl", "Jan (portal)"

		// rp whoami, with the key from each source.
		r := mustRun(t, ts, w.rpEnv, "rp", "whoami")
		rows := tableRows(t, strings.SplitN(r.stdout, "\n\n", 2)[0], "ID  ")
		if len(rows) != 1 || rows[0][1] != "portal" || rows[0][2] != "Mijn Portal" || !strings.Contains(r.stdout, "API key: pak_") {
			t.Errorf("rp whoami:\n%s", r.stdout)
		}
		mustRun(t, ts, map[string]string{envAPIKey: w.key}, "rp", "whoami")
		r = start(t, ts, nil, "rp", "whoami", "--api-key", w.key, "--json").wait()
		var who pushauthv1.WhoAmIResponse
		if err := protojson.Unmarshal([]byte(r.stdout), &who); err != nil || who.GetRelyingParty().GetName() != "portal" {
			t.Errorf("rp whoami --json: %v\n%s", err, r.stdout)
		}
		r = run1(t, ts, map[string]string{envAPIKey: "pak_wrong.key"}, "rp", "whoami")
		if r.code != 1 || !strings.HasPrefix(r.stderr, "pushauth: Unauthenticated: ") || !strings.Contains(r.stderr, "hint: check the API key") {
			t.Errorf("wrong key: exit %d\nstderr: %s", r.code, r.stderr)
		}

		// Pairing: the phone shows two words, the login server claims them,
		// the phone approves (--yes).
		pair, claim := w.pair(t, "--yes", user, label)
		claim.want(0, []string{"connected: " + label + " is paired with device " + w.devID, "signature verified"},
			[]string{"Pairing request req_", "seen on device " + w.devID})
		pair.want(0, []string{"Pairing request req_", "Mijn Portal", label, "192.0.2.1",
			"Connected: account " + label + " at Mijn Portal now asks this device to approve its logins."},
			[]string{"Connect account " + label + " to Mijn Portal? [y/N] y (--yes)"})
		if st := readState(t, w.state); st.DeviceID != w.devID || st.DeviceCredential == "" {
			t.Errorf("state after pairing: %+v", st)
		}

		// Both sides list the connection.
		r = mustRun(t, ts, nil, "device", "connections", "--state", w.state)
		rows = tableRows(t, r.stdout, "ID  ")
		if len(rows) != 1 || !strings.HasPrefix(rows[0][0], "con_") || rows[0][1] != "Mijn Portal" || rows[0][3] != label {
			t.Errorf("device connections:\n%s", r.stdout)
		}
		r = mustRun(t, ts, w.rpEnv, "rp", "devices", "--user", user)
		rows = tableRows(t, r.stdout, "DEVICE ID  ")
		if len(rows) != 1 || rows[0][0] != w.devID || !strings.HasPrefix(rows[0][1], "con_") || rows[0][2] != "Pixel van Jan" ||
			rows[0][3] != "android" || rows[0][4] != label {
			t.Errorf("rp devices:\n%s", r.stdout)
		}
		var devs pushauthv1.ListUserDevicesResponse
		r = mustRun(t, ts, w.rpEnv, "rp", "devices", "--user", user, "--json")
		if err := protojson.Unmarshal([]byte(r.stdout), &devs); err != nil || len(devs.GetDevices()) != 1 || devs.GetDevices()[0].GetDeviceId() != w.devID {
			t.Errorf("rp devices --json: %v\n%s", err, r.stdout)
		}

		// A login, approved on the phone; the login server verifies the
		// signature itself.
		watch, login := w.watchAndLogin(t, []string{"--approve"}, "--user", user, "--app", "Mijn Portal", "--ip", "192.0.2.1",
			"--location", "Utrecht, NL", "--browser", "Firefox on Linux", "--action", "Sign the offer for Kavel 12")
		login.want(0, []string{"signature verified: device " + w.devID + " signed decision=APPROVE for request req_",
			"approved: " + user + " may log in (on device " + w.devID + ")"},
			[]string{"Login request req_", "seen on device " + w.devID})
		watch.want(0, []string{"Login request req_", "from Mijn Portal", "account:", label, "Mijn Portal", "192.0.2.1",
			"Utrecht, NL", "Firefox on Linux", "Sign the offer for Kavel 12", "expires:", "(in 2 minutes)",
			"Approved: the login of " + label + " at Mijn Portal goes on."},
			[]string{"Answer: approve (--approve)"})

		// Denied: exit 1; the user is backed off for 10 seconds.
		watch, login = w.watchAndLogin(t, []string{"--deny"}, "--user", user)
		login.want(1, []string{"signature verified: device " + w.devID + " signed decision=DENY",
			"denied: the user declined the login"}, []string{"pushauth: login not approved: the request is denied"})
		watch.want(0, []string{"Denied: the login of " + label + " at Mijn Portal is refused."}, nil)
		r = run1(t, ts, w.rpEnv, "rp", "login", "--user", user)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "pushauth: ResourceExhausted: ") || !strings.Contains(r.stderr, "try again in 10 seconds") {
			t.Errorf("login during the back-off: exit %d\nstderr: %s", r.code, r.stderr)
		}
		ts.Clock.Advance(10 * time.Second)

		// Reported as fraud; the second failure in a row: 20 seconds.
		watch, login = w.watchAndLogin(t, []string{"--report-fraud"}, "--user", user)
		login.want(1, []string{"signed decision=REPORT_FRAUD", "denied: the user reported fraud"},
			[]string{"the request is denied (fraud report)"})
		watch.want(0, []string{"Reported as fraud: the login is denied"}, []string{"Answer: report fraud (--report-fraud)"})
		ts.Clock.Advance(20 * time.Second)

		// Number matching: the number the login page shows goes to the
		// phone; the wrong number is a denial.
		mustRealAdmin(t, ts, "rp", "set-policy", "portal", "--number-matching", "number")
		login = start(t, ts, w.rpEnv, "rp", "login", "--user", user)
		number := login.waitOut(`Show this number on the login page: ([0-9]+)\n`, 1)[1]
		if len(number) != 2 {
			t.Fatalf("number %q, want 2 digits", number)
		}
		watch = start(t, ts, nil, "device", "watch", "--approve", "--once", "--number", number, "--state", w.state)
		login.want(0, []string{"signature verified", "approved: " + user}, nil)
		watch.want(0, []string{"number:", "type the 2-digit number the login page shows", "Approved:"}, nil)

		login = start(t, ts, w.rpEnv, "rp", "login", "--user", user)
		number = login.waitOut(`Show this number on the login page: ([0-9]+)\n`, 1)[1]
		wrong := "42"
		if number == wrong {
			wrong = "43"
		}
		watch = start(t, ts, nil, "device", "watch", "--approve", "--once", "--number", wrong, "--state", w.state)
		login.want(1, []string{"signed decision=APPROVE", "denied: the number typed on the phone did not match (number mismatch)"},
			[]string{"the request is denied (number mismatch)"})
		watch.want(0, []string{"Denied: the number typed is not the one on the login page (number mismatch)."}, nil)
		ts.Clock.Advance(10 * time.Second)
		mustRealAdmin(t, ts, "rp", "set-policy", "portal", "--number-matching", "none")

		// --json on both sides: one JSON object per message, for scripts;
		// "signature verified" goes to stderr.
		watch, login = w.watchAndLogin(t, []string{"--approve", "--json"}, "--user", user, "--json")
		lr := login.want(0, nil, []string{"signature verified"})
		docs := jsonDocs(t, lr.stdout)
		var created pushauthv1.CreateApprovalResponse
		var final pushauthv1.Request
		if len(docs) != 2 || protojson.Unmarshal(docs[0], &created) != nil || protojson.Unmarshal(docs[1], &final) != nil ||
			final.GetId() != created.GetRequestId() || final.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED ||
			len(final.GetSignedDecision().GetSignature()) == 0 {
			t.Errorf("rp login --json:\n%s", lr.stdout)
		}
		wr := watch.want(0, nil, nil)
		docs = jsonDocs(t, wr.stdout)
		var shown pushauthv1.DeviceRequest
		var answered pushauthv1.Request
		if len(docs) != 2 || protojson.Unmarshal(docs[0], &shown) != nil || protojson.Unmarshal(docs[1], &answered) != nil ||
			shown.GetId() != created.GetRequestId() || answered.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
			t.Errorf("device watch --json:\n%s", wr.stdout)
		}

		// A request left pending: the phone lists it, the login server
		// reads it and cancels it.
		r = mustRun(t, ts, w.rpEnv, "rp", "login", "--user", user, "--no-wait", "--location", "Utrecht, NL")
		id := regexp.MustCompile(`Request (req_\S+) is pending`).FindStringSubmatch(r.stdout)
		if id == nil {
			t.Fatalf("rp login --no-wait:\n%s", r.stdout)
		}
		r = mustRun(t, ts, nil, "device", "requests", "--state", w.state)
		rows = tableRows(t, r.stdout, "ID  ")
		if len(rows) != 1 || rows[0][0] != id[1] || rows[0][1] != "login" || rows[0][2] != "Mijn Portal" || rows[0][3] != label || rows[0][6] != "Utrecht, NL" {
			t.Errorf("device requests:\n%s", r.stdout)
		}
		var pending pushauthv1.ListPendingRequestsResponse
		r = mustRun(t, ts, nil, "device", "requests", "--state", w.state, "--json")
		if err := protojson.Unmarshal([]byte(r.stdout), &pending); err != nil || len(pending.GetRequests()) != 1 || pending.GetRequests()[0].GetContextSha256() == "" {
			t.Errorf("device requests --json: %v\n%s", err, r.stdout)
		}
		r = mustRun(t, ts, w.rpEnv, "rp", "request", id[1])
		if rows = tableRows(t, r.stdout, "ID  "); len(rows) != 1 || rows[0][0] != id[1] || rows[0][1] != "login" || rows[0][2] != user || rows[0][3] != "pending" {
			t.Errorf("rp request:\n%s", r.stdout)
		}
		r = mustRun(t, ts, w.rpEnv, "rp", "cancel", id[1])
		if rows = tableRows(t, r.stdout, "ID  "); len(rows) != 1 || rows[0][3] != "cancelled" {
			t.Errorf("rp cancel:\n%s", r.stdout)
		}
		r = run1(t, ts, w.rpEnv, "rp", "cancel", id[1])
		if r.code != 1 || !strings.HasPrefix(r.stderr, "pushauth: FailedPrecondition: the request is already CANCELLED") {
			t.Errorf("cancel again: exit %d\nstderr: %s", r.code, r.stderr)
		}
		var got pushauthv1.GetRequestResponse
		r = mustRun(t, ts, w.rpEnv, "rp", "request", id[1], "--json")
		if err := protojson.Unmarshal([]byte(r.stdout), &got); err != nil || got.GetRequest().GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_CANCELLED {
			t.Errorf("rp request --json: %v\n%s", err, r.stdout)
		}

		// The login server removes the phone: no device is left to ask.
		r = mustRun(t, ts, w.rpEnv, "rp", "remove-device", "--user", user, w.devID)
		if !strings.Contains(r.stdout, "Removed device "+w.devID+" from "+user) {
			t.Errorf("rp remove-device:\n%s", r.stdout)
		}
		r = mustRun(t, ts, w.rpEnv, "rp", "devices", "--user", user)
		if rows = tableRows(t, r.stdout, "DEVICE ID  "); len(rows) != 0 {
			t.Errorf("rp devices after removal:\n%s", r.stdout)
		}
		r = run1(t, ts, w.rpEnv, "rp", "login", "--user", user)
		if r.code != 1 || !strings.HasPrefix(r.stderr, "pushauth: FailedPrecondition: ") || !strings.Contains(r.stderr, "no active device") ||
			!strings.Contains(r.stderr, "hint: connect a phone first") {
			t.Errorf("login without a device: exit %d\nstderr: %s", r.code, r.stderr)
		}
		r = mustRun(t, ts, nil, "device", "connections", "--state", w.state)
		if rows = tableRows(t, r.stdout, "ID  "); len(rows) != 0 {
			t.Errorf("device connections after removal:\n%s", r.stdout)
		}
	})
}

// TestJourneyInteractive answers on the phone by typing: a pairing denied
// by flag and one confirmed with "y", a request cancelled while asked about,
// a report of fraud after a wrong key, a code typed in, a notice, Ctrl-C.
func TestJourneyInteractive(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newRPWorld(t, url)
		ts := w.ts
		const user = "jan@example.nl"

		// --deny: nothing is connected, rp pair exits 1.
		pair, claim := w.pair(t, "--deny", user, user)
		claim.want(1, []string{"denied: the phone declined connecting " + user}, []string{"pushauth: not connected: the pairing request is denied"})
		pair.want(0, []string{"Denied: account " + user + " at Mijn Portal is not connected."}, []string{"[y/N] n (--deny)"})

		// Typed "y".
		pair, claim = w.pair(t, "", user, user)
		pair.waitErr(`Connect account jan@example\.nl to Mijn Portal\? \[y/N\] $`, 1)
		pair.write("y\n")
		claim.want(0, []string{"connected: "}, nil)
		pair.want(0, []string{"Connected: account " + user}, nil)

		watch := start(t, ts, nil, "device", "watch", "--state", w.state)
		watch.waitErr(`Watching for requests`, 1)
		const prompt = `Approve, deny or report fraud\? \[a/d/r\] `

		// A request cancelled while the phone asks about it.
		r := mustRun(t, ts, w.rpEnv, "rp", "login", "--user", user, "--no-wait")
		id := regexp.MustCompile(`Request (req_\S+) is pending`).FindStringSubmatch(r.stdout)[1]
		watch.waitErr(prompt, 1)
		mustRun(t, ts, w.rpEnv, "rp", "cancel", id)
		watch.waitOut(`Request `+id+` was cancelled by Mijn Portal before you answered \(the login was abandoned, or a newer one replaced it\)\.\n`, 1)

		// A wrong key, then "r".
		login := start(t, ts, w.rpEnv, "rp", "login", "--user", user, "--app", "Mijn Portal")
		watch.waitErr(prompt, 2)
		watch.write("x\n")
		watch.waitErr(`Answer a \(approve\), d \(deny\) or r \(report fraud`, 1)
		watch.waitErr(prompt, 3)
		watch.write("r\n")
		login.want(1, []string{"denied: the user reported fraud"}, nil)
		watch.waitOut(`Reported as fraud`, 1)
		// The server closes the request on every device it asked; on this
		// one, that is the answer just given.
		fraudID := watch.waitOut(`Login request (req_\S+) from`, 2)[1]
		watch.waitOut(`Request `+fraudID+` is closed: answered on this device, denied \(fraud report\)\.\n`, 1)
		ts.Clock.Advance(10 * time.Second)

		// Number matching with a 6-digit code, typed after "a".
		mustRealAdmin(t, ts, "rp", "set-policy", "portal", "--number-matching", "code")
		login = start(t, ts, w.rpEnv, "rp", "login", "--user", user)
		code := login.waitOut(`Show this number on the login page: ([0-9]{6})\n`, 1)[1]
		watch.waitErr(prompt, 4)
		watch.write("a\n")
		watch.waitErr(`Type the number shown on the login page: $`, 1)
		watch.write(code + "\n")
		login.want(0, []string{"signature verified", "approved: " + user}, nil)
		watch.waitOut(`Approved: the login of `, 1)

		// A second phone connects to the account: the first is told.
		second := servertest.NewPhone(t, true)
		ts.Clock.Advance(time.Minute)
		ts.Register(t, second, "+31612345679")
		if r := ts.Pair(t, second, w.key, user, user); r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
			t.Fatalf("second phone: %v", r)
		}
		watch.waitOut(`Notice: A new phone was connected to your account jan@example\.nl\.`, 1)
		// A login the second phone approves while this one asks about it.
		mustRealAdmin(t, ts, "rp", "set-policy", "portal", "--number-matching", "none")
		r = mustRun(t, ts, w.rpEnv, "rp", "login", "--user", user, "--no-wait")
		id = regexp.MustCompile(`Request (req_\S+) is pending`).FindStringSubmatch(r.stdout)[1]
		watch.waitErr(prompt, 5)
		if _, err := ts.Decide(t, second, ts.Pending(t, second), pushauthv1.Decision_DECISION_APPROVE, ""); err != nil {
			t.Fatal(err)
		}
		watch.waitOut(`Request `+id+` was approved on another device before you answered\.\n`, 1)
		// The pairing of the second phone was never this phone's request.
		if strings.Contains(watch.stdoutNow(), "Pairing request") {
			t.Errorf("the watch showed another phone's pairing:\n%s", watch.stdoutNow())
		}

		// Ctrl-C ends the watch without error.
		watch.cancel()
		watch.want(0, nil, []string{"Stopped watching."})
	})
}

// jsonDocs splits output into its JSON objects.
func jsonDocs(t *testing.T, out string) []json.RawMessage {
	t.Helper()
	var docs []json.RawMessage
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var m json.RawMessage
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("not JSON objects: %v\n%s", err, out)
		}
		docs = append(docs, m)
	}
	return docs
}

// stdoutNow is what the command printed so far.
func (p *proc) stdoutNow() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// TestAnswerRefusesContextMismatch checks that the phone does not sign when
// the server's context hash is not the hash of what it shows.
func TestAnswerRefusesContextMismatch(t *testing.T) {
	dr := &pushauthv1.DeviceRequest{
		Id: "req_1", Kind: pushauthv1.RequestKind_REQUEST_KIND_LOGIN, AccountLabel: "jan",
		Context: &pushauthv1.RequestContext{AppName: "Mijn Portal", Location: "Utrecht, NL"},
	}
	dr.ContextSha256 = phone.Shown(dr)
	shown := proto2(dr)
	shown.Context.Location = "Amsterdam, NL" // the server signed for another place
	e := &env{now: time.Now}
	key, err := newDeviceKey(platformAndroid)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := encodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	d := &deviceCall{st: &deviceState{PublicKeyFormat: string(key.Format), PrivateKey: enc, DeviceID: "dev_1"}}
	_, err = d.answer(t.Context(), e, shown, pushauthv1.Decision_DECISION_APPROVE, "")
	if err == nil || !strings.Contains(err.Error(), "refusing to sign request req_1") {
		t.Errorf("answer: %v", err)
	}
}

// proto2 copies a DeviceRequest.
func proto2(dr *pushauthv1.DeviceRequest) *pushauthv1.DeviceRequest {
	b, err := protojson.Marshal(dr)
	if err != nil {
		panic(err)
	}
	out := &pushauthv1.DeviceRequest{}
	if err := protojson.Unmarshal(b, out); err != nil {
		panic(err)
	}
	return out
}

// TestRPAndDeviceCommandErrors checks command lines refused before any call.
func TestRPAndDeviceCommandErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := newDeviceKey(platformAndroid)
	if err != nil {
		t.Fatal(err)
	}
	format := string(key.Format)
	enc, err := encodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	registered := filepath.Join(dir, "registered.json")
	if err := saveState(registered, &deviceState{Addr: "127.0.0.1:1", Platform: platformAndroid, PublicKeyFormat: format, PrivateKey: enc,
		PhoneNumber: "+31612345678", DeviceID: "dev_1", DeviceCredential: "pdc_x.y"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{[]string{"rp", "whoami"}, nil, 1, "no API key: pass --api-key-file FILE"},
		{[]string{"rp", "whoami", "--api-key", "k", "--api-key-file", empty}, nil, 2, "use either --api-key or --api-key-file"},
		{[]string{"rp", "whoami", "--api-key-file", empty}, nil, 1, "the API key from " + empty + " is empty"},
		{[]string{"rp", "whoami"}, map[string]string{envAPIKeyFile: filepath.Join(dir, "none")}, 1, "cannot read the API key"},
		{[]string{"rp", "whoami", "--api-key", "pak_x.y", "--addr", "192.0.2.1:8470"}, nil, 1,
			"refusing to send the API key unencrypted to 192.0.2.1:8470"},
		{[]string{"rp", "login"}, nil, 2, "--user is required"},
		{[]string{"rp", "pair", "--user", "u"}, nil, 2, "--phrase is required"},
		{[]string{"rp", "pair", "--phrase", "a b"}, nil, 2, "--user is required"},
		{[]string{"rp", "devices"}, nil, 2, "--user is required"},
		{[]string{"rp", "remove-device", "--user", "u"}, nil, 2, "missing argument DEVICE_ID"},
		{[]string{"rp", "request"}, nil, 2, "missing argument REQUEST_ID"},
		{[]string{"rp", "cancel", "a", "b"}, nil, 2, `unexpected argument "b"`},
		{[]string{"device", "pair", "--yes", "--deny", "--state", registered}, nil, 2, "use either --yes or --deny"},
		{[]string{"device", "watch", "--approve", "--deny", "--state", registered}, nil, 2, "use only one of --approve, --deny and --report-fraud"},
		{[]string{"device", "watch", "--number", "4x", "--state", registered}, nil, 2, "--number must be the 1 to 6 digits"},
		{[]string{"device", "disconnect", "--state", registered}, nil, 2, "missing argument CONNECTION_ID"},
		{[]string{"device", "requests", "--state", filepath.Join(dir, "none.json")}, nil, 1, "no device state in"},
		{[]string{"device", "watch", "--state", registered, "--addr", "192.0.2.1:8470"}, nil, 1,
			"refusing to send the device credential unencrypted to 192.0.2.1:8470"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			r := cli(t, tt.env, nil, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
				t.Errorf("exit %d, want %d\nstderr: %s\nwant: %s", r.code, tt.code, r.stderr, tt.want)
			}
			if strings.Contains(r.stderr, "pak_x.y") || strings.Contains(r.stderr, "pdc_") {
				t.Errorf("stderr shows a secret: %s", r.stderr)
			}
		})
	}
}

func TestRPHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"help"}, []string{"rp login", "rp pair", "device pair", "device watch", "PUSHAUTH_API_KEY", "pushauth rp <command>"}},
		{[]string{"help", "rp"}, []string{"Usage: pushauth rp <command>", "whoami", "remove-device", "cancel REQUEST_ID"}},
		{[]string{"rp", "login", "-h"}, []string{"Usage: pushauth rp login --user USER", "--api-key-file file", "--no-wait", "--location location", "signature", "--addr host:port"}},
		{[]string{"help", "device", "watch"}, []string{"--approve", "--report-fraud", "--number number", "--once", "[a/d/r]"}},
		{[]string{"help", "device", "pair"}, []string{"--yes", "--deny", "--timeout", "[y/N]"}},
	} {
		r := cli(t, nil, nil, tt.args...)
		for _, s := range tt.want {
			if r.code != 0 || !strings.Contains(r.stdout, s) {
				t.Errorf("%q: exit %d, stdout lacks %q:\n%s", tt.args, r.code, s, r.stdout)
			}
		}
	}
}
