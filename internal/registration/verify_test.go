package registration_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/guess"
	"github.com/pushauth/pushauth/internal/guess/guesstest"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/registration"
	"github.com/pushauth/pushauth/internal/sms"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	svc      *registration.Service
	devices  *registration.Devices
	st       store.Store
	clock    *clock
	refusals []string
	mu       sync.Mutex
	checks   guesstest.Counter
}

func forEachBackend(t *testing.T, fn func(t *testing.T, url string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, storetest.NewSQLiteURL(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, storetest.NewPostgresURL(t)) })
}

func newHarness(t *testing.T, url string, limits func(*registration.Limits), wrap ...func(store.Store) store.Store) *harness {
	t.Helper()
	var st store.Store = storetest.OpenMigrated(t, url)
	for _, w := range wrap {
		st = w(st)
	}
	keys, err := keyring.New(make([]byte, keyring.MasterSize))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{st: st, clock: &clock{t: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}}
	l := registration.DefaultLimits()
	if limits != nil {
		limits(&l)
	}
	cfg := registration.Config{
		AllowedRegions:  []string{"NL", "BE"},
		VerificationTTL: 10 * time.Minute,
		LinkBaseURL:     "https://auth.example.com/",
		AppName:         "Mijn Portal",
		Limits:          l,
	}
	log := slog.New(slog.DiscardHandler)
	h.svc = registration.New(cfg, st, sms.NewOutbox(st, h.clock.Now, log), keys, h.clock.Now, log, func(r string) {
		h.mu.Lock()
		h.refusals = append(h.refusals, r)
		h.mu.Unlock()
	}, &h.checks)
	h.devices = registration.NewDevices(st, h.clock.Now)
	return h
}

var (
	codeRe = regexp.MustCompile(`\b(\d{6})\b`)
	linkRe = regexp.MustCompile(`https://auth\.example\.com/v/([A-Za-z0-9_-]+)`)
)

// lastSMS returns the code and link token of the newest outbox message to number.
func (h *harness) lastSMS(t *testing.T, number string) (code, link, body string) {
	t.Helper()
	msgs, err := h.st.ListOutboxMessages(context.Background(), number, 1)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("no SMS to %s: %v", number, err)
	}
	body = msgs[0].Body
	c, l := codeRe.FindStringSubmatch(body), linkRe.FindStringSubmatch(body)
	if c == nil || l == nil {
		t.Fatalf("SMS lacks code or link: %q", body)
	}
	return c[1], l[1], body
}

type phoneKey struct {
	priv *ecdsa.PrivateKey
	pub  []byte
}

func newKey(t *testing.T, ios bool) phoneKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var pub []byte
	if ios {
		pub, err = priv.PublicKey.Bytes()
	} else {
		pub, err = x509.MarshalPKIXPublicKey(&priv.PublicKey)
	}
	if err != nil {
		t.Fatal(err)
	}
	return phoneKey{priv: priv, pub: pub}
}

