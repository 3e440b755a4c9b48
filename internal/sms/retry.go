package sms

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

const (
	// defaultRetryBase is the first backoff when NewRetrying gets base <= 0.
	defaultRetryBase = 250 * time.Millisecond
	// maxBackoff caps the exponential backoff: the user is waiting for the
	// SMS on the registration screen.
	maxBackoff = 10 * time.Second
	// maxRetryAfter is the longest Retry-After honoured. A provider asking
	// for more gets its error returned at once: the SMS would arrive after the
	// user has given up, and the registration call would hang meanwhile.
	maxRetryAfter = 30 * time.Second
)

// retrying retries temporary failures of another Sender.
type retrying struct {
	s        Sender
	attempts int
	base     time.Duration
	sleep    func(ctx context.Context, d time.Duration) error
	// jitter returns a uniform duration in [0, d]; replaced in tests.
	jitter func(d time.Duration) time.Duration
}

// NewRetrying wraps s so temporary errors (see IsTemporary) are retried, up
// to attempts sends in all, with exponential backoff from base and full
// jitter (a uniform wait in [0, min(base*2^n, 10s)]) so that replicas that
// failed together do not retry together. A provider's RetryAfter is a lower
// bound on the wait; one above 30s ends the retries. Permanent errors return
// at once, and so does everything when ctx ends. sleep waits d or until ctx
// ends; nil means a timer. Because a timed-out request may still have been
// delivered, a retry can occasionally send the same code twice; that is
// harmless for a verification SMS and better than none.
func NewRetrying(s Sender, attempts int, base time.Duration, sleep func(ctx context.Context, d time.Duration) error) Sender {
	if attempts < 1 {
		attempts = 1
	}
	if base <= 0 {
		base = defaultRetryBase
	}
	if sleep == nil {
		sleep = sleepContext
	}
	return &retrying{
		s:        s,
		attempts: attempts,
		base:     base,
		sleep:    sleep,
		jitter: func(d time.Duration) time.Duration {
			if d <= 0 {
				return 0
			}
			return rand.N(d + 1)
		},
	}
}

// Name is the wrapped sender's name, so logs and audit name the provider.
func (r *retrying) Name() string { return r.s.Name() }

// Send implements Sender.
func (r *retrying) Send(ctx context.Context, m Message) (string, error) {
	var err error
	for attempt := 0; attempt < r.attempts; attempt++ {
		if attempt > 0 {
			d, ok := r.delay(ctx, attempt-1, err)
			if !ok {
				return "", err
			}
			if serr := r.sleep(ctx, d); serr != nil {
				return "", withContext(err, serr)
			}
		}
		if cerr := ctx.Err(); cerr != nil {
			if err == nil {
				return "", cerr
			}
			return "", withContext(err, cerr)
		}
		var id string
		id, err = r.s.Send(ctx, m)
		if err == nil {
			return id, nil
		}
		if !IsTemporary(err) {
			return "", err
		}
		if cerr := ctx.Err(); cerr != nil {
			return "", withContext(err, cerr)
		}
	}
	return "", err
}

// delay is the wait before retry n (0-based) after err, and whether to retry
// at all.
func (r *retrying) delay(ctx context.Context, n int, err error) (time.Duration, bool) {
	backoff := maxBackoff
	if n < 32 {
		if b := r.base << n; b > 0 && b < maxBackoff {
			backoff = b
		}
	}
	d := r.jitter(backoff)
	if e, ok := errors.AsType[*Error](err); ok && e.RetryAfter > 0 {
		if e.RetryAfter > maxRetryAfter {
			return 0, false
		}
		d = max(d, e.RetryAfter)
	}
	// Sleeping past the deadline would only end in ctx's error; the
	// provider's error says more.
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return 0, false
	}
	return d, true
}

// withContext adds ctx's error to the last send error, keeping both
// reachable through errors.Is / errors.As.
func withContext(err, cerr error) error {
	if errors.Is(err, cerr) {
		return err
	}
	return errors.Join(err, cerr)
}

// sleepContext waits d, or less if ctx ends first.
func sleepContext(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
