package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/sqlstore"
	"github.com/pushauth/pushauth/internal/store/storetest"
	"github.com/pushauth/pushauth/migrations"
)

func TestConformanceSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return storetest.OpenMigrated(t, storetest.NewSQLiteURL(t))
	})
}

func TestConformancePostgres(t *testing.T) {
	skipWithoutPostgres(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return storetest.OpenMigrated(t, storetest.NewPostgresURL(t))
	})
}

func skipWithoutPostgres(t *testing.T) {
	t.Helper()
	if os.Getenv(storetest.PostgresDSNEnv) == "" {
		t.Skipf("%s is not set", storetest.PostgresDSNEnv)
	}
}

// dialects gives each test a fresh database URL per dialect plus a raw
// *sql.DB on it, to look at the schema behind the Store's back.
var dialects = []struct {
	name   string
	newURL func(t *testing.T) string
	rawDB  func(t *testing.T, url string) *sql.DB
	tables string // lists the user tables of the current database/schema
}{
	{
		name:   "sqlite",
		newURL: func(t *testing.T) string { return storetest.NewSQLiteURL(t) },
		rawDB: func(t *testing.T, url string) *sql.DB {
			return openRaw(t, "sqlite", strings.TrimPrefix(url, "sqlite:"))
		},
		tables: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
	},
	{
		name: "postgres",
		newURL: func(t *testing.T) string {
			skipWithoutPostgres(t)
			return storetest.NewPostgresURL(t)
		},
		rawDB:  func(t *testing.T, url string) *sql.DB { return openRaw(t, "pgx", url) },
		tables: "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
	},
}

