package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Revoked devices and removed connections.

// RemoveTargets implements store.TargetRemovals in one transaction (the
// Store's own, or a new one): the requests are picked, then their targets
// marked. A concurrent decision is harmless: the caller re-reads before it
// cancels anything.
func (s *Store) RemoveTargets(ctx context.Context, f store.TargetFilter, detail string, at time.Time) ([]store.Request, error) {
	if f.DeviceID == "" {
		return nil, fmt.Errorf("remove targets: no device given")
	}
	if at.IsZero() {
		return nil, fmt.Errorf("remove targets of device %q: no time given", f.DeviceID)
	}
	query := "SELECT " + qualify("r", requestColumns) + ` FROM requests r JOIN request_targets t ON t.request_id = r.id
		WHERE t.device_id = ? AND t.delivery <> ? AND r.status = ? AND r.expires_at > ?`
	args := []any{f.DeviceID, store.DeliveryRemoved, store.StatusPending, at.UnixMicro()}
	if f.RelyingPartyID != "" {
		query += " AND r.relying_party_id = ?"
		args = append(args, f.RelyingPartyID)
	}
	if f.UserRef != "" {
		query += " AND r.user_ref = ?"
		args = append(args, f.UserRef)
	}
	if f.Kind != "" {
		query += " AND r.kind = ?"
		args = append(args, f.Kind)
	}
	query += " ORDER BY r.created_at NULLS FIRST, r.id"
	var out []store.Request
	err := s.atomically(ctx, func(tx *Store) error {
		// In a transaction r is w, so this sees the latest writes.
		rs, err := tx.queryRequests(ctx, "pick requests", query, args...)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if _, err := tx.w.ExecContext(ctx, tx.q("UPDATE request_targets SET delivery = ?, detail = ?, updated_at = ? WHERE request_id = ? AND device_id = ?"),
				store.DeliveryRemoved, detail, timeArg(at), r.ID, f.DeviceID); err != nil {
				return fmt.Errorf("target of request %q: %w", r.ID, mapErr(err))
			}
		}
		out = rs
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("remove targets of device %q: %w", f.DeviceID, err)
	}
	return out, nil
}

// LockActiveConnection implements store.TargetRemovals. On PostgreSQL the
// row is read FOR UPDATE inside a transaction: a concurrent removal or
// transfer waits for the caller, or the caller waits for it and then finds
// the row no longer matches. SQLite transactions are serialized already.
func (s *Store) LockActiveConnection(ctx context.Context, relyingPartyID, userRef, deviceID string) (store.Connection, error) {
	c, err := scanConnection(s.w.QueryRowContext(ctx, s.q("SELECT "+connectionColumns+
		" FROM connections WHERE relying_party_id = ? AND user_ref = ? AND device_id = ? AND status = "+sqlActive+s.forUpdate()),
		relyingPartyID, userRef, deviceID))
	if err != nil {
		return store.Connection{}, fmt.Errorf("lock active connection of device %q: %w", deviceID, mapErr(err))
	}
	return c, nil
}
