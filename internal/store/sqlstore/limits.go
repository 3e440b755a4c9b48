package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Rolling-window rate limits and guess budgets.

// lockRateKeys serializes takers of the same keys. On PostgreSQL the upsert
// locks each key's row until the transaction ends, in sorted order so two
// takers of overlapping keys cannot deadlock. SQLite needs nothing: its
// transactions are serialized already (BEGIN IMMEDIATE).
func (s *Store) lockRateKeys(ctx context.Context, keys []string) error {
	if s.dialect != dialectPostgres {
		return nil
	}
	for _, k := range keys {
		if _, err := s.w.ExecContext(ctx, s.q("INSERT INTO rate_keys (key) VALUES (?) ON CONFLICT (key) DO UPDATE SET key = excluded.key"), k); err != nil {
			return mapErr(err)
		}
	}
	return nil
}

// TakeRate implements store.Rates in one transaction (the Store's own, or a
// new one): lock the keys (PostgreSQL), then one statement that counts
// every limit's window and records the events only when all have room. The
// lock is a statement of its own so that the counting statement's snapshot
// is taken after the lock is held and sees every event of an earlier taker.
// Limits that are all Serialized, inside the caller's transaction, skip the
// lock: the caller's own lock, taken in an earlier statement, does its job.
func (s *Store) TakeRate(ctx context.Context, now time.Time, limits ...store.RateLimit) (store.RateTicket, error) {
	if len(limits) == 0 {
		return store.RateTicket{}, nil
	}
	longest := map[string]time.Duration{}
	serialized := s.tx != nil // the caller's lock serializes every key
	for i, l := range limits {
		serialized = serialized && l.Serialized
		if l.Key == "" || l.Window <= 0 {
			return store.RateTicket{}, fmt.Errorf("take rate: limit %d needs a key and a positive window", i)
		}
		if l.Max <= 0 {
			return store.RateTicket{}, &store.LimitError{Key: l.Key, Index: i, Exhausted: true}
		}
		longest[l.Key] = max(longest[l.Key], l.Window)
	}
	keys := make([]string, 0, len(longest))
	for k := range longest {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var t store.RateTicket
	err := s.atomically(ctx, func(tx *Store) error {
		if !serialized {
			if err := tx.lockRateKeys(ctx, keys); err != nil {
				return err
			}
		}
		// One statement records an event per key if every limit has room;
		// it records none otherwise.
		var q strings.Builder
		var args []any
		if len(keys) == 1 {
			q.WriteString("INSERT INTO rate_events (key, at, expires_at) SELECT CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT) WHERE ")
			args = append(args, keys[0], now.UnixMicro(), now.Add(longest[keys[0]]).UnixMicro())
		} else {
			q.WriteString("INSERT INTO rate_events (key, at, expires_at) SELECT column1, CAST(? AS BIGINT), column2 FROM (VALUES ")
			args = append(args, now.UnixMicro())
			for i, k := range keys {
				if i > 0 {
					q.WriteString(", ")
				}
				q.WriteString("(CAST(? AS TEXT), CAST(? AS BIGINT))")
				args = append(args, k, now.Add(longest[k]).UnixMicro())
			}
			q.WriteString(") AS v WHERE ")
		}
		for i, l := range limits {
			if i > 0 {
				q.WriteString(" AND ")
			}
			q.WriteString("(SELECT count(*) FROM rate_events WHERE key = ? AND at > ?) < ?")
			args = append(args, l.Key, now.Add(-l.Window).UnixMicro(), l.Max)
		}
		q.WriteString(" RETURNING id")
		rows, err := tx.w.QueryContext(ctx, tx.q(q.String()), args...)
		if err != nil {
			return mapErr(err)
		}
		t.IDs = t.IDs[:0]
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			t.IDs = append(t.IDs, id)
		}
		if err := rows.Close(); err != nil {
			return mapErr(err)
		}
		if err := rows.Err(); err != nil {
			return mapErr(err)
		}
		if len(t.IDs) > 0 {
			return nil
		}
		// Refused: find the first full limit and when it has room again.
		for i, l := range limits {
			since := now.Add(-l.Window).UnixMicro()
			var n int
			if err := tx.w.QueryRowContext(ctx, tx.q("SELECT count(*) FROM rate_events WHERE key = ? AND at > ?"), l.Key, since).Scan(&n); err != nil {
				return mapErr(err)
			}
			if n < l.Max {
				continue
			}
			// Room comes back when the (n-Max+1)-th oldest counted event
			// leaves the window.
			var at int64
			if err := tx.w.QueryRowContext(ctx, tx.q("SELECT at FROM rate_events WHERE key = ? AND at > ? ORDER BY at, id LIMIT 1 OFFSET ?"),
				l.Key, since, n-l.Max).Scan(&at); err != nil {
				return mapErr(err)
			}
			return &store.LimitError{Key: l.Key, Index: i, Until: time.UnixMicro(at).UTC().Add(l.Window)}
		}
		return errors.New("no event recorded, yet every limit has room")
	})
	if err != nil {
		if errors.Is(err, store.ErrLimited) {
			return store.RateTicket{}, err
		}
		return store.RateTicket{}, fmt.Errorf("take rate: %w", err)
	}
	return t, nil
}

