// Package guesstest helps tests prove that guess budgets hold under
// parallel attack: a Counter of secret comparisons, and a store wrapper that
// adds latency to every call, as PostgreSQL over a network does, so races
// that a fast local database hides become likely.
package guesstest

import (
	"context"
	"sync"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Counter counts comparisons of secrets; it is a guess.Observer.
type Counter struct {
	mu    sync.Mutex
	right map[string]int
	wrong map[string]int
}

// Checked implements guess.Observer.
func (c *Counter) Checked(secret string, right bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.right == nil {
		c.right, c.wrong = map[string]int{}, map[string]int{}
	}
	if right {
		c.right[secret]++
	} else {
		c.wrong[secret]++
	}
}

// Wrong returns how many wrong values of secret were compared.
func (c *Counter) Wrong(secret string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wrong[secret]
}

// Right returns how many right values of secret were compared.
func (c *Counter) Right(secret string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.right[secret]
}

// Slow wraps st so that the calls on the guessing paths, and every
// transaction, take at least d longer.
func Slow(st store.Store, d time.Duration) store.Store { return &slow{Store: st, d: d} }

type slow struct {
	store.Store
	d time.Duration
}

func (s *slow) wait(ctx context.Context) {
	t := time.NewTimer(s.d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (s *slow) InTx(ctx context.Context, fn func(tx store.Store) error) error {
	s.wait(ctx)
	return s.Store.InTx(ctx, func(tx store.Store) error { return fn(&slow{Store: tx, d: s.d}) })
}

func (s *slow) GetBackup(ctx context.Context, number string) (store.Backup, error) {
	s.wait(ctx)
	return s.Store.GetBackup(ctx, number)
}

func (s *slow) PutBackup(ctx context.Context, b store.Backup, version int64) error {
	s.wait(ctx)
	return s.Store.PutBackup(ctx, b, version)
}

func (s *slow) DeleteBackup(ctx context.Context, number string, version int64) error {
	s.wait(ctx)
	return s.Store.DeleteBackup(ctx, number, version)
}

func (s *slow) GetUserState(ctx context.Context, rp, user string) (store.UserState, error) {
	s.wait(ctx)
	return s.Store.GetUserState(ctx, rp, user)
}

func (s *slow) UpdateUserState(ctx context.Context, rp, user string, fn func(*store.UserState) error) error {
	s.wait(ctx)
	return s.Store.UpdateUserState(ctx, rp, user, fn)
}

func (s *slow) ListUserTOTPFactors(ctx context.Context, rp, user string) ([]store.TOTPFactor, error) {
	s.wait(ctx)
	return s.Store.ListUserTOTPFactors(ctx, rp, user)
}

func (s *slow) GetTOTPFactor(ctx context.Context, id string) (store.TOTPFactor, error) {
	s.wait(ctx)
	return s.Store.GetTOTPFactor(ctx, id)
}

func (s *slow) GetVerification(ctx context.Context, id string) (store.Verification, error) {
	s.wait(ctx)
	return s.Store.GetVerification(ctx, id)
}

func (s *slow) ClaimPairingPhrase(ctx context.Context, hash []byte, at time.Time) (store.PairingPhrase, error) {
	s.wait(ctx)
	return s.Store.ClaimPairingPhrase(ctx, hash, at)
}

func (s *slow) ListUserPendingRequests(ctx context.Context, rp, user, kind string, now time.Time) ([]store.Request, error) {
	s.wait(ctx)
	return s.Store.ListUserPendingRequests(ctx, rp, user, kind, now)
}

func (s *slow) SpendGuess(ctx context.Context, b store.GuessBudget, now time.Time) (store.GuessState, error) {
	s.wait(ctx)
	return s.Store.SpendGuess(ctx, b, now)
}

func (s *slow) TakeRate(ctx context.Context, now time.Time, limits ...store.RateLimit) (store.RateTicket, error) {
	s.wait(ctx)
	return s.Store.TakeRate(ctx, now, limits...)
}
