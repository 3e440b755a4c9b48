// Package guess holds what the budgets against secret guessing share: the
// observer that counts every comparison of a secret (operators see guessing
// in the metrics; tests prove a budget is never beaten), and the answer a
// person gets when a budget refuses.
//
// The budgets themselves are rows in the store (store.Guesses, store.Rates):
// every counted check spends its try there before the secret is compared.
package guess

import (
	"errors"
	"fmt"
	"time"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/store"
)

// Secrets that are guessed, as the observer and the metrics name them.
const (
	BackupPasscode = "backup_passcode"
	TOTPCode       = "totp_code"
	PairingPhrase  = "pairing_phrase"
	SMSCode        = "sms_code"
)

// Observer is told of every comparison of a secret and its outcome.
type Observer interface {
	Checked(secret string, right bool)
}

// Observe tells o, if there is one.
func Observe(o Observer, secret string, right bool) {
	if o != nil {
		o.Checked(secret, right)
	}
}

// Schedule returns a lock-out function: the lock after the n-th failure in
// a row is locks[n-1], the last one repeating; none when locks is empty.
func Schedule(locks ...time.Duration) func(n int) time.Duration {
	return func(n int) time.Duration {
		if len(locks) == 0 || n < 1 {
			return 0
		}
		return locks[min(n, len(locks))-1]
	}
}

// Refusal turns a budget's refusal into the answer a person can act on:
// ResourceExhausted with the wait, or, for a spent budget, what spent means.
// Other errors pass through unchanged.
func Refusal(err error, now time.Time, what, spent string) error {
	var le *store.LimitError
	if !errors.As(err, &le) {
		return err
	}
	if le.Exhausted || le.Until.IsZero() {
		return fault.New(fault.PermissionDenied, spent)
	}
	retry := le.Until.Sub(now)
	return fault.Exhausted(fmt.Sprintf("%s; try again in %s", what, RoundUp(retry)), retry)
}

// RoundUp shows a wait in whole seconds, never "0s".
func RoundUp(d time.Duration) time.Duration {
	r := d.Round(time.Second)
	if r < d {
		r += time.Second
	}
	if r < time.Second {
		r = time.Second
	}
	return r
}
