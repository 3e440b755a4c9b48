// Package sqlstore implements store.Store once, on database/sql, for both
// PostgreSQL (pgx) and SQLite (modernc, no cgo). Queries are written with ?
// placeholders and rebound to $n for PostgreSQL, so the two dialects cannot
// drift apart; the schemas live in package migrations.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/pushauth/pushauth/internal/store"
)

const (
	dialectPostgres = "postgres"
	dialectSQLite   = "sqlite"
)

// querier is what *sql.DB and *sql.Tx have in common, so every method runs
// unchanged inside or outside a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Store is a store.Store on PostgreSQL or SQLite. It is safe for concurrent
// use. Open it with Open; create its schema with MigrateUp.
type Store struct {
	*shared

	// w runs writes and reads that must see the latest write (CAS checks);
	// r runs plain reads. Outside a transaction on SQLite they are different
	// pools; otherwise they are the same.
	w, r querier
	tx   *sql.Tx // non-nil for the Store handed to an InTx callback
}

// shared is what a Store and the transaction Stores made from it share.
type shared struct {
	dialect string
	where   string // dialect and host/path for messages, never a password
	logger  *slog.Logger

	// db takes writes and transactions. On SQLite it has a single connection,
	// which is SQLite's own rule made explicit: one writer at a time, queued
	// in Go instead of failing with SQLITE_BUSY.
	db *sql.DB
	// rdb serves reads outside transactions; on PostgreSQL it is db.
	rdb *sql.DB

	// openMigrationDB opens a *sql.DB that golang-migrate may own and close.
	openMigrationDB func() (*sql.DB, error)

	// wcache and rcache prepare SQLite statements once per pool (nil on
	// PostgreSQL, where pgx caches them).
	wcache, rcache *stmtCache

	rebound   sync.Map // query with ? -> query with $n (PostgreSQL only)
	counters  counters
	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open connects to the database named by url and checks that it answers. It
// does not create or migrate the schema; see MigrateUp.
//
// url is postgres://… or postgresql://… for PostgreSQL, or sqlite:<path>,
// sqlite://<path> or a plain path ending in .db for SQLite. A missing SQLite
// file is created, and its directory too (mode 0700). logger may be nil.
func Open(ctx context.Context, url string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	lower := strings.ToLower(url)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return openPostgres(ctx, url, logger)
	case strings.HasPrefix(lower, "sqlite://"):
		return openSQLite(ctx, url[len("sqlite://"):], logger)
	case strings.HasPrefix(lower, "sqlite:"):
		return openSQLite(ctx, url[len("sqlite:"):], logger)
	case strings.HasSuffix(lower, ".db") && !strings.Contains(url, "://"):
		return openSQLite(ctx, url, logger)
	}
	scheme := "none"
	if i := strings.Index(url, "://"); i > 0 {
		scheme = url[:i]
	}
	// The URL itself is not repeated: it may hold a password.
	return nil, fmt.Errorf("sqlstore: unsupported database URL (scheme %q): want postgres://, postgresql://, sqlite:<path> or a path ending in .db", scheme)
}

func openPostgres(ctx context.Context, rawURL string, logger *slog.Logger) (*Store, error) {
	password := ""
	where := "postgres"
	if u, err := url.Parse(rawURL); err == nil {
		password, _ = u.User.Password()
		where = "postgres at " + u.Host + u.Path
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		return nil, redact(fmt.Errorf("sqlstore: parse %s URL: %w", where, err), password)
	}
	where = fmt.Sprintf("postgres at %s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	if cfg.ConnectTimeout == 0 {
		// Without a timeout an unroutable host hangs every caller without a
		// deadline for as long as TCP retries.
		cfg.ConnectTimeout = 10 * time.Second
	}
	// pgx prepares each statement once per connection and keeps it
	// (QueryExecModeCacheStatement, its default; a URL may say otherwise
	// with default_query_exec_mode); the counters trace round trips and
	// cache misses (Counts).
	sh := &shared{dialect: dialectPostgres, where: where, logger: logger}
	cfg.Tracer = &sh.counters
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(pgIdleConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, redact(fmt.Errorf("sqlstore: cannot reach %s: %w", where, err), password)
	}
	sh.db, sh.rdb = db, db
	sh.openMigrationDB = func() (*sql.DB, error) {
		mcfg := cfg.Copy()
		mcfg.Tracer = nil
		mdb := stdlib.OpenDB(*mcfg)
		mdb.SetMaxOpenConns(2)
		return mdb, nil
	}
	logger.Debug("database opened", "dialect", dialectPostgres, "where", where, "query_exec_mode", cfg.DefaultQueryExecMode.String())
	return &Store{shared: sh, w: counting{q: db, c: &sh.counters, lost: sh.dropIdle}, r: counting{q: db, c: &sh.counters, lost: sh.dropIdle}}, nil
}