func (k phoneKey) sign(t *testing.T, verificationID string) []byte {
	t.Helper()
	h := sha256.Sum256(registration.ProofMessage(verificationID, k.pub))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, h[:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func (h *harness) params(t *testing.T, k phoneKey, verificationID string) registration.CompleteParams {
	return registration.CompleteParams{
		VerificationID: verificationID,
		PublicKey:      k.pub,
		ProofSignature: k.sign(t, verificationID),
		Platform:       registration.PlatformAndroid,
		PushToken:      "fcm-token-1",
		Name:           "Pixel van Jan",
		AppVersion:     "1.0.0",
	}
}

func wantKind(t *testing.T, err error, kind fault.Kind, contains string) *fault.Error {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok || fe.Kind != kind || !strings.Contains(fe.Error(), contains) {
		t.Fatalf("got %v, want %v containing %q", err, kind, contains)
	}
	return fe
}

const number = "+31612345678"

func TestRegisterWithCodeAndLink(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		h := newHarness(t, url, nil)
		for i, byLink := range []bool{false, true} {
			st, err := h.svc.Start(ctx, registration.StartParams{PhoneNumber: "06 12345678", DefaultRegion: "NL", Locale: "nl", ClientAddress: "192.0.2.1"})
			if err != nil {
				t.Fatal(err)
			}
			if st.MaskedNumber != "+31*******78" || !st.ExpiresAt.Equal(h.clock.Now().Add(10*time.Minute)) || !st.ResendAt.Equal(h.clock.Now().Add(30*time.Second)) {
				t.Fatalf("started: %+v", st)
			}
			code, link, body := h.lastSMS(t, number)
			if !strings.Contains(body, "Mijn Portal") {
				t.Errorf("SMS does not name the app: %q", body)
			}
			p := h.params(t, newKey(t, byLink), st.VerificationID)
			if byLink {
				p.LinkToken = link
				p.Platform = registration.PlatformIOS
			} else {
				p.Code = code
			}
			dev, cred, err := h.svc.Complete(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if dev.PhoneNumber != number || !strings.HasPrefix(cred, "pdc_") {
				t.Fatalf("device %+v cred %q", dev, cred)
			}
			got, err := h.devices.Authenticate(ctx, cred)
			if err != nil || got.ID != dev.ID {
				t.Fatalf("credential does not authenticate: %v", err)
			}
			// Replaying the used code or link registers nothing.
			if _, _, err := h.svc.Complete(ctx, p); err == nil {
				t.Fatal("replay accepted")
			} else {
				wantKind(t, err, fault.FailedPrecondition, "already used")
			}
			if i == 0 {
				h.clock.Advance(30 * time.Second)
			}
		}
		// Two phones with the same number: both registered.
		n := 0
		events, err := h.st.ListAuditEvents(ctx, store.AuditFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Action == "phone_verification.completed" {
				n++
			}
			for k, v := range e.Details {
				if strings.Contains(v, "612345678") {
					t.Errorf("audit %s detail %s holds the full number: %q", e.Action, k, v)
				}
			}
		}
		if n != 2 {
			t.Fatalf("want 2 completed registrations, got %d", n)
		}
	})
}

func TestCompleteRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		h := newHarness(t, url, nil)
		start := func() (string, string) {
			t.Helper()
			st, err := h.svc.Start(ctx, registration.StartParams{PhoneNumber: number, Locale: "en"})
			if err != nil {
				t.Fatal(err)
			}
			code, _, _ := h.lastSMS(t, number)
			return st.VerificationID, code
		}
		id, code := start()
		k := newKey(t, false)

		t.Run("bad proof signature", func(t *testing.T) {
			p := h.params(t, k, id)
			p.Code = code
			p.ProofSignature = k.sign(t, "ver_other")
			wantKind(t, func() error { _, _, err := h.svc.Complete(ctx, p); return err }(), fault.PermissionDenied, "proof_signature")
		})
		t.Run("signature by another key", func(t *testing.T) {
			p := h.params(t, k, id)
			p.Code = code
			p.ProofSignature = newKey(t, false).sign(t, id)
			wantKind(t, func() error { _, _, err := h.svc.Complete(ctx, p); return err }(), fault.PermissionDenied, "proof_signature")
		})
		t.Run("not P-256", func(t *testing.T) {
			priv, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
			der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
			p := h.params(t, k, id)
			p.Code, p.PublicKey = code, der
			fe := wantKind(t, func() error { _, _, err := h.svc.Complete(ctx, p); return err }(), fault.InvalidArgument, "P-256")
			if fe.Field != "device.public_key" {
				t.Fatalf("field %q", fe.Field)
			}
		})
		t.Run("garbage key", func(t *testing.T) {
			p := h.params(t, k, id)
			p.Code, p.PublicKey = code, []byte(strings.Repeat("x", 91))
			wantKind(t, func() error { _, _, err := h.svc.Complete(ctx, p); return err }(), fault.InvalidArgument, "public_key")
		})
		t.Run("unknown verification", func(t *testing.T) {
			p := h.params(t, k, "ver_unknown")
			p.Code = code
			wantKind(t, func() error { _, _, err := h.svc.Complete(ctx, p); return err }(), fault.NotFound, "verification")
		})
		t.Run("wrong codes then dead", func(t *testing.T) {
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			p := h.params(t, k, id)
			p.Code = wrong
			for i := 4; i >= 1; i-- {
				wantKind(t, func() error { _, _, err := h.svc.Complete(ctx, p); return err }(), fault.PermissionDenied, " left")
			}
			wantKind(t, func() error { _, _, err := h.svc.Complete(ctx, p); return err }(), fault.PermissionDenied, "last try")
			p.Code = code // the right code no longer helps
			wantKind(t, func() error { _, _, err := h.svc.Complete(ctx, p); return err }(), fault.FailedPrecondition, "too many wrong codes")
		})
		t.Run("expired", func(t *testing.T) {
			h.clock.Advance(time.Minute)
			id2, code2 := start()
			h.clock.Advance(10 * time.Minute)
			p := h.params(t, k, id2)
			p.Code = code2
			wantKind(t, func() error { _, _, err := h.svc.Complete(ctx, p); return err }(), fault.FailedPrecondition, "expired")
		})
		n, err := h.st.ListAuditEvents(ctx, store.AuditFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range n {
			if e.Action == "phone_verification.completed" {
				t.Fatal("a refused completion registered a device")
			}
		}
	})
}

