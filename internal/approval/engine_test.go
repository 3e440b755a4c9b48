package approval_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/pairing"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

// These tests state the request engine's rules at the engine itself, on
// both databases, with a clock the test moves: every transition of the
// state machine and its reason, the back-off, the lock, the fraud mute and
// expiry at its boundary. docs/decisions.md says the same in prose.

var epoch = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

const ttl = 2 * time.Minute

// harness is an engine on a migrated database and an in-process NATS.
type harness struct {
	t     *testing.T
	ctx   context.Context
	st    store.Store
	clock *clock
	e     *approval.Engine
	conns *pairing.Connections
	bus   *events.Bus
	n     int
}

// phone is a registered device with its key.
type phone struct {
	dev store.Device
	key *ecdsa.PrivateKey
}

func newHarness(t *testing.T, url string, cfg approval.Config) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	st := storetest.OpenMigrated(t, url)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus, err := events.Start(ctx, events.Config{StoreDir: t.TempDir(), ServerName: "approvaltest"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	master := make([]byte, keyring.MasterSize)
	_, _ = rand.Read(master)
	keys, err := keyring.New(master)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: epoch}
	phrases := pairing.New(st, keys, c.Now, 10*time.Minute, pairing.DefaultLimits(), nil)
	e := approval.New(cfg, st, keys, phrases, bus, nil, c.Now, log)
	return &harness{t: t, ctx: ctx, st: st, clock: c, bus: bus, e: e,
		conns: pairing.NewConnections(st, e, bus, c.Now, log)}
}

// config is the default engine with room for many logins a minute, so
// only the rule under test refuses.
func config() approval.Config {
	cfg := approval.DefaultConfig()
	cfg.ApprovalsPerMinute, cfg.ApprovalsPerHour = 1000, 100000
	return cfg
}

func (h *harness) relyingParty(p store.Policy) store.RelyingParty {
	h.t.Helper()
	h.n++
	p.ApprovalTTL = ttl
	if p.NumberMatching == "" {
		p.NumberMatching = store.NumberMatchingNone
	}
	rp := store.RelyingParty{ID: fmt.Sprintf("rp_%d", h.n), Name: fmt.Sprintf("portal-%d", h.n), DisplayName: "Mijn Portal", Policy: p, CreatedAt: h.clock.Now()}
	if err := h.st.CreateRelyingParty(h.ctx, rp); err != nil {
		h.t.Fatal(err)
	}
	return rp
}

// phone registers a device and connects it to user at rp.
func (h *harness) phone(rp store.RelyingParty, user string) phone {
	h.t.Helper()
	h.n++
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		h.t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		h.t.Fatal(err)
	}
	now := h.clock.Now()
	d := store.Device{ID: fmt.Sprintf("dev_%d", h.n), CredentialPrefix: fmt.Sprintf("pdc_%d", h.n), PhoneNumber: "+31612345678",
		PublicKey: spki, Platform: "ANDROID", CreatedAt: now}
	if err := h.st.CreateDevice(h.ctx, d); err != nil {
		h.t.Fatal(err)
	}
	c := store.Connection{ID: fmt.Sprintf("con_%d", h.n), RelyingPartyID: rp.ID, UserRef: user, DeviceID: d.ID, AccountLabel: user,
		Status: store.ConnectionPending, CreatedAt: now}
	if err := h.st.CreateConnection(h.ctx, c); err != nil {
		h.t.Fatal(err)
	}
	if err := h.st.ActivateConnection(h.ctx, c.ID, now); err != nil {
		h.t.Fatal(err)
	}
	return phone{dev: d, key: key}
}

func (h *harness) login(rp store.RelyingParty, user string) (approval.Created, error) {
	return h.e.CreateApproval(h.ctx, "apikey:test", rp, user, store.RequestContext{AppName: "Mijn Portal", IPAddress: "192.0.2.7"})
}

func (h *harness) mustLogin(rp store.RelyingParty, user string) approval.Created {
	h.t.Helper()
	c, err := h.login(rp, user)
	if err != nil {
		h.t.Fatalf("CreateApproval: %v", err)
	}
	return c
}