func openRaw(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("open raw %s: %v", driver, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func tables(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatalf("list tables: %v", err)
		}
		if name != "schema_migrations" {
			out = append(out, name)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("list tables: %v", err)
	}
	slices.Sort(out)
	return out
}

// migrationsAbove counts the migrations embedded for a dialect whose number
// is above v.
func migrationsAbove(t *testing.T, fsys fs.FS, dir string, v uint) int {
	t.Helper()
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for _, e := range entries {
		n, err := strconv.ParseUint(strings.SplitN(e.Name(), "_", 2)[0], 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", e.Name(), err)
		}
		if n > uint64(v) {
			seen[n] = true
		}
	}
	return len(seen)
}

// latestVersion is the highest migration number embedded for a dialect.
func latestVersion(t *testing.T, fsys fs.FS, dir string) uint {
	t.Helper()
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	var latest uint
	for _, e := range entries {
		n, err := strconv.ParseUint(strings.SplitN(e.Name(), "_", 2)[0], 10, 64)
		if err != nil {
			t.Fatalf("migration %s: %v", e.Name(), err)
		}
		latest = max(latest, uint(n))
	}
	return latest
}

func TestMigrations(t *testing.T) {
	wantTables := []string{"api_keys", "audit_events", "backups", "connections", "devices", "event_outbox", "guess_budgets", "pairing_phrases", "phone_verifications", "push_outbox",
		"rate_events", "rate_keys", "relying_parties", "request_targets", "requests", "sms_outbox", "totp_factors", "user_states",
		"webhook_deliveries", "webhook_endpoints"}
	if a, b := latestVersion(t, migrations.Postgres, "postgres"), latestVersion(t, migrations.SQLite, "sqlite"); a != b {
		t.Fatalf("postgres migrations end at %d, sqlite at %d", a, b)
	}
	latest := latestVersion(t, migrations.SQLite, "sqlite")
	if latest < 4 {
		t.Fatalf("migrations end at %d, want at least 4 (backups and TOTP)", latest)
	}

	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := t.Context()
			url := d.newURL(t)
			s, err := sqlstore.Open(ctx, url, nil)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if s.Dialect() != d.name {
				t.Errorf("Dialect() = %q, want %q", s.Dialect(), d.name)
			}
			raw := d.rawDB(t, url)

			wantVersion := func(want uint) {
				t.Helper()
				v, dirty, err := s.MigrateVersion(ctx)
				if err != nil || v != want || dirty {
					t.Fatalf("MigrateVersion = %d, dirty %v, %v; want %d, clean", v, dirty, err, want)
				}
			}
			usable := func() {
				t.Helper()
				rp := store.RelyingParty{ID: "rp-1", Name: "one", CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)}
				if err := s.CreateRelyingParty(ctx, rp); err != nil {
					t.Fatalf("CreateRelyingParty: %v", err)
				}
				if got, err := s.GetRelyingParty(ctx, "rp-1"); err != nil || got != rp {
					t.Fatalf("GetRelyingParty = %+v, %v", got, err)
				}
				if err := s.CreateAPIKey(ctx, store.APIKey{ID: "k", RelyingPartyID: "rp-1", Prefix: "p"}); err != nil {
					t.Fatalf("CreateAPIKey: %v", err)
				}
				if err := s.CreateDevice(ctx, store.Device{ID: "d", CredentialPrefix: "p"}); err != nil {
					t.Fatalf("CreateDevice: %v", err)
				}
				if _, err := s.AppendAuditEvent(ctx, store.AuditEvent{Action: "x"}); err != nil {
					t.Fatalf("AppendAuditEvent: %v", err)
				}
				// Version 2: registration.
				if err := s.CreateVerification(ctx, store.Verification{ID: "v", PhoneNumber: "+15550100"}); err != nil {
					t.Fatalf("CreateVerification: %v", err)
				}
				if _, err := s.AddOutboxMessage(ctx, store.OutboxMessage{PhoneNumber: "+15550100", Body: "b"}); err != nil {
					t.Fatalf("AddOutboxMessage: %v", err)
				}
				// Version 3: pairing, connections, requests and user states.
				if err := s.PutPairingPhrase(ctx, store.PairingPhrase{Hash: []byte("h"), DeviceID: "d", ExpiresAt: time.Unix(120, 0)}); err != nil {
					t.Fatalf("PutPairingPhrase: %v", err)
				}
				if err := s.CreateConnection(ctx, store.Connection{ID: "c", RelyingPartyID: "rp-1", UserRef: "u", DeviceID: "d", Status: store.ConnectionPending}); err != nil {
					t.Fatalf("CreateConnection: %v", err)
				}
				if err := s.ActivateConnection(ctx, "c", time.Unix(60, 0)); err != nil {
					t.Fatalf("ActivateConnection: %v", err)
				}
				r := store.Request{ID: "r", Kind: store.KindLogin, RelyingPartyID: "rp-1", UserRef: "u", Status: store.StatusPending, ExpiresAt: time.Unix(120, 0)}
				if err := s.CreateRequest(ctx, r, []store.RequestTarget{{DeviceID: "d"}}); err != nil {
					t.Fatalf("CreateRequest: %v", err)
				}
				if rs, err := s.ExpireRequests(ctx, time.Unix(180, 0), 10); err != nil || len(rs) != 1 {
					t.Fatalf("ExpireRequests = %d requests, %v", len(rs), err)
				}
				if err := s.UpdateUserState(ctx, "rp-1", "u", func(u *store.UserState) error { u.ConsecutiveFailures = 1; return nil }); err != nil {
					t.Fatalf("UpdateUserState: %v", err)
				}
				// Version 4: backups, TOTP factors, transfers and TOTP user state.
				if err := s.PutBackup(ctx, store.Backup{PhoneNumber: "+15550100", DeviceID: "d", Blob: []byte("b")}, 0); err != nil {
					t.Fatalf("PutBackup: %v", err)
				}
				lock := time.Unix(300, 0).UTC()
				if b, err := s.GetBackup(ctx, "+15550100"); err != nil || b.Version != 1 {
					t.Fatalf("GetBackup = %+v, %v", b, err)
				}
				if err := s.CreateTOTPFactor(ctx, store.TOTPFactor{ID: "f", RelyingPartyID: "rp-1", UserRef: "u", Kind: store.TOTPKindConnection, ConnectionID: "c", Status: store.TOTPPending}); err != nil {
					t.Fatalf("CreateTOTPFactor: %v", err)
				}
				if err := s.ActivateTOTPFactor(ctx, "f", time.Unix(60, 0)); err != nil {
					t.Fatalf("ActivateTOTPFactor: %v", err)
				}
				if err := s.UseTOTPStep(ctx, "f", 2); err != nil {
					t.Fatalf("UseTOTPStep: %v", err)
				}
				if f, err := s.GetConnectionTOTPFactor(ctx, "c"); err != nil || f.LastUsedStep != 2 {
					t.Fatalf("GetConnectionTOTPFactor = %+v, %v", f, err)
				}
				if err := s.TransferConnection(ctx, "c", "d2"); err != nil {
					t.Fatalf("TransferConnection: %v", err)
				}
				if err := s.UpdateUserState(ctx, "rp-1", "u", func(u *store.UserState) error { u.TOTPFailures, u.TOTPLockedUntil = 2, lock; return nil }); err != nil {
					t.Fatalf("UpdateUserState: %v", err)
				}
				if u, err := s.GetUserState(ctx, "rp-1", "u"); err != nil || u.ConsecutiveFailures != 1 || u.TOTPFailures != 2 || !u.TOTPLockedUntil.Equal(lock) {
					t.Fatalf("GetUserState = %+v, %v", u, err)
				}
				// Version 5: rolling rate limits, guess budgets, one phrase per device.
				if _, err := s.TakeRate(ctx, time.Unix(60, 0), store.RateLimit{Key: "k", Window: time.Hour, Max: 1}); err != nil {
					t.Fatalf("TakeRate: %v", err)
				}
				if _, err := s.SpendGuess(ctx, store.GuessBudget{Key: "k", Max: 1}, time.Unix(60, 0)); err != nil {
					t.Fatalf("SpendGuess: %v", err)
				}
				if err := s.PutPairingPhrase(ctx, store.PairingPhrase{Hash: []byte("h2"), DeviceID: "d", CreatedAt: time.Unix(60, 0), ExpiresAt: time.Unix(720, 0)}); err != nil {
					t.Fatalf("PutPairingPhrase: %v", err)
				}
			}
			gone := func() {
				t.Helper()
				if got := tables(t, raw, d.tables); len(got) != 0 {
					t.Fatalf("tables left: %v", got)
				}
				_, err := s.GetRelyingParty(ctx, "rp-1")
				if err == nil || errors.Is(err, store.ErrNotFound) {
					t.Fatalf("GetRelyingParty without schema: %v, want a missing-table error", err)
				}
			}

			wantVersion(0)
			gone()

			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("MigrateUp: %v", err)
			}
			wantVersion(latest)
			if got := tables(t, raw, d.tables); !slices.Equal(got, wantTables) {
				t.Fatalf("tables = %v, want %v", got, wantTables)
			}
			usable()
			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("MigrateUp when up to date: %v", err)
			}
			wantVersion(latest)

			if err := s.MigrateDown(ctx); err != nil {
				t.Fatalf("MigrateDown: %v", err)
			}
			wantVersion(0)
			gone()
			if err := s.MigrateDown(ctx); err != nil {
				t.Fatalf("MigrateDown when empty: %v", err)
			}

			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("MigrateUp again: %v", err)
			}
			wantVersion(latest)
			if _, err := s.GetRelyingParty(ctx, "rp-1"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("data survived down and up: %v", err)
			}
			usable()

			// The Store keeps working: migrations ran on a DB of their own.
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping after migrations: %v", err)
			}

			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if err := s.MigrateUp(cctx); err == nil {
				t.Error("MigrateUp with cancelled ctx succeeded")
			}
			err = s.InTx(ctx, func(tx store.Store) error {
				return tx.(*sqlstore.Store).MigrateUp(ctx)
			})
			if err == nil {
				t.Error("MigrateUp inside InTx succeeded")
			}
		})
	}
}

