package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Joined reads of the request path.

// GetRequestWithTargets implements store.RequestPath in one statement.
func (s *Store) GetRequestWithTargets(ctx context.Context, id string) (store.Request, []store.RequestTarget, error) {
	rows, err := s.r.QueryContext(ctx, s.q("SELECT "+qualify("r", requestColumns)+
		`, t.device_id, t.delivery, t.detail, t.updated_at, t.seen_at
		FROM requests r LEFT JOIN request_targets t ON t.request_id = r.id
		WHERE r.id = ? ORDER BY t.device_id`), id)
	if err != nil {
		return store.Request{}, nil, fmt.Errorf("get request %q: %w", id, mapErr(err))
	}
	defer rows.Close()
	var r store.Request
	var targets []store.RequestTarget
	found := false
	for rows.Next() {
		var nm string
		var dev, delivery, detail sql.NullString
		var t store.RequestTarget
		if err := rows.Scan(&r.ID, &r.Kind, &r.RelyingPartyID, &r.UserRef, &r.ConnectionID, &r.AccountLabel,
			&r.Context.AppName, &r.Context.IPAddress, &r.Context.Location, &r.Context.Browser, &r.Context.Action,
			&nm, &r.NumberHash, &r.Status, &r.Reason,
			timeCol{&r.CreatedAt}, timeCol{&r.ExpiresAt}, timeCol{&r.DecidedAt},
			&r.DecidedBy, &r.Payload, &r.Signature, &r.AutoApproved, &r.LocationRuleID,
			&dev, &delivery, &detail, timeCol{&t.UpdatedAt}, timeCol{&t.SeenAt}); err != nil {
			return store.Request{}, nil, fmt.Errorf("get request %q: %w", id, err)
		}
		r.NumberMatching = store.NumberMatching(nm)
		found = true
		if dev.Valid {
			t.RequestID, t.DeviceID, t.Delivery, t.Detail = r.ID, dev.String, delivery.String, detail.String
			targets = append(targets, t)
		}
	}
	if err := rows.Err(); err != nil {
		return store.Request{}, nil, fmt.Errorf("get request %q: %w", id, mapErr(err))
	}
	if !found {
		return store.Request{}, nil, fmt.Errorf("get request %q: %w", id, store.ErrNotFound)
	}
	return r, targets, nil
}

