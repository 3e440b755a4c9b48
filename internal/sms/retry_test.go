package sms

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// scripted answers Send with its errors in turn, then succeeds.
type scripted struct {
	errs  []error
	calls int
}

func (s *scripted) Name() string { return "scripted" }

func (s *scripted) Send(_ context.Context, m Message) (string, error) {
	s.calls++
	if s.calls <= len(s.errs) && s.errs[s.calls-1] != nil {
		return "", s.errs[s.calls-1]
	}
	return "id-1", nil
}

// recorder is a sleep that never waits and remembers what it was asked.
type recorder struct {
	slept  []time.Duration
	during func() // runs inside sleep, e.g. to cancel the context
}

func (r *recorder) sleep(ctx context.Context, d time.Duration) error {
	r.slept = append(r.slept, d)
	if r.during != nil {
		r.during()
	}
	return ctx.Err()
}

func temp(retryAfter time.Duration) error {
	return &Error{Provider: "scripted", Status: 503, Temporary: true, RetryAfter: retryAfter}
}

var permanent = &Error{Provider: "scripted", Status: 400, Code: "21211"}

func TestRetrying(t *testing.T) {
	const base = 100 * time.Millisecond
	tests := []struct {
		name      string
		attempts  int
		base      time.Duration
		errs      []error
		wantCalls int
		wantSlept []time.Duration
		wantErr   error // compared with errors.Is; nil means success
	}{
		{name: "first try", attempts: 3, base: base, wantCalls: 1},
		{name: "temporary then success", attempts: 3, base: base, errs: []error{temp(0), temp(0)},
			wantCalls: 3, wantSlept: []time.Duration{base, 2 * base}},
		{name: "temporary until attempts run out", attempts: 3, base: base, errs: []error{temp(0), temp(0), temp(0), temp(0)},
			wantCalls: 3, wantSlept: []time.Duration{base, 2 * base}, wantErr: errAny},
		{name: "permanent returns at once", attempts: 5, base: base, errs: []error{permanent},
			wantCalls: 1, wantErr: permanent},
		{name: "temporary then permanent", attempts: 5, base: base, errs: []error{temp(0), permanent},
			wantCalls: 2, wantSlept: []time.Duration{base}, wantErr: permanent},
		{name: "Retry-After is a lower bound", attempts: 3, base: base, errs: []error{temp(7 * time.Second)},
			wantCalls: 2, wantSlept: []time.Duration{7 * time.Second}},
		{name: "backoff above Retry-After wins", attempts: 3, base: 4 * time.Second, errs: []error{temp(time.Second)},
			wantCalls: 2, wantSlept: []time.Duration{4 * time.Second}},
		{name: "Retry-After too long gives up", attempts: 3, base: base, errs: []error{temp(time.Hour)},
			wantCalls: 1, wantErr: errAny},
		{name: "backoff is capped", attempts: 6, base: 3 * time.Second, errs: []error{temp(0), temp(0), temp(0), temp(0), temp(0)},
			wantCalls: 6, wantSlept: []time.Duration{3 * time.Second, 6 * time.Second, maxBackoff, maxBackoff, maxBackoff}},
		{name: "plain network error is temporary", attempts: 2, base: base, errs: []error{context.DeadlineExceeded},
			wantCalls: 2, wantSlept: []time.Duration{base}},
		{name: "attempts below one means one", attempts: 0, base: base, errs: []error{temp(0)},
			wantCalls: 1, wantErr: errAny},
		{name: "default base", attempts: 2, base: 0, errs: []error{temp(0)},
			wantCalls: 2, wantSlept: []time.Duration{defaultRetryBase}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scripted{errs: tt.errs}
			rec := &recorder{}
			r := NewRetrying(s, tt.attempts, tt.base, rec.sleep).(*retrying)
			r.jitter = func(d time.Duration) time.Duration { return d } // the top of the jitter range
			id, err := r.Send(context.Background(), testMsg)
			switch {
			case tt.wantErr == nil && (err != nil || id != "id-1"):
				t.Errorf("Send = %q, %v", id, err)
			case tt.wantErr == errAny && err == nil:
				t.Error("no error")
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Errorf("err %v, want %v", err, tt.wantErr)
			}
			if s.calls != tt.wantCalls {
				t.Errorf("%d calls, want %d", s.calls, tt.wantCalls)
			}
			if !slices.Equal(rec.slept, tt.wantSlept) {
				t.Errorf("slept %v, want %v", rec.slept, tt.wantSlept)
			}
			if r.Name() != "scripted" {
				t.Errorf("name %q", r.Name())
			}
		})
	}
}