// TestMigration4Down reverts only the backup and TOTP migration on a
// database with data in it: the two tables go, user_states loses exactly
// the two columns it gained and keeps its rows (and, on SQLite, STRICT), and
// migrating up again restores a working schema.
func TestMigration4Down(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			ctx := t.Context()
			url := d.newURL(t)
			s := storetest.OpenMigrated(t, url)
			raw := d.rawDB(t, url)
			// Later migrations, if any, are reverted first (counted, not
			// subtracted: numbers may have gaps while branches merge).
			if later := migrationsAbove(t, migrations.SQLite, "sqlite", 4); later > 0 {
				if err := s.MigrateSteps(ctx, -later); err != nil {
					t.Fatalf("migrate down to version 4: %v", err)
				}
			}
			if v, dirty, err := s.MigrateVersion(ctx); err != nil || v != 4 || dirty {
				t.Fatalf("MigrateVersion = %d, dirty %v, %v; want 4, clean", v, dirty, err)
			}
			if err := s.UpdateUserState(ctx, "rp-1", "u", func(u *store.UserState) error {
				u.ConsecutiveFailures, u.TOTPFailures, u.TOTPLockedUntil = 3, 4, time.Unix(60, 0)
				return nil
			}); err != nil {
				t.Fatalf("UpdateUserState: %v", err)
			}
			// The backups table of version 4, written raw: the store speaks
			// the latest schema.
			if _, err := raw.ExecContext(ctx, "INSERT INTO backups (phone_number) VALUES ('+15550100')"); err != nil {
				t.Fatalf("insert backup: %v", err)
			}

			if err := s.MigrateSteps(ctx, -1); err != nil {
				t.Fatalf("migrate one step down: %v", err)
			}
			if v, dirty, err := s.MigrateVersion(ctx); err != nil || v != 3 || dirty {
				t.Fatalf("MigrateVersion = %d, dirty %v, %v; want 3, clean", v, dirty, err)
			}
			want := []string{"api_keys", "audit_events", "connections", "devices", "pairing_phrases", "phone_verifications",
				"rate_counters", "relying_parties", "request_targets", "requests", "sms_outbox", "user_states"}
			if got := tables(t, raw, d.tables); !slices.Equal(got, want) {
				t.Fatalf("tables at version 3 = %v, want %v", got, want)
			}
			rows, err := raw.QueryContext(ctx, "SELECT * FROM user_states")
			if err != nil {
				t.Fatalf("read user_states: %v", err)
			}
			cols, err := rows.Columns()
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				n++
			}
			rows.Close()
			wantCols := []string{"relying_party_id", "user_ref", "consecutive_failures", "backoff_until", "muted_until", "updated_at"}
			if !slices.Equal(cols, wantCols) {
				t.Errorf("user_states columns at version 3 = %v, want %v", cols, wantCols)
			}
			if n != 1 {
				t.Errorf("user_states has %d rows after one step down, want 1", n)
			}
			if d.name == "sqlite" {
				var strict int
				if err := raw.QueryRowContext(ctx, "SELECT strict FROM pragma_table_list WHERE name = 'user_states'").Scan(&strict); err != nil {
					t.Fatalf("pragma_table_list: %v", err)
				}
				if strict != 1 {
					t.Error("user_states is no longer STRICT")
				}
			}

			if err := s.MigrateUp(ctx); err != nil {
				t.Fatalf("migrate up: %v", err)
			}
			u, err := s.GetUserState(ctx, "rp-1", "u")
			if err != nil {
				t.Fatalf("GetUserState: %v", err)
			}
			if u.ConsecutiveFailures != 3 || u.TOTPFailures != 0 || !u.TOTPLockedUntil.IsZero() {
				t.Errorf("user state after down and up = %+v, want 3 failures and no TOTP state", u)
			}
			if _, err := s.GetBackup(ctx, "+15550100"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("backup survived down and up: %v", err)
			}
		})
	}
}