// ListUserDevices implements store.RequestPath in one statement. Oldest is
// by the connection's CreatedAt, then its ID.
func (s *Store) ListUserDevices(ctx context.Context, relyingPartyID, userRef string) ([]store.UserDevice, error) {
	rows, err := s.r.QueryContext(ctx, s.q("SELECT "+qualify("c", connectionColumns)+", "+qualify("d", deviceColumns)+
		` FROM connections c JOIN devices d ON d.id = c.device_id
		WHERE c.relying_party_id = ? AND c.user_ref = ? AND c.status = `+sqlActive+`
		ORDER BY c.created_at NULLS FIRST, c.id`), relyingPartyID, userRef)
	if err != nil {
		return nil, fmt.Errorf("list user devices: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.UserDevice
	for rows.Next() {
		var u store.UserDevice
		c, d := &u.Connection, &u.Device
		if err := rows.Scan(&c.ID, &c.RelyingPartyID, &c.UserRef, &c.DeviceID, &c.AccountLabel, &c.Status,
			timeCol{&c.CreatedAt}, timeCol{&c.ActivatedAt}, timeCol{&c.RemovedAt},
			&d.ID, &d.CredentialPrefix, &d.CredentialHash, &d.PhoneNumber, &d.PublicKey, &d.Platform, &d.PushToken,
			&d.PushTokenDead, &d.Name, &d.AppVersion, timeCol{&d.CreatedAt}, timeCol{&d.LastSeenAt}, timeCol{&d.RevokedAt}, &d.Locale); err != nil {
			return nil, fmt.Errorf("list user devices: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list user devices: %w", mapErr(err))
	}
	return out, nil
}

// LockDecider implements store.RequestPath: one statement when the device
// is connected (FOR UPDATE OF the connection on PostgreSQL; SQLite's
// transaction is serialized already), a second one to tell why not
// otherwise.
func (s *Store) LockDecider(ctx context.Context, relyingPartyID, userRef, deviceID string) (store.DeciderState, error) {
	lock := ""
	if s.tx != nil && s.dialect == dialectPostgres {
		lock = " FOR UPDATE OF c"
	}
	st := store.DeciderState{User: store.UserState{RelyingPartyID: relyingPartyID, UserRef: userRef}}
	var revoked timeColNull
	var failures sql.NullInt64
	var backoff, muted, totpLocked, updated timeColNull
	var totpFailures sql.NullInt64
	err := s.w.QueryRowContext(ctx, s.q(`SELECT d.revoked_at, u.consecutive_failures, u.backoff_until, u.muted_until,
			u.totp_failures, u.totp_locked_until, u.updated_at
		FROM connections c JOIN devices d ON d.id = c.device_id
		LEFT JOIN user_states u ON u.relying_party_id = c.relying_party_id AND u.user_ref = c.user_ref
		WHERE c.relying_party_id = ? AND c.user_ref = ? AND c.device_id = ? AND c.status = `+sqlActive+lock),
		relyingPartyID, userRef, deviceID).
		Scan(&revoked, &failures, &backoff, &muted, &totpFailures, &totpLocked, &updated)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		d, err := s.GetDevice(ctx, deviceID)
		if errors.Is(err, store.ErrNotFound) {
			return st, nil
		}
		if err != nil {
			return store.DeciderState{}, fmt.Errorf("lock decider %q: %w", deviceID, err)
		}
		st.Registered = d.RevokedAt.IsZero()
		return st, nil
	case err != nil:
		return store.DeciderState{}, fmt.Errorf("lock decider %q: %w", deviceID, mapErr(err))
	}
	st.Connected, st.Registered = true, revoked.t.IsZero()
	st.User.ConsecutiveFailures, st.User.TOTPFailures = int(failures.Int64), int(totpFailures.Int64)
	st.User.BackoffUntil, st.User.MutedUntil, st.User.TOTPLockedUntil, st.User.UpdatedAt = backoff.t, muted.t, totpLocked.t, updated.t
	return st, nil
}

// timeColNull scans a time that may be NULL (a LEFT JOIN's missing row).
type timeColNull struct{ t time.Time }

func (c *timeColNull) Scan(v any) error { return timeCol{&c.t}.Scan(v) }

// LockUserPending implements store.RequestPath. On SQLite, whose
// transactions are serialized, the state and the pending requests are one
// statement (a LEFT JOIN from the state row). On PostgreSQL the lock is a
// statement of its own so that the list, a second statement, takes its
// snapshot after the lock is held and sees every request an earlier holder
// committed. A missing state row is created first, as UpdateUserState does.
func (s *Store) LockUserPending(ctx context.Context, relyingPartyID, userRef, kind string, now time.Time) (store.UserState, []store.Request, error) {
	if s.tx == nil {
		return store.UserState{}, nil, fmt.Errorf("lock user pending: needs a transaction")
	}
	u, pending, err := s.lockUserPending(ctx, relyingPartyID, userRef, kind, now)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := s.w.ExecContext(ctx, s.q(`INSERT INTO user_states (relying_party_id, user_ref, consecutive_failures)
			VALUES (?, ?, 0) ON CONFLICT (relying_party_id, user_ref) DO NOTHING`), relyingPartyID, userRef); err != nil {
			return store.UserState{}, nil, fmt.Errorf("lock user pending: %w", mapErr(err))
		}
		u, pending, err = s.lockUserPending(ctx, relyingPartyID, userRef, kind, now)
	}
	if err != nil {
		return store.UserState{}, nil, fmt.Errorf("lock user pending of %q/%q: %w", relyingPartyID, userRef, mapErr(err))
	}
	return u, pending, nil
}

// lockUserPending is LockUserPending once; sql.ErrNoRows when the user has
// no state row.
func (s *Store) lockUserPending(ctx context.Context, relyingPartyID, userRef, kind string, now time.Time) (store.UserState, []store.Request, error) {
	if s.dialect == dialectPostgres {
		u, err := scanUserState(s.w.QueryRowContext(ctx, s.q("SELECT "+userStateColumns+
			" FROM user_states WHERE relying_party_id = ? AND user_ref = ? FOR UPDATE"), relyingPartyID, userRef))
		if err != nil {
			return store.UserState{}, nil, err
		}
		pending, err := s.ListUserPendingRequests(ctx, relyingPartyID, userRef, kind, now)
		return u, pending, err
	}
	rows, err := s.w.QueryContext(ctx, s.q("SELECT "+qualify("u", userStateColumns)+", "+qualify("r", requestColumns)+
		` FROM user_states u LEFT JOIN requests r ON r.relying_party_id = u.relying_party_id AND r.user_ref = u.user_ref
			AND r.status = ? AND r.kind = ? AND r.expires_at > ?
		WHERE u.relying_party_id = ? AND u.user_ref = ?
		ORDER BY r.created_at NULLS FIRST, r.id`),
		store.StatusPending, kind, now.UnixMicro(), relyingPartyID, userRef)
	if err != nil {
		return store.UserState{}, nil, err
	}
	defer rows.Close()
	var u store.UserState
	var pending []store.Request
	found := false
	for rows.Next() {
		var r store.Request
		var nm string
		rd := requestDests(&r, &nm)
		for i := range rd {
			rd[i] = orZero{rd[i]} // the LEFT JOIN's side
		}
		if err := rows.Scan(append(userStateDests(&u), rd...)...); err != nil {
			return store.UserState{}, nil, err
		}
		found = true
		if r.ID != "" {
			r.NumberMatching = store.NumberMatching(nm)
			pending = append(pending, r)
		}
	}
	if err := rows.Err(); err != nil {
		return store.UserState{}, nil, err
	}
	if !found {
		return store.UserState{}, nil, sql.ErrNoRows
	}
	return u, pending, nil
}

// orZero scans NULL as the zero value, for columns of the nullable side of
// an outer join.
type orZero struct{ dst any }

func (o orZero) Scan(v any) error {
	switch d := o.dst.(type) {
	case sql.Scanner:
		return d.Scan(v)
	case *string:
		return scanOrZero(d, v)
	case *[]byte:
		return scanOrZero(d, v)
	case *bool:
		return scanOrZero(d, v)
	case *int:
		return scanOrZero(d, v)
	}
	return fmt.Errorf("sqlstore: orZero cannot scan into %T", o.dst)
}

func scanOrZero[T any](p *T, v any) error {
	var n sql.Null[T]
	if err := n.Scan(v); err != nil {
		return err
	}
	*p = n.V
	return nil
}

// ListRequestsSettledSince implements store.RequestPath in one statement
// (index requests_decided_at_idx).
func (s *Store) ListRequestsSettledSince(ctx context.Context, since time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, s.q("SELECT id FROM requests WHERE decided_at >= ? LIMIT ?"), since.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("list requests settled since %s: %w", since.Format(time.RFC3339Nano), mapErr(err))
	}
	return collect(rows, "list requests settled since", func(sc scanner) (string, error) {
		var id string
		err := sc.Scan(&id)
		return id, err
	})
}

// ListSettledRequests implements store.RequestPath in one statement.
func (s *Store) ListSettledRequests(ctx context.Context, ids []string, now time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, 0, len(ids)+2)
	for _, id := range ids {
		args = append(args, id)
	}
	args = append(args, store.StatusPending, now.UnixMicro())
	rows, err := s.r.QueryContext(ctx, s.q("SELECT id FROM requests WHERE id IN ("+
		strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")+") AND (status <> ? OR expires_at <= ?)"), args...)
	if err != nil {
		return nil, fmt.Errorf("list settled requests: %w", mapErr(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list settled requests: %w", err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list settled requests: %w", mapErr(err))
	}
	return out, nil
}