// respond signs and sends an answer as the phone would.
func (h *harness) respond(p phone, r store.Request, decision, answer string, auto bool, rule string) (store.Request, error) {
	h.t.Helper()
	now := h.clock.Now()
	payload := approval.FieldsFor(r, p.dev.ID, decision, answer, auto, rule, now).Payload()
	sum := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, p.key, sum[:])
	if err != nil {
		h.t.Fatal(err)
	}
	return h.e.Respond(h.ctx, p.dev, approval.Response{RequestID: r.ID, Decision: decision, NumberAnswer: answer,
		AutoApproved: auto, LocationRuleID: rule, SignedAt: now, Signature: sig})
}

func (h *harness) request(id string) store.Request {
	h.t.Helper()
	r, err := h.st.GetRequest(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) state(rp store.RelyingParty, user string) approval.UserState {
	h.t.Helper()
	s, err := h.e.UserState(h.ctx, rp.ID, user)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func wantFault(t *testing.T, err error, kind fault.Kind, contains string) *fault.Error {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok || fe.Kind != kind || !strings.Contains(fe.Message, contains) {
		t.Fatalf("got %v, want %v containing %q", err, kind, contains)
	}
	return fe
}

// wrong returns a number of the same length that is not n.
func wrong(n string) string {
	b := []byte(n)
	b[len(b)-1] = '0' + (b[len(b)-1]-'0'+1)%10
	return string(b)
}

// TestTransitions: every way a login leaves PENDING, with its reason, and
// what it does to the user's back-off and mute.
func TestTransitions(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, url string) {
		h := newHarness(t, url, config())
		type setup struct {
			rp      store.RelyingParty
			p       phone
			user    string
			created approval.Created
		}
		for _, tt := range []struct {
			name     string
			policy   store.Policy
			act      func(h *harness, s setup) error
			status   string
			reason   string
			failures int  // consecutive failures after
			backoff  bool // backed off for BackoffBase from the decision
			muted    bool // muted for FraudMute from the decision
		}{
			{name: "approve by tap",
				act: func(h *harness, s setup) error {
					_, err := h.respond(s.p, s.created.Request, approval.DecisionApprove, "", false, "")
					return err
				}, status: store.StatusApproved, reason: store.ReasonUser},
			{name: "approve by location rule", policy: store.Policy{AllowLocationAutomation: true},
				act: func(h *harness, s setup) error {
					_, err := h.respond(s.p, s.created.Request, approval.DecisionApprove, "", true, "home")
					return err
				}, status: store.StatusApproved, reason: store.ReasonLocationRule},
			{name: "approve with the right 2-digit number", policy: store.Policy{NumberMatching: store.NumberMatchingNumber},
				act: func(h *harness, s setup) error {
					_, err := h.respond(s.p, s.created.Request, approval.DecisionApprove, s.created.Number, false, "")
					return err
				}, status: store.StatusApproved, reason: store.ReasonUser},
			{name: "approve with the right 6-digit code", policy: store.Policy{NumberMatching: store.NumberMatchingCode},
				act: func(h *harness, s setup) error {
					_, err := h.respond(s.p, s.created.Request, approval.DecisionApprove, s.created.Number, false, "")
					return err
				}, status: store.StatusApproved, reason: store.ReasonUser},
			{name: "deny",
				act: func(h *harness, s setup) error {
					_, err := h.respond(s.p, s.created.Request, approval.DecisionDeny, "", false, "")
					return err
				}, status: store.StatusDenied, reason: store.ReasonUser, failures: 1, backoff: true},
			{name: "wrong 2-digit number", policy: store.Policy{NumberMatching: store.NumberMatchingNumber},
				act: func(h *harness, s setup) error {
					_, err := h.respond(s.p, s.created.Request, approval.DecisionApprove, wrong(s.created.Number), false, "")
					return err
				}, status: store.StatusDenied, reason: store.ReasonNumberMismatch, failures: 1, backoff: true},
			{name: "wrong 6-digit code", policy: store.Policy{NumberMatching: store.NumberMatchingCode},
				act: func(h *harness, s setup) error {
					_, err := h.respond(s.p, s.created.Request, approval.DecisionApprove, wrong(s.created.Number), false, "")
					return err
				}, status: store.StatusDenied, reason: store.ReasonNumberMismatch, failures: 1, backoff: true},
			{name: "report fraud",
				act: func(h *harness, s setup) error {
					_, err := h.respond(s.p, s.created.Request, approval.DecisionReportFraud, "", false, "")
					return err
				}, status: store.StatusDenied, reason: store.ReasonFraudReport, failures: 1, backoff: true, muted: true},
			{name: "nobody answers: expired by the sweeper",
				act: func(h *harness, s setup) error {
					h.clock.Set(s.created.Request.ExpiresAt)
					_, err := h.e.Sweep(h.ctx)
					return err
				}, status: store.StatusExpired, reason: store.ReasonTimeout, failures: 1, backoff: true},
			{name: "cancelled by the relying party",
				act: func(h *harness, s setup) error {
					_, err := h.e.Cancel(h.ctx, "apikey:test", s.rp.ID, s.created.Request.ID)
					return err
				}, status: store.StatusCancelled, reason: store.ReasonCancelled},
			{name: "superseded by a newer login",
				act: func(h *harness, s setup) error {
					_, err := h.login(s.rp, s.user)
					return err
				}, status: store.StatusCancelled, reason: store.ReasonSuperseded, failures: 1, backoff: true},
			{name: "the only phone is disconnected",
				act: func(h *harness, s setup) error {
					return h.conns.RemoveUserDevice(h.ctx, "apikey:test", s.rp.ID, s.user, s.p.dev.ID)
				}, status: store.StatusCancelled, reason: store.ReasonDeviceRemoved},
			{name: "the only phone is deregistered",
				act: func(h *harness, s setup) error {
					if err := h.st.RevokeDevice(h.ctx, s.p.dev.ID, h.clock.Now()); err != nil {
						return err
					}
					return h.e.DeviceRevoked(h.ctx, "device:"+s.p.dev.ID, s.p.dev.ID)
				}, status: store.StatusCancelled, reason: store.ReasonDeviceRemoved},
		} {
			t.Run(tt.name, func(t *testing.T) {
				h.t = t
				rp := h.relyingParty(tt.policy)
				s := setup{rp: rp, user: "jan", p: h.phone(rp, "jan")}
				s.created = h.mustLogin(rp, s.user)
				if r := h.request(s.created.Request.ID); r.Status != store.StatusPending {
					t.Fatalf("new request is %s", r.Status)
				}
				if err := tt.act(h, s); err != nil {
					t.Fatalf("act: %v", err)
				}
				r := h.request(s.created.Request.ID)
				if r.Status != tt.status || r.Reason != tt.reason {
					t.Fatalf("request ended %s/%s, want %s/%s", r.Status, r.Reason, tt.status, tt.reason)
				}
				if !r.DecidedAt.Equal(h.clock.Now()) {
					t.Errorf("decided at %v, want now (%v)", r.DecidedAt, h.clock.Now())
				}
				us := h.state(rp, s.user)
				if us.ConsecutiveFailures != tt.failures {
					t.Errorf("consecutive failures %d, want %d", us.ConsecutiveFailures, tt.failures)
				}
				var wantBackoff, wantMute time.Time
				if tt.backoff {
					wantBackoff = r.DecidedAt.Add(config().BackoffBase)
				}
				if tt.muted {
					wantMute = r.DecidedAt.Add(config().FraudMute)
				}
				if !us.BackoffUntil.Equal(wantBackoff) || !us.MutedUntil.Equal(wantMute) || us.Locked {
					t.Errorf("state %+v, want back-off until %v, mute until %v", us, wantBackoff, wantMute)
				}
				// A decided request takes no other answer.
				_, err := h.respond(s.p, r, approval.DecisionApprove, s.created.Number, false, "")
				if r.DecidedBy == s.p.dev.ID {
					return // (the same device repeating itself is the next test's)
				}
				wantFault(t, err, fault.FailedPrecondition, "the request is already "+tt.status)
			})
		}
	})
}

