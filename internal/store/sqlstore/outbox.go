package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// The push outbox.

// AddPushes implements store.PushOutbox in one statement.
func (s *Store) AddPushes(ctx context.Context, jobs []store.QueuedPush) error {
	if len(jobs) == 0 {
		return nil
	}
	args := make([]any, 0, 3*len(jobs))
	for _, j := range jobs {
		args = append(args, j.ID, bytesArg(j.Job), j.CreatedAt.UnixMicro())
	}
	rows := strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", len(jobs)), ", ")
	if _, err := s.w.ExecContext(ctx, s.q("INSERT INTO push_outbox (id, job, created_at) VALUES "+rows), args...); err != nil {
		return fmt.Errorf("add %d pushes to the outbox: %w", len(jobs), mapErr(err))
	}
	return nil
}

// ClaimPushes implements store.PushOutbox in one statement. On PostgreSQL
// the rows are picked FOR UPDATE SKIP LOCKED, so relays on several replicas
// take disjoint rows without waiting for each other; the pick is a
// MATERIALIZED CTE so it runs once (see ExpireRequests). The hold test is
// repeated in the UPDATE so a row held meanwhile is not taken twice.
func (s *Store) ClaimPushes(ctx context.Context, createdBy, now, until time.Time, limit int) ([]store.QueuedPush, error) {
	if limit <= 0 {
		return nil, nil
	}
	pick := "SELECT id FROM push_outbox WHERE created_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?) ORDER BY created_at, id LIMIT ?"
	if s.dialect == dialectPostgres {
		pick += " FOR UPDATE SKIP LOCKED"
	}
	rows, err := s.w.QueryContext(ctx, s.q("WITH due AS MATERIALIZED ("+pick+`)
		UPDATE push_outbox SET claimed_until = ?
		WHERE id IN (SELECT id FROM due) AND (claimed_until IS NULL OR claimed_until <= ?)
		RETURNING id, job, created_at`),
		createdBy.UnixMicro(), now.UnixMicro(), limit, until.UnixMicro(), now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("claim pushes: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.QueuedPush
	for rows.Next() {
		var j store.QueuedPush
		if err := rows.Scan(&j.ID, &j.Job, timeCol{&j.CreatedAt}); err != nil {
			return nil, fmt.Errorf("claim pushes: %w", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim pushes: %w", mapErr(err))
	}
	// RETURNING has no order of its own.
	slices.SortFunc(out, func(a, b store.QueuedPush) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// DeletePushes implements store.PushOutbox in one statement.
func (s *Store) DeletePushes(ctx context.Context, ids []string) error {
	return s.byIDs(ctx, "DELETE FROM push_outbox", "delete pushes of the outbox", ids)
}

// ReleasePushes implements store.PushOutbox in one statement.
func (s *Store) ReleasePushes(ctx context.Context, ids []string) error {
	return s.byIDs(ctx, "UPDATE push_outbox SET claimed_until = NULL", "release pushes of the outbox", ids)
}

// byIDs runs stmt (a DELETE or UPDATE without WHERE) on the rows with these
// ids, in one statement; what names it in errors.
func (s *Store) byIDs(ctx context.Context, stmt, what string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")
	if _, err := s.w.ExecContext(ctx, s.q(stmt+" WHERE id IN ("+marks+")"), args...); err != nil {
		return fmt.Errorf("%s (%d): %w", what, len(ids), mapErr(err))
	}
	return nil
}