func TestFreshVerificationDoesNotResetFailures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		h := newHarness(t, url, func(l *registration.Limits) {
			l.MaxAttempts = 2
			l.MaxFailuresPerNumberDay = 3
			l.ResendCooldown = 0
		})
		k := newKey(t, false)
		fail := func(id, code string) error {
			p := h.params(t, k, id)
			p.Code = "999999"
			if code == p.Code {
				p.Code = "888888"
			}
			_, _, err := h.svc.Complete(ctx, p)
			return err
		}
		st1, _ := h.svc.Start(ctx, registration.StartParams{PhoneNumber: number})
		c1, _, _ := h.lastSMS(t, number)
		wantKind(t, fail(st1.VerificationID, c1), fault.PermissionDenied, "wrong code")
		wantKind(t, fail(st1.VerificationID, c1), fault.PermissionDenied, "wrong code")
		st2, err := h.svc.Start(ctx, registration.StartParams{PhoneNumber: number})
		if err != nil {
			t.Fatal(err)
		}
		c2, _, _ := h.lastSMS(t, number)
		wantKind(t, fail(st2.VerificationID, c2), fault.PermissionDenied, "wrong code")
		// The number has used its 3 failures for today: even the right code
		// of a fresh SMS is refused, and so is a new SMS.
		p := h.params(t, k, st2.VerificationID)
		p.Code = c2
		fe := wantKind(t, func() error { _, _, err := h.svc.Complete(ctx, p); return err }(), fault.ResourceExhausted, "too many wrong codes")
		if fe.RetryAfter <= 0 {
			t.Fatal("no retry time")
		}
		_, err = h.svc.Start(ctx, registration.StartParams{PhoneNumber: number})
		wantKind(t, err, fault.ResourceExhausted, "wrong codes")
		h.clock.Advance(24 * time.Hour)
		if _, err := h.svc.Start(ctx, registration.StartParams{PhoneNumber: number}); err != nil {
			t.Fatalf("a new day: %v", err)
		}
	})
}