// TestAnswers: what the engine refuses, leaving the request pending, and
// how it answers a repeat.
func TestAnswers(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, url string) {
		h := newHarness(t, url, config())
		for _, tt := range []struct {
			name   string
			policy store.Policy
			answer func(h *harness, p phone, c approval.Created) error
			kind   fault.Kind
			msg    string
		}{
			{"location rule where the policy does not allow it", store.Policy{},
				func(h *harness, p phone, c approval.Created) error {
					_, err := h.respond(p, c.Request, approval.DecisionApprove, "", true, "home")
					return err
				}, fault.PermissionDenied, "does not allow location rules"},
			{"location rule with 2-digit number matching", store.Policy{AllowLocationAutomation: true, NumberMatching: store.NumberMatchingNumber},
				func(h *harness, p phone, c approval.Created) error {
					_, err := h.respond(p, c.Request, approval.DecisionApprove, c.Number, true, "home")
					return err
				}, fault.PermissionDenied, "asks for the number shown on the login page"},
			{"location rule with 6-digit code matching", store.Policy{AllowLocationAutomation: true, NumberMatching: store.NumberMatchingCode},
				func(h *harness, p phone, c approval.Created) error {
					_, err := h.respond(p, c.Request, approval.DecisionApprove, "", true, "home")
					return err
				}, fault.PermissionDenied, "asks for the number shown on the login page"},
			{"automatic denial", store.Policy{AllowLocationAutomation: true},
				func(h *harness, p phone, c approval.Created) error {
					_, err := h.respond(p, c.Request, approval.DecisionDeny, "", true, "home")
					return err
				}, fault.InvalidArgument, "only an approval can be automatic"},
			{"rule id without auto_approved", store.Policy{AllowLocationAutomation: true},
				func(h *harness, p phone, c approval.Created) error {
					_, err := h.respond(p, c.Request, approval.DecisionApprove, "", false, "home")
					return err
				}, fault.InvalidArgument, "must be empty unless auto_approved"},
			{"signed more than 5 minutes ago", store.Policy{},
				func(h *harness, p phone, c approval.Created) error {
					signed := h.clock.Now().Add(-5*time.Minute - time.Second)
					payload := approval.FieldsFor(c.Request, p.dev.ID, approval.DecisionApprove, "", false, "", signed).Payload()
					sum := sha256.Sum256(payload)
					sig, _ := ecdsa.SignASN1(rand.Reader, p.key, sum[:])
					_, err := h.e.Respond(h.ctx, p.dev, approval.Response{RequestID: c.Request.ID, Decision: approval.DecisionApprove,
						SignedAt: signed, Signature: sig})
					return err
				}, fault.PermissionDenied, "more than 5 minutes from the server's clock"},
			{"signature over another decision", store.Policy{},
				func(h *harness, p phone, c approval.Created) error {
					payload := approval.FieldsFor(c.Request, p.dev.ID, approval.DecisionDeny, "", false, "", h.clock.Now()).Payload()
					sum := sha256.Sum256(payload)
					sig, _ := ecdsa.SignASN1(rand.Reader, p.key, sum[:])
					_, err := h.e.Respond(h.ctx, p.dev, approval.Response{RequestID: c.Request.ID, Decision: approval.DecisionApprove,
						SignedAt: h.clock.Now(), Signature: sig})
					return err
				}, fault.PermissionDenied, "signature does not verify"},
			{"a phone the request was not sent to", store.Policy{},
				func(h *harness, _ phone, c approval.Created) error {
					other := h.phone(h.relyingParty(store.Policy{}), "piet")
					_, err := h.respond(other, c.Request, approval.DecisionApprove, "", false, "")
					return err
				}, fault.NotFound, "request not found"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				h.t = t
				rp := h.relyingParty(tt.policy)
				p := h.phone(rp, "jan")
				c := h.mustLogin(rp, "jan")
				wantFault(t, tt.answer(h, p, c), tt.kind, tt.msg)
				if r := h.request(c.Request.ID); r.Status != store.StatusPending {
					t.Fatalf("a refused answer ended the request: %s/%s", r.Status, r.Reason)
				}
				if us := h.state(rp, "jan"); us.ConsecutiveFailures != 0 || !us.BackoffUntil.IsZero() {
					t.Fatalf("a refused answer counted: %+v", us)
				}
			})
		}

		t.Run("the same answer again returns the stored result", func(t *testing.T) {
			h.t = t
			rp := h.relyingParty(store.Policy{})
			p := h.phone(rp, "jan")
			c := h.mustLogin(rp, "jan")
			first, err := h.respond(p, c.Request, approval.DecisionDeny, "", false, "")
			if err != nil {
				t.Fatal(err)
			}
			h.clock.Advance(3 * time.Second) // a retry signs again, later
			again, err := h.respond(p, c.Request, approval.DecisionDeny, "", false, "")
			if err != nil || again.Status != store.StatusDenied || !again.DecidedAt.Equal(first.DecidedAt) {
				t.Fatalf("repeat: %+v %v", again, err)
			}
			_, err = h.respond(p, c.Request, approval.DecisionApprove, "", false, "")
			wantFault(t, err, fault.FailedPrecondition, "the request is already DENIED")
			if us := h.state(rp, "jan"); us.ConsecutiveFailures != 1 {
				t.Fatalf("the repeat counted again: %+v", us)
			}
		})
	})
}

