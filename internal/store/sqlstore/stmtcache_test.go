package sqlstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pushauth/pushauth/internal/store"
)

// TestSQLiteStatementCache checks that SQLite statements are prepared once
// per pool, inside transactions too, and that the readers map the file.
func TestSQLiteStatementCache(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "cache.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatal(err)
	}
	cached := func(c *stmtCache) int {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return len(c.m)
	}
	r0, w0 := cached(s.rcache), cached(s.wcache)
	for range 3 {
		if _, err := s.GetRelyingParty(ctx, "rp-none"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetRelyingParty: %v", err)
		}
		if err := s.InTx(ctx, func(tx store.Store) error {
			_, err := tx.GetUserState(ctx, "rp-none", "alice")
			return err
		}); err != nil {
			t.Fatalf("InTx: %v", err)
		}
	}
	s.wcache.wg.Wait() // prepared in the background for transactions
	if got := cached(s.rcache) - r0; got != 1 {
		t.Errorf("reader pool prepared %d statements for one query run 3 times, want 1", got)
	}
	if got := cached(s.wcache) - w0; got != 1 {
		t.Errorf("writer pool prepared %d statements for one query run 3 times in transactions, want 1", got)
	}
	var mmap int64
	if err := s.r.QueryRowContext(ctx, "PRAGMA mmap_size").Scan(&mmap); err != nil {
		t.Fatal(err)
	}
	if mmap != 256<<20 {
		t.Errorf("readers' mmap_size = %d, want %d", mmap, 256<<20)
	}
}

// TestPostgresStatementCache checks that pgx prepares a statement once per
// connection and then runs it from its cache (one round trip a call).
func TestPostgresStatementCache(t *testing.T) {
	dsn := os.Getenv("PUSHAUTH_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("PUSHAUTH_TEST_POSTGRES_DSN not set")
	}
	ctx := t.Context()
	s, err := Open(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	before := s.Counts()
	const calls = 30
	for range calls { // one at a time: the pool keeps using one connection
		var one int
		if err := s.r.QueryRowContext(ctx, "SELECT 1 WHERE 1 = $1", 1).Scan(&one); err != nil {
			t.Fatal(err)
		}
	}
	d := s.Counts().Sub(before)
	if d.Prepares != 1 || d.RoundTrips != calls+1 {
		t.Errorf("%d calls: %d prepares, %d round trips; want 1 and %d", calls, d.Prepares, d.RoundTrips, calls+1)
	}
}