func TestSMSLimits(t *testing.T) {
	tests := []struct {
		name    string
		limits  func(*registration.Limits)
		req     func(i int) registration.StartParams
		allowed int
		reason  string
	}{
		{"resend cooldown", nil,
			func(int) registration.StartParams { return registration.StartParams{PhoneNumber: number} }, 1, "resend_cooldown"},
		{"per number per hour", func(l *registration.Limits) { l.ResendCooldown = 0; l.PerNumberHour = 3 },
			func(int) registration.StartParams { return registration.StartParams{PhoneNumber: number} }, 3, "number_hour"},
		{"per number per day", func(l *registration.Limits) { l.ResendCooldown = 0; l.PerNumberHour = 100; l.PerNumberDay = 4 },
			func(int) registration.StartParams { return registration.StartParams{PhoneNumber: number} }, 4, "number_day"},
		{"per client address", func(l *registration.Limits) { l.PerAddressHour = 2 },
			func(i int) registration.StartParams {
				return registration.StartParams{PhoneNumber: "+3161234" + string(rune('0'+i)) + "000", ClientAddress: "2001:db8::" + string(rune('1'+i))}
			}, 2, "address_hour"},
		{"per number prefix", func(l *registration.Limits) { l.PerPrefixHour = 3 },
			func(i int) registration.StartParams {
				return registration.StartParams{PhoneNumber: "+3161234567" + string(rune('0'+i))}
			}, 3, "prefix_hour"},
		{"global daily budget", func(l *registration.Limits) { l.GlobalDay = 2 },
			func(i int) registration.StartParams {
				return registration.StartParams{PhoneNumber: "+316" + string(rune('1'+i)) + "0000000"}
			}, 2, "global_day"},
	}
	forEachBackend(t, func(t *testing.T, url string) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := context.Background()
				fresh := storetest.NewSQLiteURL(t)
				if strings.HasPrefix(url, "postgres") {
					fresh = storetest.NewPostgresURL(t)
				}
				h := newHarness(t, fresh, tt.limits)
				for i := range tt.allowed {
					if _, err := h.svc.Start(ctx, tt.req(i)); err != nil {
						t.Fatalf("request %d: %v", i, err)
					}
				}
				_, err := h.svc.Start(ctx, tt.req(tt.allowed))
				fe := wantKind(t, err, fault.ResourceExhausted, "again in")
				if fe.RetryAfter <= 0 || fe.RetryAfter > 24*time.Hour {
					t.Fatalf("retry after %v", fe.RetryAfter)
				}
				if len(h.refusals) != 1 || h.refusals[0] != tt.reason {
					t.Fatalf("refusals %v, want [%s]", h.refusals, tt.reason)
				}
				msgs, _ := h.st.ListOutboxMessages(ctx, "", 100)
				if len(msgs) != tt.allowed {
					t.Fatalf("%d SMS sent, want %d", len(msgs), tt.allowed)
				}
				h.clock.Advance(fe.RetryAfter)
				if _, err := h.svc.Start(ctx, tt.req(tt.allowed)); err != nil {
					t.Fatalf("after waiting %v: %v", fe.RetryAfter, err)
				}
			})
		}
	})
}

func TestConcurrentCompleteOneWinner(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		h := newHarness(t, url, nil)
		st, err := h.svc.Start(ctx, registration.StartParams{PhoneNumber: number})
		if err != nil {
			t.Fatal(err)
		}
		code, _, _ := h.lastSMS(t, number)
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			p := h.params(t, newKey(t, false), st.VerificationID)
			p.Code = code
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := h.svc.Complete(ctx, p)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		wins := 0
		for err := range errs {
			if err == nil {
				wins++
			} else if fe, ok := fault.As(err); !ok || fe.Kind != fault.FailedPrecondition {
				t.Errorf("loser got %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d registrations from one code, want 1", wins)
		}
	})
}

func TestDeregisterAndUpdate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		h := newHarness(t, url, nil)
		st, _ := h.svc.Start(ctx, registration.StartParams{PhoneNumber: number})
		code, _, _ := h.lastSMS(t, number)
		p := h.params(t, newKey(t, false), st.VerificationID)
		p.Code = code
		dev, cred, err := h.svc.Complete(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		tok, name := "fcm-token-2", "Nieuwe naam"
		got, err := h.devices.Update(ctx, dev.ID, registration.DeviceChange{PushToken: &tok, Name: &name})
		if err != nil || got.PushToken != tok || got.Name != name || got.AppVersion != "1.0.0" {
			t.Fatalf("update: %+v %v", got, err)
		}
		if err := h.devices.Deregister(ctx, dev.ID); err != nil {
			t.Fatal(err)
		}
		if err := h.devices.Deregister(ctx, dev.ID); err != nil {
			t.Fatalf("second deregister: %v", err)
		}
		if _, err := h.devices.Authenticate(ctx, cred); !errors.Is(err, registration.ErrRevokedDevice) {
			t.Fatalf("revoked credential: %v", err)
		}
	})
}