// TestExpiryBoundary: a request is answerable until the instant before
// ExpiresAt; at ExpiresAt it is expired, by an answer, a waiter or the
// sweeper alike.
func TestExpiryBoundary(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, url string) {
		h := newHarness(t, url, config())
		rp := h.relyingParty(store.Policy{})
		p := h.phone(rp, "jan")

		c := h.mustLogin(rp, "jan")
		if !c.Request.ExpiresAt.Equal(c.Request.CreatedAt.Add(ttl)) {
			t.Fatalf("expires at %v, created %v", c.Request.ExpiresAt, c.Request.CreatedAt)
		}
		h.clock.Set(c.Request.ExpiresAt.Add(-time.Microsecond))
		if n, err := h.e.Sweep(h.ctx); err != nil || n != 0 {
			t.Fatalf("sweep before expiry: %d %v", n, err)
		}
		if r, err := h.respond(p, c.Request, approval.DecisionApprove, "", false, ""); err != nil || r.Status != store.StatusApproved {
			t.Fatalf("answer 1µs before expiry: %+v %v", r, err)
		}

		c = h.mustLogin(rp, "jan")
		h.clock.Set(c.Request.ExpiresAt)
		_, err := h.respond(p, c.Request, approval.DecisionApprove, "", false, "")
		wantFault(t, err, fault.FailedPrecondition, "expired")
		if r := h.request(c.Request.ID); r.Status != store.StatusPending {
			t.Fatalf("the refused answer ended the request: %s", r.Status)
		}
		if n, err := h.e.Sweep(h.ctx); err != nil || n != 1 {
			t.Fatalf("sweep at expiry: %d %v", n, err)
		}
		r := h.request(c.Request.ID)
		if r.Status != store.StatusExpired || r.Reason != store.ReasonTimeout || !r.DecidedAt.Equal(c.Request.ExpiresAt) {
			t.Fatalf("after the sweep: %s/%s at %v", r.Status, r.Reason, r.DecidedAt)
		}
		if us := h.state(rp, "jan"); us.ConsecutiveFailures != 1 || !us.BackoffUntil.Equal(r.DecidedAt.Add(10*time.Second)) {
			t.Fatalf("expiry did not count: %+v", us)
		}
		if n, err := h.e.Sweep(h.ctx); err != nil || n != 0 {
			t.Fatalf("second sweep: %d %v", n, err)
		}
	})
}

