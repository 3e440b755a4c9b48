package servertest

import (
	"time"

	"github.com/pushauth/pushauth/internal/guess/guesstest"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

// WithAttackSetup makes the server ready for a parallel-attack test: every
// secret comparison is counted in checks, and the store answers as slowly
// as PostgreSQL over a network (delay per call on the guessing paths), so
// the races an attacker would exploit are wide open. The per-replica call
// rate of an API key is off.
func WithAttackSetup(checks *guesstest.Counter, delay time.Duration) func(*server.Options) {
	return func(o *server.Options) {
		o.SecretChecks = checks
		o.Store = guesstest.Slow(o.Store, delay)
		// The per-key call rate is per replica: an attacker spreads calls
		// over replicas, so the budgets must hold without it.
		o.Limits.APIKeyRate = -1
	}
}

// Burst runs call n times in parallel, released together, and returns the
// errors in order. Test clients share one connection, so this is what 200
// streams opened at once on one HTTP/2 connection do.
func Burst(n int, call func(i int) error) []error { return storetest.Burst(n, call) }

var _ store.Store = guesstest.Slow(nil, 0)
