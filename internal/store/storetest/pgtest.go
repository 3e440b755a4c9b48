package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx" for the schema admin connection

	"github.com/pushauth/pushauth/internal/store/sqlstore"
)

// PostgresDSNEnv names the variable holding a PostgreSQL URL for tests, e.g.
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable. Without it
// PostgreSQL tests skip, so `go test ./...` works on a bare machine.
const PostgresDSNEnv = "PUSHAUTH_TEST_POSTGRES_DSN"

// NewPostgresURL returns a URL for a schema of its own, created empty for this
// test and dropped with everything in it when the test ends, so tests can run
// in parallel against one server. It skips the test if PostgresDSNEnv is unset.
func NewPostgresURL(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(PostgresDSNEnv)
	if dsn == "" {
		t.Skipf("%s is not set; skipping PostgreSQL test", PostgresDSNEnv)
	}
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL", PostgresDSNEnv)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])

	admin := func(query string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, query)
		return err
	}
	if err := admin("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create test schema on %s: %v", u.Redacted(), err)
	}
	t.Cleanup(func() {
		if err := admin("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// NewSQLiteURL returns a URL for a new SQLite file in the test's temporary
// directory.
func NewSQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "pushauth.db")
}

// ForEachBackend runs f as a subtest per supported database ("sqlite",
// "postgres"), with the URL of a fresh one, so domain packages test on both
// without each keeping the list.
func ForEachBackend(t *testing.T, f func(t *testing.T, url string)) {
	t.Helper()
	for _, b := range []struct {
		name   string
		newURL func(testing.TB) string
	}{{"sqlite", NewSQLiteURL}, {"postgres", NewPostgresURL}} {
		t.Run(b.name, func(t *testing.T) { f(t, b.newURL(t)) })
	}
}

// OpenMigrated opens url, migrates it up and closes it when the test ends.
func OpenMigrated(t testing.TB, url string) *sqlstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := sqlstore.Open(ctx, url, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	if err := s.MigrateUp(ctx); err != nil {
		t.Fatalf("migrate store up: %v", err)
	}
	return s
}