// TestBackoffAndLock: each failure in a row doubles the wait from
// BackoffBase up to BackoffMax; from MaxConsecutiveFailures on the account
// is locked for LockDuration; an approval ends it all.
func TestBackoffAndLock(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, url string) {
		cfg := config()
		cfg.MaxConsecutiveFailures = 12
		h := newHarness(t, url, cfg)
		rp := h.relyingParty(store.Policy{})
		p := h.phone(rp, "jan")
		s := time.Second
		for i, want := range []time.Duration{10 * s, 20 * s, 40 * s, 80 * s, 160 * s, 320 * s, 640 * s, 1280 * s, 2560 * s, time.Hour, time.Hour, 24 * time.Hour} {
			n := i + 1
			c := h.mustLogin(rp, "jan")
			if _, err := h.respond(p, c.Request, approval.DecisionDeny, "", false, ""); err != nil {
				t.Fatal(err)
			}
			us := h.state(rp, "jan")
			if us.ConsecutiveFailures != n || !us.BackoffUntil.Equal(h.clock.Now().Add(want)) || us.Locked != (n == 12) {
				t.Fatalf("after %d failures: %+v, want back-off %v", n, us, want)
			}
			h.clock.Advance(want - time.Microsecond)
			_, err := h.login(rp, "jan")
			fe := wantFault(t, err, fault.ResourceExhausted, "try again in ")
			if fe.RetryAfter != time.Microsecond {
				t.Fatalf("after %d failures: retry after %v, want 1µs", n, fe.RetryAfter)
			}
			if n == 12 && !strings.Contains(fe.Message, "had 12 failed requests in a row and is locked") {
				t.Fatalf("lock message %q", fe.Message)
			}
			h.clock.Advance(time.Microsecond)
			if us := h.state(rp, "jan"); !us.BackoffUntil.IsZero() || us.Locked || us.ConsecutiveFailures != n {
				t.Fatalf("after the wait: %+v", us)
			}
		}
		// An approval resets the count: the next failure waits BackoffBase.
		c := h.mustLogin(rp, "jan")
		if _, err := h.respond(p, c.Request, approval.DecisionApprove, "", false, ""); err != nil {
			t.Fatal(err)
		}
		if us := h.state(rp, "jan"); us.ConsecutiveFailures != 0 || !us.BackoffUntil.IsZero() {
			t.Fatalf("after an approval: %+v", us)
		}
		c = h.mustLogin(rp, "jan")
		if _, err := h.respond(p, c.Request, approval.DecisionDeny, "", false, ""); err != nil {
			t.Fatal(err)
		}
		if us := h.state(rp, "jan"); us.ConsecutiveFailures != 1 || !us.BackoffUntil.Equal(h.clock.Now().Add(10*time.Second)) {
			t.Fatalf("first failure after the reset: %+v", us)
		}
		// Another user of the relying party, and the same user elsewhere,
		// are not affected.
		other := h.relyingParty(store.Policy{})
		h.phone(other, "jan")
		h.phone(rp, "piet")
		h.mustLogin(other, "jan")
		h.mustLogin(rp, "piet")
	})
}