// TestConcurrentWrongCodes fires wrong codes all at once at one
// verification, on a store as slow as PostgreSQL over a network: no more
// codes are compared than the budgets allow, and the right code is refused
// after them.
func TestConcurrentWrongCodes(t *testing.T) {
	tests := []struct {
		name   string
		limits func(*registration.Limits)
		budget int
		after  fault.Kind
	}{
		{"per SMS", func(l *registration.Limits) { l.MaxAttempts = 5; l.MaxFailuresPerNumberDay = 100 }, 5, fault.FailedPrecondition},
		{"per number and day", func(l *registration.Limits) { l.MaxAttempts = 1000; l.MaxFailuresPerNumberDay = 3 }, 3, fault.ResourceExhausted},
	}
	forEachBackend(t, func(t *testing.T, url string) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx := context.Background()
				fresh := storetest.NewSQLiteURL(t)
				if strings.HasPrefix(url, "postgres") {
					fresh = storetest.NewPostgresURL(t)
				}
				h := newHarness(t, fresh, tt.limits, func(st store.Store) store.Store { return guesstest.Slow(st, time.Millisecond) })
				st, err := h.svc.Start(ctx, registration.StartParams{PhoneNumber: number})
				if err != nil {
					t.Fatal(err)
				}
				code, _, _ := h.lastSMS(t, number)
				k := newKey(t, false)
				wrong := h.params(t, k, st.VerificationID)
				wrong.Code = "000000"
				if code == wrong.Code {
					wrong.Code = "111111"
				}
				const callers = 200
				start := make(chan struct{})
				var wg sync.WaitGroup
				for range callers {
					wg.Go(func() {
						<-start
						_, _, err := h.svc.Complete(ctx, wrong)
						if fe, ok := fault.As(err); !ok || fe.Kind == fault.Internal {
							t.Errorf("wrong code: %v", err)
						}
					})
				}
				close(start)
				wg.Wait()
				if got := h.checks.Wrong(guess.SMSCode); got > tt.budget {
					t.Errorf("%d wrong codes compared, budget %d", got, tt.budget)
				}
				right := h.params(t, k, st.VerificationID)
				right.Code = code
				_, _, err = h.svc.Complete(ctx, right)
				wantKind(t, err, tt.after, "too many wrong codes")
				if got := h.checks.Right(guess.SMSCode); got != 0 {
					t.Errorf("the right code was compared after the budget was spent")
				}
			})
		}
	})
}

// TestSMSWindowsRoll: "5 an hour" holds for any 60 minutes, not per clock
// hour, so no burst fits across the top of an hour.
func TestSMSWindowsRoll(t *testing.T) {
	forEachBackend(t, func(t *testing.T, url string) {
		ctx := context.Background()
		h := newHarness(t, url, func(l *registration.Limits) { l.ResendCooldown = 0; l.PerNumberHour = 5 })
		h.clock.t = time.Date(2026, 11, 25, 5, 57, 0, 0, time.UTC)
		for i := range 5 {
			if _, err := h.svc.Start(ctx, registration.StartParams{PhoneNumber: number}); err != nil {
				t.Fatalf("SMS %d: %v", i+1, err)
			}
			h.clock.Advance(30 * time.Second)
		}
		h.clock.t = time.Date(2026, 11, 25, 6, 1, 0, 0, time.UTC)
		_, err := h.svc.Start(ctx, registration.StartParams{PhoneNumber: number})
		fe := wantKind(t, err, fault.ResourceExhausted, "last hour")
		if want := 56 * time.Minute; fe.RetryAfter != want {
			t.Errorf("retry after %v, want %v (when the first SMS leaves the hour)", fe.RetryAfter, want)
		}
		h.clock.t = time.Date(2026, 11, 25, 6, 57, 0, 0, time.UTC)
		if _, err := h.svc.Start(ctx, registration.StartParams{PhoneNumber: number}); err != nil {
			t.Fatalf("an hour after the first SMS: %v", err)
		}
	})
}