// pgIdleConns is how many idle PostgreSQL connections the pool keeps.
const pgIdleConns = 10

// dropIdle closes the pool's idle connections after one was found lost:
// when the server restarted or an operator terminated pushauth's backends,
// the others are dead too, and the retry must not pick one of them.
func (sh *shared) dropIdle() {
	if sh.dialect != dialectPostgres {
		return
	}
	sh.db.SetMaxIdleConns(0)
	sh.db.SetMaxIdleConns(pgIdleConns)
}

// sqlitePragmas are set on every SQLite connection. WAL lets readers run
// beside the writer; busy_timeout covers other processes (and migrations)
// holding the file.
const sqlitePragmas = "_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"

func openSQLite(ctx context.Context, path string, logger *slog.Logger) (*Store, error) {
	where := "sqlite at " + path
	switch {
	case path == "":
		return nil, errors.New("sqlstore: sqlite URL names no file")
	case strings.Contains(path, "?"):
		return nil, fmt.Errorf("sqlstore: %s: sqlite URL takes no parameters", where)
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		// The writer and the reader pool must see one database; an in-memory
		// database is private to each connection.
		return nil, fmt.Errorf("sqlstore: %s: only plain file paths are supported", where)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlstore: %s: create directory: %w", where, err)
		}
	}
	writerDSN := path + "?" + sqlitePragmas + "&_pragma=journal_mode(WAL)&_txlock=immediate"
	openWriter := func() (*sql.DB, error) {
		db, err := sql.Open("sqlite", writerDSN)
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
		return db, nil
	}
	db, err := openWriter()
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", where, err)
	}
	// The writer goes first: it creates the file and switches it to WAL,
	// which the read-only connections could not do.
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlstore: cannot open %s: %w", where, err)
	}
	// The readers map the file (up to 256 MiB) instead of copying pages
	// through read calls; the writer keeps ordinary I/O.
	rdb, err := sql.Open("sqlite", path+"?"+sqlitePragmas+"&_pragma=query_only(1)&_pragma=mmap_size(268435456)")
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlstore: open %s: %w", where, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)
	rdb.SetConnMaxIdleTime(5 * time.Minute)
	if err := rdb.PingContext(ctx); err != nil {
		_ = db.Close()
		_ = rdb.Close()
		return nil, fmt.Errorf("sqlstore: cannot open %s for reading: %w", where, err)
	}
	sh := &shared{
		dialect:         dialectSQLite,
		where:           where,
		logger:          logger,
		db:              db,
		rdb:             rdb,
		openMigrationDB: openWriter,
		wcache:          newStmtCache(db),
		rcache:          newStmtCache(rdb),
	}
	logger.Debug("database opened", "dialect", dialectSQLite, "where", where)
	return &Store{shared: sh, w: counting{q: cachedDB{db, sh.wcache}, c: &sh.counters}, r: counting{q: cachedDB{rdb, sh.rcache}, c: &sh.counters}}, nil
}

// Dialect is "postgres" or "sqlite", for callers that must tell them apart
// (health output, tests).
func (s *Store) Dialect() string { return s.dialect }

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if s.tx != nil {
		var one int
		if err := s.tx.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
			return fmt.Errorf("ping %s: %w", s.where, err)
		}
		return nil
	}
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.where, err)
	}
	if s.rdb != s.db {
		if err := s.rdb.PingContext(ctx); err != nil {
			return fmt.Errorf("ping %s (readers): %w", s.where, err)
		}
	}
	return nil
}