// TestFraudMute: a fraud report mutes pushes to the user for FraudMute: new
// requests are still made, but not pushed, and the relying party's event
// goes out; an approval does not end the mute.
func TestFraudMute(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, url string) {
		h := newHarness(t, url, config())
		rp := h.relyingParty(store.Policy{})
		p := h.phone(rp, "jan")
		news, stop, err := h.bus.Subscribe("pushauth.events."+rp.ID, 10)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()

		c := h.mustLogin(rp, "jan")
		if _, err := h.respond(p, c.Request, approval.DecisionReportFraud, "", false, ""); err != nil {
			t.Fatal(err)
		}
		reported := h.clock.Now()
		select {
		case b := <-news:
			var ev events.RelyingPartyEvent
			if err := json.Unmarshal(b, &ev); err != nil || ev.Type != "fraud_report" || ev.UserRef != "jan" || ev.RequestID != c.Request.ID || ev.DeviceID != p.dev.ID {
				t.Fatalf("relying party event %s: %v", b, err)
			}
		case <-h.ctx.Done():
			t.Fatal("no fraud_report event for the relying party")
		}
		delivery := func(id string) string {
			t.Helper()
			targets, err := h.st.ListRequestTargets(h.ctx, id)
			if err != nil || len(targets) != 1 {
				t.Fatalf("targets %v %v", targets, err)
			}
			return targets[0].Delivery
		}
		h.clock.Advance(10 * time.Second) // the back-off of the one failure
		muted := h.mustLogin(rp, "jan")
		if d := delivery(muted.Request.ID); d != store.DeliveryMuted {
			t.Fatalf("delivery while muted: %s", d)
		}
		if _, err := h.respond(p, muted.Request, approval.DecisionApprove, "", false, ""); err != nil {
			t.Fatalf("a muted request is still answerable: %v", err)
		}
		if us := h.state(rp, "jan"); !us.MutedUntil.Equal(reported.Add(time.Hour)) || us.ConsecutiveFailures != 0 {
			t.Fatalf("after an approval: %+v", us)
		}
		h.clock.Set(reported.Add(time.Hour - time.Microsecond))
		if d := delivery(h.mustLogin(rp, "jan").Request.ID); d != store.DeliveryMuted {
			t.Fatalf("delivery 1µs before the mute ends: %s", d)
		}
		h.clock.Set(reported.Add(time.Hour))
		if d := delivery(h.mustLogin(rp, "jan").Request.ID); d != store.DeliveryQueued {
			t.Fatalf("delivery after the mute: %s", d)
		}
		if us := h.state(rp, "jan"); !us.MutedUntil.IsZero() {
			t.Fatalf("mute shown after its end: %+v", us)
		}
	})
}

