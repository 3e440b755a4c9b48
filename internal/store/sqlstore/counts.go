package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"sync/atomic"

	"github.com/pushauth/pushauth/internal/store"
)

// Counts are the SQL statements and commits a Store sent since it was
// opened, on the request path and in background work (ctx marked by
// store.Background) apart. A write outside a transaction is a commit of its
// own; BEGIN and COMMIT are not counted as statements.
type Counts struct {
	Statements, Commits                     int64
	BackgroundStatements, BackgroundCommits int64
}

// Sub returns c - o, the counts between two readings.
func (c Counts) Sub(o Counts) Counts {
	return Counts{c.Statements - o.Statements, c.Commits - o.Commits,
		c.BackgroundStatements - o.BackgroundStatements, c.BackgroundCommits - o.BackgroundCommits}
}

type counters struct {
	statements, commits     atomic.Int64
	bgStatements, bgCommits atomic.Int64
	// retries counts statements and transactions sent again after a lost
	// connection.
	retries atomic.Int64
}

// Counts returns what the Store (and every transaction made from it) sent
// so far. Tests and benchmarks read it to hold the data path to a budget.
func (s *Store) Counts() Counts {
	c := &s.counters
	return Counts{c.statements.Load(), c.commits.Load(), c.bgStatements.Load(), c.bgCommits.Load()}
}

// Retries is how many reads and transactions were sent again because their
// connection was lost.
func (s *Store) Retries() int64 { return s.counters.retries.Load() }

func (c *counters) statement(ctx context.Context, query string, inTx bool) {
	bg := store.IsBackground(ctx)
	if bg {
		c.bgStatements.Add(1)
	} else {
		c.statements.Add(1)
	}
	if !inTx && isWrite(query) {
		c.commit(ctx)
	}
}

func (c *counters) commit(ctx context.Context) {
	if store.IsBackground(ctx) {
		c.bgCommits.Add(1)
	} else {
		c.commits.Add(1)
	}
}

// isWrite tells a statement that changes rows from a plain read.
func isWrite(query string) bool {
	q := strings.TrimSpace(query)
	if len(q) >= 6 && strings.EqualFold(q[:6], "SELECT") {
		return false
	}
	if len(q) >= 4 && strings.EqualFold(q[:4], "WITH") {
		u := strings.ToUpper(q)
		return strings.Contains(u, "UPDATE ") || strings.Contains(u, "INSERT ") || strings.Contains(u, "DELETE ")
	}
	return true
}

// counting is a querier that counts what passes through it, and sends a
// read that found its connection lost once more (see retryable).
type counting struct {
	q    querier
	c    *counters
	inTx bool
	ok   *txProgress // inside a transaction: whether a statement got through
	lost func()      // called before a retry (see shared.dropIdle)
}

func (k counting) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	k.c.statement(ctx, query, k.inTx)
	res, err := k.q.ExecContext(ctx, query, args...)
	if err != nil {
		k.ok.fail()
	} else {
		k.ok.succeed()
	}
	return res, err
}

func (k counting) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	k.c.statement(ctx, query, k.inTx)
	rows, err := k.q.QueryContext(ctx, query, args...)
	if k.retryable(ctx, query, err) {
		rows, err = k.q.QueryContext(ctx, query, args...)
	}
	if err != nil {
		k.ok.fail()
	} else {
		k.ok.succeed()
	}
	return rows, err
}

func (k counting) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	k.c.statement(ctx, query, k.inTx)
	row := k.q.QueryRowContext(ctx, query, args...)
	if k.retryable(ctx, query, row.Err()) {
		row = k.q.QueryRowContext(ctx, query, args...)
	}
	if row.Err() != nil {
		k.ok.fail()
	} else {
		k.ok.succeed()
	}
	return row
}

// retryable says whether a statement that failed with err may be sent once
// more, on another pooled connection: only a read outside a transaction
// (it changed nothing) that found its connection lost, e.g. a PostgreSQL
// backend terminated while idle in the pool.
func (k counting) retryable(ctx context.Context, query string, err error) bool {
	if k.inTx || err == nil || ctx.Err() != nil || isWrite(query) || !store.Transient(err) {
		return false
	}
	k.c.retries.Add(1)
	if k.lost != nil {
		k.lost()
	}
	return true
}

// txProgress records whether any statement of a transaction reached the
// database, which decides whether the whole transaction may be retried.
type txProgress struct{ sent, failedFirst bool }

func (p *txProgress) succeed() {
	if p != nil {
		p.sent = true
	}
}

func (p *txProgress) fail() {
	if p != nil && !p.sent {
		p.failedFirst = true
	}
}