var errAny = errors.New("any error")

func TestRetryingFullJitter(t *testing.T) {
	s := &scripted{errs: slices.Repeat([]error{temp(0)}, 200)}
	rec := &recorder{}
	r := NewRetrying(s, 200, time.Second, rec.sleep)
	if _, err := r.Send(context.Background(), testMsg); err == nil {
		t.Fatal("no error")
	}
	distinct := map[time.Duration]bool{}
	for i, d := range rec.slept {
		limit := min(time.Second<<min(i, 20), maxBackoff)
		if d < 0 || d > limit {
			t.Fatalf("sleep %d = %v outside [0, %v]", i, d, limit)
		}
		distinct[d] = true
	}
	if len(rec.slept) != 199 || len(distinct) < 100 {
		t.Errorf("%d sleeps, %d distinct: no jitter?", len(rec.slept), len(distinct))
	}
}

func TestRetryingStopsOnContext(t *testing.T) {
	t.Run("canceled while sleeping", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := &scripted{errs: []error{temp(0), temp(0)}}
		rec := &recorder{during: cancel}
		_, err := NewRetrying(s, 5, time.Millisecond, rec.sleep).Send(ctx, testMsg)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err %v does not say canceled", err)
		}
		if _, ok := errors.AsType[*Error](err); !ok {
			t.Errorf("err %v lost the provider error", err)
		}
		if s.calls != 1 || len(rec.slept) != 1 {
			t.Errorf("%d calls, %d sleeps", s.calls, len(rec.slept))
		}
	})
	t.Run("canceled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s := &scripted{}
		_, err := NewRetrying(s, 5, time.Millisecond, (&recorder{}).sleep).Send(ctx, testMsg)
		if !errors.Is(err, context.Canceled) || s.calls != 0 {
			t.Errorf("err %v, %d calls", err, s.calls)
		}
	})
	t.Run("deadline before the wait ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s := &scripted{errs: []error{temp(20 * time.Second)}}
		rec := &recorder{}
		_, err := NewRetrying(s, 5, time.Millisecond, rec.sleep).Send(ctx, testMsg)
		if e, ok := errors.AsType[*Error](err); !ok || e.RetryAfter != 20*time.Second || s.calls != 1 || len(rec.slept) != 0 {
			t.Errorf("err %v, %d calls, slept %v: want the provider error without waiting", err, s.calls, rec.slept)
		}
	})
	t.Run("provider sees cancellation", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		s := &cancelling{cancel: cancel}
		rec := &recorder{}
		_, err := NewRetrying(s, 5, time.Millisecond, rec.sleep).Send(ctx, testMsg)
		if !errors.Is(err, context.Canceled) || s.calls != 1 || len(rec.slept) != 0 {
			t.Errorf("err %v, %d calls, slept %v", err, s.calls, rec.slept)
		}
	})
}

// cancelling fails temporarily and cancels the caller's context meanwhile.
type cancelling struct {
	cancel func()
	calls  int
}

func (c *cancelling) Name() string { return "cancelling" }
func (c *cancelling) Send(context.Context, Message) (string, error) {
	c.calls++
	c.cancel()
	return "", temp(0)
}

func TestSleepContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepContext(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled sleep: %v", err)
	}
	if err := sleepContext(context.Background(), 0); err != nil {
		t.Errorf("zero sleep: %v", err)
	}
	if err := sleepContext(context.Background(), time.Microsecond); err != nil {
		t.Errorf("short sleep: %v", err)
	}
}

// TestRetryingTwilio runs the whole path: a 503 with Retry-After, then 201.
func TestRetryingTwilio(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"sid":"SMok"}`))
	}))
	defer srv.Close()
	tw, err := NewTwilio(TwilioConfig{AccountSID: "ACx", AuthToken: testToken, From: "PushAuth", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	r := NewRetrying(tw, 3, 100*time.Millisecond, rec.sleep)
	id, err := r.Send(context.Background(), testMsg)
	if err != nil || id != "SMok" || calls.Load() != 2 {
		t.Fatalf("id %q err %v calls %d", id, err, calls.Load())
	}
	if !slices.Equal(rec.slept, []time.Duration{7 * time.Second}) {
		t.Errorf("slept %v", rec.slept)
	}
	if r.Name() != "twilio" {
		t.Errorf("name %q", r.Name())
	}
}