// TestSupersede: a user has at most MaxPendingPerUser pending logins; a new
// one ends the oldest as SUPERSEDED, which counts as a failure.
func TestSupersede(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, url string) {
		cfg := config()
		cfg.MaxPendingPerUser = 2
		h := newHarness(t, url, cfg)
		rp := h.relyingParty(store.Policy{})
		h.phone(rp, "jan")
		first := h.mustLogin(rp, "jan")
		h.clock.Advance(time.Second) // "oldest" is by creation time
		second := h.mustLogin(rp, "jan")
		if r := h.request(first.Request.ID); r.Status != store.StatusPending {
			t.Fatalf("first of two allowed: %s", r.Status)
		}
		h.clock.Advance(time.Second)
		third := h.mustLogin(rp, "jan")
		for id, want := range map[string]string{first.Request.ID: store.StatusCancelled, second.Request.ID: store.StatusPending, third.Request.ID: store.StatusPending} {
			if r := h.request(id); r.Status != want {
				t.Fatalf("%s is %s, want %s", id, r.Status, want)
			}
		}
		if r := h.request(first.Request.ID); r.Reason != store.ReasonSuperseded {
			t.Fatalf("reason %s", r.Reason)
		}
		if us := h.state(rp, "jan"); us.ConsecutiveFailures != 1 || us.BackoffUntil.IsZero() {
			t.Fatalf("supersede did not count: %+v", us)
		}
		_, err := h.login(rp, "jan")
		wantFault(t, err, fault.ResourceExhausted, "too many denied or unanswered requests for this user; try again in 10s")
	})
}

// TestRateLimit: more logins to a user than the per-minute limit are
// refused, even when each one supersedes the last.
func TestRateLimit(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, url string) {
		cfg := approval.DefaultConfig()
		cfg.BackoffBase, cfg.BackoffMax = time.Nanosecond, time.Nanosecond // only the rate limit under test
		h := newHarness(t, url, cfg)
		rp := h.relyingParty(store.Policy{ApprovalsPerMinute: 3})
		h.phone(rp, "jan")
		for range 3 {
			h.mustLogin(rp, "jan")
			h.clock.Advance(time.Second)
		}
		_, err := h.login(rp, "jan")
		fe := wantFault(t, err, fault.ResourceExhausted, "too many login requests for this user")
		if fe.RetryAfter != 57*time.Second {
			t.Fatalf("retry after %v", fe.RetryAfter)
		}
		h.clock.Advance(57 * time.Second)
		h.mustLogin(rp, "jan")
	})
}

// TestSignedAtIsWholeSeconds: signed_at is the floor of signed_time, so a
// phone that sends signed_time with a fraction signs its seconds only.
func TestSignedAtIsWholeSeconds(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, url string) {
		h := newHarness(t, url, config())
		rp := h.relyingParty(store.Policy{})
		p := h.phone(rp, "jan")
		c := h.mustLogin(rp, "jan")
		signed := h.clock.Now().Add(900 * time.Millisecond) // …:05.900
		payload := approval.FieldsFor(c.Request, p.dev.ID, approval.DecisionApprove, "", false, "", signed).Payload()
		if !strings.HasSuffix(string(payload), fmt.Sprintf("\nsigned_at=%d", epoch.Unix())) {
			t.Fatalf("payload ends %q, want the floor %d", payload[len(payload)-25:], epoch.Unix())
		}
		sum := sha256.Sum256(payload)
		sig, _ := ecdsa.SignASN1(rand.Reader, p.key, sum[:])
		r, err := h.e.Respond(h.ctx, p.dev, approval.Response{RequestID: c.Request.ID, Decision: approval.DecisionApprove, SignedAt: signed, Signature: sig})
		if err != nil || r.Status != store.StatusApproved || !strings.HasSuffix(string(r.Payload), fmt.Sprintf("signed_at=%d", epoch.Unix())) {
			t.Fatalf("answer signed at %v: %+v %v", signed, r, err)
		}
	})
}