// Close implements store.Store. Closing twice is harmless; closing the Store
// given to an InTx callback is an error, since the transaction owns nothing.
func (s *Store) Close() error {
	if s.tx != nil {
		return errors.New("sqlstore: Close called inside InTx")
	}
	s.closeOnce.Do(func() {
		var err error
		for _, c := range []*stmtCache{s.wcache, s.rcache} {
			if c != nil {
				err = errors.Join(err, c.close())
			}
		}
		err = errors.Join(err, s.db.Close())
		if s.rdb != s.db {
			err = errors.Join(err, s.rdb.Close())
		}
		for _, c := range []*stmtCache{s.wcache, s.rcache} {
			if c != nil {
				c.wg.Wait() // background prepares end with the pool
			}
		}
		if err != nil {
			s.closeErr = fmt.Errorf("close %s: %w", s.where, err)
		}
	})
	return s.closeErr
}

// InTx implements store.Store. On SQLite the transaction starts with BEGIN
// IMMEDIATE, so it holds the write lock from the start and cannot fail
// half-way because another writer got in first.
//
// A transaction that found its connection lost before anything reached the
// database (BEGIN or its first statement failed with a transient error) is
// run once more on another connection; one that failed later, or whose
// COMMIT failed, is not, since it may have committed.
func (s *Store) InTx(ctx context.Context, fn func(tx store.Store) error) error {
	if s.tx != nil {
		return errors.New("sqlstore: InTx called inside InTx")
	}
	retry, err := s.inTx(ctx, fn)
	if retry && ctx.Err() == nil {
		s.counters.retries.Add(1)
		s.dropIdle()
		s.logger.Warn("database connection lost before the transaction started; retrying once", "where", s.where, "err", err)
		_, err = s.inTx(ctx, fn)
	}
	return err
}

// inTx runs one attempt of InTx; retry says it failed on a lost connection
// before any statement got through.
func (s *Store) inTx(ctx context.Context, fn func(tx store.Store) error) (retry bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return store.Transient(err), fmt.Errorf("begin transaction: %w", err)
	}
	var txq querier = tx
	if s.wcache != nil {
		txq = cachedTx{tx, s.wcache}
	}
	progress := &txProgress{}
	q := counting{q: txq, c: &s.counters, inTx: true, ok: progress}
	txs := &Store{shared: s.shared, w: q, r: q, tx: tx}
	committed := false
	defer func() {
		if committed {
			return
		}
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			s.logger.Warn("rollback failed", "where", s.where, "err", rbErr)
		}
	}()
	if err := fn(txs); err != nil {
		return progress.failedFirst && !progress.sent && store.Transient(err), err
	}
	s.counters.commit(ctx)
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit transaction: %w", mapErr(err))
	}
	committed = true
	return false, nil
}

// q returns query in the dialect's placeholder syntax.
func (s *Store) q(query string) string {
	if s.dialect != dialectPostgres {
		return query
	}
	if v, ok := s.rebound.Load(query); ok {
		return v.(string)
	}
	r := rebind(query)
	s.rebound.Store(query, r)
	return r
}

// rebind turns ? placeholders into $1, $2, … leaving quoted text alone.
func rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// mapErr turns driver errors into the store's sentinels, keeping the driver
// error in the chain for the message.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case "23503": // foreign_key_violation
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
		return err
	}
	var liteErr *sqlite.Error
	if errors.As(err, &liteErr) {
		switch liteErr.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return fmt.Errorf("%w: %w", store.ErrNotFound, err)
		}
	}
	return err
}

// redactedError hides a password that a driver may have echoed, while
// keeping the original error reachable for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), password, "xxxxx"), err: err}
}

// timeArg is how a time is stored: unix microseconds, NULL when zero.
func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

// bytesArg stores nil as NULL in both dialects (SQLite would store an empty
// blob).
func bytesArg(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// Connection states as SQL literals, for WHERE clauses on connections. A
// bound parameter compared with connections.status made SQLite re-prepare
// the statement on every run: the planner matches the partial index
// connections_active_key (WHERE status = 'ACTIVE') against the parameter's
// value and expires the statement whenever that parameter is bound again
// (a tenth of a flow's CPU). Literals keep the prepared form.
const (
	sqlActive  = "'" + store.ConnectionActive + "'"
	sqlPending = "'" + store.ConnectionPending + "'"
)

// timeCol scans what timeArg stored.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*c.t = time.Time{}
	case int64:
		*c.t = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("sqlstore: time column holds %T, want integer", v)
	}
	return nil
}
