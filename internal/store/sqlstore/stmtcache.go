package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// maxCachedStatements bounds a pool's statement cache. The store's queries
// are a fixed set but for a few built per call (IN lists, multi-row
// inserts); once the cache is full, new texts run unprepared.
const maxCachedStatements = 512

// stmtCache prepares each query text once per SQLite pool, so a statement
// is parsed once per connection (database/sql keeps the prepared form on
// every connection it has run on) instead of on every call. PostgreSQL
// does not need it: pgx caches prepared statements per connection itself
// (QueryExecModeCacheStatement, the default).
type stmtCache struct {
	db      *sql.DB
	mu      sync.RWMutex
	m       map[string]*sql.Stmt
	pending map[string]bool // being prepared in the background
	closed  bool
	wg      sync.WaitGroup
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: make(map[string]*sql.Stmt), pending: make(map[string]bool)}
}

// lookup returns the cached statement of query, if any.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[query]
}

// stmt returns the prepared statement of query, preparing it now on a
// connection of the pool, or nil to run it unprepared (cache full, or it
// does not prepare: the call then reports why).
func (c *stmtCache) stmt(ctx context.Context, query string) *sql.Stmt {
	if st := c.lookup(query); st != nil {
		return st
	}
	c.mu.RLock()
	full := c.closed || len(c.m) >= maxCachedStatements
	c.mu.RUnlock()
	if full {
		return nil
	}
	// Not under the lock: preparing may wait for a connection that a
	// transaction holds, and that transaction looks up statements.
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if have, ok := c.m[query]; ok || c.closed {
		_ = st.Close()
		return have
	}
	c.m[query] = st
	return st
}

// later prepares query in the background, for a caller inside a
// transaction: that holds the writer pool's only connection, which
// PrepareContext would wait for. The statement is there for the next call.
func (c *stmtCache) later(query string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[query]; ok || c.pending[query] || c.closed || len(c.m)+len(c.pending) >= maxCachedStatements {
		return
	}
	c.pending[query] = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		st, err := c.db.PrepareContext(context.Background(), query)
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.pending, query)
		switch {
		case err != nil:
		case c.closed:
			_ = st.Close()
		default:
			c.m[query] = st
		}
	}()
}

// close closes every cached statement. Call it before closing the pool,
// which ends background prepares that wait for a connection.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var first error
	for q, st := range c.m {
		if err := st.Close(); err != nil && first == nil {
			first = err
		}
		delete(c.m, q)
	}
	return first
}

// cachedDB is a querier on a pool that runs cached statements.
type cachedDB struct {
	db *sql.DB
	c  *stmtCache
}

func (q cachedDB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := q.c.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.db.ExecContext(ctx, query, args...)
}

func (q cachedDB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := q.c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.db.QueryContext(ctx, query, args...)
}

func (q cachedDB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.c.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.db.QueryRowContext(ctx, query, args...)
}

// cachedTx runs cached statements inside a transaction: tx.StmtContext
// reuses the form prepared on the transaction's connection (SQLite has one
// writer connection, so after the first call it always has it); the
// transaction closes them when it ends.
type cachedTx struct {
	tx *sql.Tx
	c  *stmtCache
}

// stmt is the cached statement of query on this transaction, or nil (then
// prepared in the background for the next call).
func (q cachedTx) stmt(ctx context.Context, query string) *sql.Stmt {
	st := q.c.lookup(query)
	if st == nil {
		q.c.later(query)
		return nil
	}
	return q.tx.StmtContext(ctx, st)
}

func (q cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := q.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return q.tx.ExecContext(ctx, query, args...)
}

func (q cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return q.tx.QueryContext(ctx, query, args...)
}

func (q cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.tx.QueryRowContext(ctx, query, args...)
}
