package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Retention: bounded deletes of old rows (see store.Retention).
//
// Each delete first picks at most limit keys, oldest first, and deletes those.
// On PostgreSQL the pick locks its rows and skips rows another sweeper has
// locked (FOR UPDATE SKIP LOCKED), so concurrent sweepers split the work
// instead of waiting on each other; a row deleted under a sweeper's feet is
// simply not deleted (nor counted) twice. SQLite runs one writer at a time.

// idChunk bounds how many keys one IN (...) list carries.
const idChunk = 500

// checkBatch rejects arguments that would delete nothing or everything.
func checkBatch(cutoff time.Time, limit int) error {
	switch {
	case cutoff.IsZero():
		return fmt.Errorf("no cutoff given")
	case limit <= 0:
		return fmt.Errorf("limit must be positive, got %d", limit)
	}
	return nil
}

// deleteOldest deletes at most limit rows of table that match where (with
// args), picked in order, by their key column, in one statement.
func (s *Store) deleteOldest(ctx context.Context, table, key, where, order string, args []any, limit int) (int64, error) {
	pick := "SELECT " + key + " FROM " + table + " WHERE " + where + " ORDER BY " + order + " LIMIT ?"
	if s.dialect == dialectPostgres {
		pick += " FOR UPDATE SKIP LOCKED"
	}
	// MATERIALIZED: the pick runs once, so LIMIT bounds the delete whatever
	// plan the database chooses.
	query := "WITH due AS MATERIALIZED (" + pick + ") DELETE FROM " + table + " WHERE " + key + " IN (SELECT " + key + " FROM due)"
	res, err := s.w.ExecContext(ctx, s.q(query), append(args, limit)...)
	if err != nil {
		return 0, mapErr(err)
	}
	return res.RowsAffected()
}

// DeleteExpiredVerifications implements store.Retention.
func (s *Store) DeleteExpiredVerifications(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	if err := checkBatch(cutoff, limit); err != nil {
		return 0, fmt.Errorf("delete expired verifications: %w", err)
	}
	n, err := s.deleteOldest(ctx, "phone_verifications", "id",
		"expires_at IS NULL OR expires_at < ?", "expires_at, id", []any{cutoff.UnixMicro()}, limit)
	if err != nil {
		return 0, fmt.Errorf("delete expired verifications: %w", err)
	}
	return n, nil
}

// DeleteOutboxMessagesBefore implements store.Retention.
func (s *Store) DeleteOutboxMessagesBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	if err := checkBatch(cutoff, limit); err != nil {
		return 0, fmt.Errorf("delete outbox messages: %w", err)
	}
	n, err := s.deleteOldest(ctx, "sms_outbox", "id",
		"created_at IS NULL OR created_at < ?", "id", []any{cutoff.UnixMicro()}, limit)
	if err != nil {
		return 0, fmt.Errorf("delete outbox messages: %w", err)
	}
	return n, nil
}

// DeleteAuditEventsBefore implements store.Retention.
func (s *Store) DeleteAuditEventsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	if err := checkBatch(cutoff, limit); err != nil {
		return 0, fmt.Errorf("delete audit events: %w", err)
	}
	n, err := s.deleteOldest(ctx, "audit_events", "id",
		"time < ?", "time, id", []any{cutoff.UnixMicro()}, limit)
	if err != nil {
		return 0, fmt.Errorf("delete audit events: %w", err)
	}
	return n, nil
}

// DeleteExpiredPairingPhrases implements store.Retention.
func (s *Store) DeleteExpiredPairingPhrases(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	if err := checkBatch(cutoff, limit); err != nil {
		return 0, fmt.Errorf("delete expired pairing phrases: %w", err)
	}
	n, err := s.deleteOldest(ctx, "pairing_phrases", "hash",
		"expires_at IS NULL OR expires_at < ?", "expires_at, hash", []any{cutoff.UnixMicro()}, limit)
	if err != nil {
		return 0, fmt.Errorf("delete expired pairing phrases: %w", err)
	}
	return n, nil
}

// DeleteFinishedRequests implements store.Retention in one transaction: it
// picks the requests (locking them on PostgreSQL), deletes their targets
// first (the foreign key), then the requests.
func (s *Store) DeleteFinishedRequests(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	if err := checkBatch(cutoff, limit); err != nil {
		return 0, fmt.Errorf("delete finished requests: %w", err)
	}
	var deleted int64
	err := s.atomically(ctx, func(tx *Store) error {
		deleted = 0
		pick := "SELECT id FROM requests WHERE status <> ? AND decided_at < ? ORDER BY decided_at, id LIMIT ?"
		if tx.dialect == dialectPostgres {
			pick += " FOR UPDATE SKIP LOCKED"
		}
		rows, err := tx.w.QueryContext(ctx, tx.q(pick), store.StatusPending, cutoff.UnixMicro(), limit)
		if err != nil {
			return mapErr(err)
		}
		var ids []any
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return mapErr(err)
		}
		rows.Close()
		for start := 0; start < len(ids); start += idChunk {
			chunk := ids[start:min(start+idChunk, len(ids))]
			in := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ") + ")"
			if _, err := tx.w.ExecContext(ctx, tx.q("DELETE FROM request_targets WHERE request_id IN "+in), chunk...); err != nil {
				return mapErr(err)
			}
			res, err := tx.w.ExecContext(ctx, tx.q("DELETE FROM requests WHERE id IN "+in), chunk...)
			if err != nil {
				return mapErr(err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			deleted += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete finished requests: %w", err)
	}
	return deleted, nil
}