func TestOpenUnreachablePostgres(t *testing.T) {
	const password = "hunter2-very-secret"
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	s, err := sqlstore.Open(ctx, "postgres://pushauth:"+password+"@127.0.0.1:1/pushauth?sslmode=disable", nil)
	if err == nil {
		s.Close()
		t.Fatal("Open on 127.0.0.1:1 succeeded")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Open took %v to fail", took)
	}
	msg := err.Error()
	if strings.Contains(msg, password) {
		t.Errorf("error leaks the password: %s", msg)
	}
	for _, want := range []string{"postgres", "127.0.0.1"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	t.Logf("error: %s", msg)
}

func TestOpenURLForms(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for _, url := range []string{
		"sqlite:" + filepath.Join(dir, "a", "b", "one.db"),
		"sqlite://" + filepath.Join(dir, "two.sqlite"),
		filepath.Join(dir, "three.db"),
	} {
		s, err := sqlstore.Open(ctx, url, nil)
		if err != nil {
			t.Errorf("Open(%q): %v", url, err)
			continue
		}
		if s.Dialect() != "sqlite" {
			t.Errorf("Open(%q).Dialect() = %q", url, s.Dialect())
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "a", "b")); err != nil {
		t.Errorf("parent directory not created: %v", err)
	} else if fi.Mode().Perm() != 0o700 {
		t.Errorf("parent directory mode = %v, want 0700", fi.Mode().Perm())
	}

	for _, url := range []string{
		"mysql://root:topsecret@db/pushauth",
		"sqlite:",
		"sqlite::memory:",
		"sqlite:" + filepath.Join(dir, "x.db") + "?_pragma=foo",
		"pushauth",
	} {
		s, err := sqlstore.Open(ctx, url, nil)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", url)
			continue
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Errorf("Open(%q) error leaks the password: %v", url, err)
		}
	}
}

func TestSQLiteReadsDoNotWaitForWriter(t *testing.T) {
	// A transaction holds SQLite's only writer connection; reads outside it
	// still answer, from the reader pool, and see the last committed state.
	s := storetest.OpenMigrated(t, storetest.NewSQLiteURL(t))
	ctx := t.Context()
	if err := s.CreateRelyingParty(ctx, store.RelyingParty{ID: "rp-1", Name: "one"}); err != nil {
		t.Fatal(err)
	}
	err := s.InTx(ctx, func(tx store.Store) error {
		if err := tx.UpdateRelyingParty(ctx, store.RelyingParty{ID: "rp-1", DisplayName: "changed"}); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		rp, err := s.GetRelyingParty(rctx, "rp-1")
		if err != nil {
			return err
		}
		if rp.DisplayName != "" {
			t.Errorf("uncommitted change visible outside the transaction: %q", rp.DisplayName)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