// GiveBackRate implements store.Rates.
func (s *Store) GiveBackRate(ctx context.Context, t store.RateTicket) error {
	if len(t.IDs) == 0 {
		return nil
	}
	args := make([]any, len(t.IDs))
	for i, id := range t.IDs {
		args[i] = id
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")
	if _, err := s.w.ExecContext(ctx, s.q("DELETE FROM rate_events WHERE id IN ("+marks+")"), args...); err != nil {
		return fmt.Errorf("give back rate: %w", mapErr(err))
	}
	return nil
}

// CountRate implements store.Rates.
func (s *Store) CountRate(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, s.q("SELECT count(*) FROM rate_events WHERE key = ? AND at > ?"),
		key, now.Add(-window).UnixMicro()).Scan(&n); err != nil {
		return 0, fmt.Errorf("count rate: %w", mapErr(err))
	}
	return n, nil
}

// DeleteRateEventsBefore implements store.Rates; on PostgreSQL it also
// drops the lock rows of keys with no events left.
func (s *Store) DeleteRateEventsBefore(ctx context.Context, t time.Time, limit int) (int64, error) {
	n, err := s.deleteBounded(ctx, "rate_events", "id", "expires_at <= ?", limit, t.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("delete rate events: %w", err)
	}
	if s.dialect == dialectPostgres {
		if _, err := s.w.ExecContext(ctx, "DELETE FROM rate_keys k WHERE NOT EXISTS (SELECT 1 FROM rate_events e WHERE e.key = k.key)"); err != nil {
			return n, fmt.Errorf("delete rate keys: %w", mapErr(err))
		}
	}
	return n, nil
}

// deleteBounded deletes at most limit rows of table matching where.
func (s *Store) deleteBounded(ctx context.Context, table, key, where string, limit int, args ...any) (int64, error) {
	if limit <= 0 {
		return 0, nil
	}
	res, err := s.w.ExecContext(ctx, s.q("DELETE FROM "+table+" WHERE "+key+" IN (SELECT "+key+" FROM "+table+" WHERE "+where+" LIMIT ?)"),
		append(args, limit)...)
	if err != nil {
		return 0, mapErr(err)
	}
	return res.RowsAffected()
}

// Guess budgets.

// SpendGuess implements store.Guesses in one transaction (the Store's own,
// or a new one): the row is created if missing, locked (FOR UPDATE on
// PostgreSQL; SQLite is serialized), checked and counted.
func (s *Store) SpendGuess(ctx context.Context, b store.GuessBudget, now time.Time) (store.GuessState, error) {
	if b.Key == "" {
		return store.GuessState{}, errors.New("spend guess: no key")
	}
	var g store.GuessState
	err := s.atomically(ctx, func(tx *Store) error {
		if _, err := tx.w.ExecContext(ctx, tx.q("INSERT INTO guess_budgets (key, failures, updated_at) VALUES (?, 0, ?) ON CONFLICT (key) DO NOTHING"),
			b.Key, now.UnixMicro()); err != nil {
			return mapErr(err)
		}
		var err error
		if g, err = scanGuess(tx.w.QueryRowContext(ctx, tx.q("SELECT "+guessColumns+" FROM guess_budgets WHERE key = ?"+tx.forUpdate()), b.Key)); err != nil {
			return mapErr(err)
		}
		if now.Before(g.LockedUntil) {
			return &store.LimitError{Key: b.Key, Until: g.LockedUntil}
		}
		if b.Max > 0 && g.Failures >= b.Max {
			return &store.LimitError{Key: b.Key, Exhausted: true}
		}
		g.Failures++
		g.LockedUntil, g.UpdatedAt = time.Time{}, now
		if b.Lockout != nil {
			if d := b.Lockout(g.Failures); d > 0 {
				g.LockedUntil = now.Add(d)
			}
		}
		_, err = tx.w.ExecContext(ctx, tx.q("UPDATE guess_budgets SET failures = ?, locked_until = ?, updated_at = ? WHERE key = ?"),
			g.Failures, timeArg(g.LockedUntil), timeArg(g.UpdatedAt), b.Key)
		return mapErr(err)
	})
	if err != nil {
		if errors.Is(err, store.ErrLimited) {
			return store.GuessState{}, err
		}
		return store.GuessState{}, fmt.Errorf("spend guess: %w", err)
	}
	return g, nil
}

const guessColumns = "key, failures, locked_until, updated_at"

func scanGuess(sc scanner) (store.GuessState, error) {
	var g store.GuessState
	err := sc.Scan(&g.Key, &g.Failures, timeCol{&g.LockedUntil}, timeCol{&g.UpdatedAt})
	return g, err
}

// ResetGuesses implements store.Guesses: a budget at zero is no row.
func (s *Store) ResetGuesses(ctx context.Context, key string, _ time.Time) error {
	if _, err := s.w.ExecContext(ctx, s.q("DELETE FROM guess_budgets WHERE key = ?"), key); err != nil {
		return fmt.Errorf("reset guesses: %w", mapErr(err))
	}
	return nil
}

// GetGuesses implements store.Guesses. It reads on the writer inside a
// transaction and on the readers otherwise.
func (s *Store) GetGuesses(ctx context.Context, key string) (store.GuessState, error) {
	g, err := scanGuess(s.r.QueryRowContext(ctx, s.q("SELECT "+guessColumns+" FROM guess_budgets WHERE key = ?"), key))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.GuessState{Key: key}, nil
	case err != nil:
		return store.GuessState{}, fmt.Errorf("get guesses: %w", mapErr(err))
	}
	return g, nil
}

// DeleteGuessesBefore implements store.Guesses.
func (s *Store) DeleteGuessesBefore(ctx context.Context, t time.Time, limit int) (int64, error) {
	n, err := s.deleteBounded(ctx, "guess_budgets", "key", "updated_at < ? AND (locked_until IS NULL OR locked_until <= ?)", limit, t.UnixMicro(), t.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("delete guess budgets: %w", err)
	}
	return n, nil
}
