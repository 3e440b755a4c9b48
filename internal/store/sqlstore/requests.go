package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Pairing phrases, connections, requests and user states.

// atomically runs fn in the Store's transaction when it has one, else in a
// transaction of its own that commits when fn returns nil.
func (s *Store) atomically(ctx context.Context, fn func(tx *Store) error) error {
	if s.tx != nil {
		return fn(s)
	}
	return s.InTx(ctx, func(tx store.Store) error { return fn(tx.(*Store)) })
}

// forUpdate is appended to a SELECT inside a transaction that writes what it
// read: PostgreSQL locks the rows until the transaction ends. SQLite needs
// nothing, its transactions are serialized already (BEGIN IMMEDIATE).
func (s *Store) forUpdate() string {
	if s.tx != nil && s.dialect == dialectPostgres {
		return " FOR UPDATE"
	}
	return ""
}

// qualify prefixes every column of a column list with alias.
func qualify(alias, columns string) string {
	cols := strings.Split(columns, ", ")
	for i, c := range cols {
		cols[i] = alias + "." + c
	}
	return strings.Join(cols, ", ")
}

// Pairing phrases.

const pairingPhraseColumns = "hash, device_id, created_at, expires_at, used_at"

func scanPairingPhrase(sc scanner) (store.PairingPhrase, error) {
	var p store.PairingPhrase
	err := sc.Scan(&p.Hash, &p.DeviceID, timeCol{&p.CreatedAt}, timeCol{&p.ExpiresAt}, timeCol{&p.UsedAt})
	return p, err
}

// PutPairingPhrase implements store.PairingPhrases in one transaction. A
// phrase without ExpiresAt counts as expired and is deleted too. The insert
// does nothing on a taken hash rather than fail, so a conflict does not
// abort a PostgreSQL transaction the caller may be in; in a transaction of
// its own the deletions are rolled back with it.
func (s *Store) PutPairingPhrase(ctx context.Context, p store.PairingPhrase) error {
	err := s.atomically(ctx, func(tx *Store) error {
		if _, err := tx.w.ExecContext(ctx, tx.q(`DELETE FROM pairing_phrases
			WHERE device_id = ? OR expires_at IS NULL OR expires_at <= ?`),
			p.DeviceID, p.CreatedAt.UnixMicro()); err != nil {
			return mapErr(err)
		}
		res, err := tx.w.ExecContext(ctx, tx.q("INSERT INTO pairing_phrases ("+pairingPhraseColumns+") VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"),
			bytesArg(p.Hash), p.DeviceID, timeArg(p.CreatedAt), timeArg(p.ExpiresAt), timeArg(p.UsedAt))
		if err != nil {
			return mapErr(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("an unexpired phrase has this hash: %w", store.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put pairing phrase of device %q: %w", p.DeviceID, err)
	}
	return nil
}

// ClaimPairingPhrase implements store.PairingPhrases. The WHERE clause is the
// compare-and-swap: the database lets exactly one concurrent UPDATE match. A
// zero at is an error: it would mark nothing used.
func (s *Store) ClaimPairingPhrase(ctx context.Context, hash []byte, at time.Time) (store.PairingPhrase, error) {
	if at.IsZero() {
		return store.PairingPhrase{}, errors.New("claim pairing phrase: no time given")
	}
	p, err := scanPairingPhrase(s.w.QueryRowContext(ctx, s.q(`UPDATE pairing_phrases SET used_at = ?
		WHERE hash = ? AND used_at IS NULL AND expires_at > ? RETURNING `+pairingPhraseColumns),
		at.UnixMicro(), bytesArg(hash), at.UnixMicro()))
	if err != nil {
		// No row: unknown, used or expired, which the caller must not tell apart.
		return store.PairingPhrase{}, fmt.Errorf("claim pairing phrase: %w", mapErr(err))
	}
	return p, nil
}

// Connections.

const connectionColumns = "id, relying_party_id, user_ref, device_id, account_label, status, created_at, activated_at, removed_at"

func scanConnection(sc scanner) (store.Connection, error) {
	var c store.Connection
	err := sc.Scan(&c.ID, &c.RelyingPartyID, &c.UserRef, &c.DeviceID, &c.AccountLabel, &c.Status,
		timeCol{&c.CreatedAt}, timeCol{&c.ActivatedAt}, timeCol{&c.RemovedAt})
	return c, err
}

// CreateConnection implements store.Connections. Creating an ACTIVE
// connection where the relying party, user and device have one already is
// ErrConflict too.
func (s *Store) CreateConnection(ctx context.Context, c store.Connection) error {
	_, err := s.w.ExecContext(ctx, s.q("INSERT INTO connections ("+connectionColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		c.ID, c.RelyingPartyID, c.UserRef, c.DeviceID, c.AccountLabel, c.Status,
		timeArg(c.CreatedAt), timeArg(c.ActivatedAt), timeArg(c.RemovedAt))
	if err != nil {
		return fmt.Errorf("create connection %q: %w", c.ID, mapErr(err))
	}
	return nil
}

// GetConnection implements store.Connections.
func (s *Store) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	c, err := scanConnection(s.r.QueryRowContext(ctx, s.q("SELECT "+connectionColumns+" FROM connections WHERE id = ?"), id))
	if err != nil {
		return store.Connection{}, fmt.Errorf("get connection %q: %w", id, mapErr(err))
	}
	return c, nil
}

// ActivateConnection implements store.Connections in one transaction. On
// PostgreSQL it first locks every connection of the relying party, user and
// device, in ID order: concurrent activations for them then run one after
// the other and each removes the one activated before it, instead of
// colliding on the unique index.
func (s *Store) ActivateConnection(ctx context.Context, id string, at time.Time) error {
	err := s.atomically(ctx, func(tx *Store) error {
		// Relying party and user never change, and the device only of an
		// ACTIVE connection (TransferConnection), which is refused below
		// anyway, so reading them without a lock is safe.
		var rpID, userRef, deviceID string
		if err := tx.w.QueryRowContext(ctx, tx.q("SELECT relying_party_id, user_ref, device_id FROM connections WHERE id = ?"), id).
			Scan(&rpID, &userRef, &deviceID); err != nil {
			return mapErr(err)
		}
		rows, err := tx.w.QueryContext(ctx, tx.q(`SELECT id, status FROM connections
			WHERE relying_party_id = ? AND user_ref = ? AND device_id = ? ORDER BY id`+tx.forUpdate()),
			rpID, userRef, deviceID)
		if err != nil {
			return mapErr(err)
		}
		status := ""
		for rows.Next() {
			var cid, cstatus string
			if err := rows.Scan(&cid, &cstatus); err != nil {
				rows.Close()
				return err
			}
			if cid == id {
				status = cstatus
			}
		}
		if err := rows.Close(); err != nil {
			return mapErr(err)
		}
		if err := rows.Err(); err != nil {
			return mapErr(err)
		}
		if status != store.ConnectionPending {
			return fmt.Errorf("status is %q: %w", status, store.ErrConflict)
		}
		if _, err := tx.w.ExecContext(ctx, tx.q(`UPDATE connections SET status = ?, removed_at = ?
			WHERE relying_party_id = ? AND user_ref = ? AND device_id = ? AND status = `+sqlActive+` AND id <> ?`),
			store.ConnectionRemoved, timeArg(at), rpID, userRef, deviceID, id); err != nil {
			return mapErr(err)
		}
		res, err := tx.w.ExecContext(ctx, tx.q("UPDATE connections SET status = ?, activated_at = ? WHERE id = ? AND status = "+sqlPending),
			store.ConnectionActive, timeArg(at), id)
		if err != nil {
			return mapErr(err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("no longer pending: %w", store.ErrConflict)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("activate connection %q: %w", id, err)
	}
	return nil
}

// RemoveConnection implements store.Connections. The WHERE clause is the
// compare-and-swap: the database lets exactly one concurrent UPDATE match.
func (s *Store) RemoveConnection(ctx context.Context, id string, at time.Time) error {
	return s.swap(ctx, "remove connection", "connections", id, "already removed",
		"UPDATE connections SET status = ?, removed_at = ? WHERE id = ? AND status IN ("+sqlPending+", "+sqlActive+")",
		store.ConnectionRemoved, timeArg(at), id)
}

// TransferConnection implements store.Connections in one transaction. It
// locks, in ID order and in one statement, every connection of the relying
// party and user on the old and the new device, as ActivateConnection locks
// those of one device: a concurrent activation or transfer then runs before
// or after it, never halfway, and cannot deadlock with it. Checking for an
// ACTIVE connection on the new device first, rather than letting the unique
// index refuse the move, keeps a caller's PostgreSQL transaction usable. A
// transfer to the device the connection is on already changes nothing.
func (s *Store) TransferConnection(ctx context.Context, id, newDeviceID string) error {
	err := s.atomically(ctx, func(tx *Store) error {
		// The device may move under us (another transfer); then the locked
		// rows no longer hold the connection and we look again.
		for range 3 {
			var rpID, userRef, deviceID string
			if err := tx.w.QueryRowContext(ctx, tx.q("SELECT relying_party_id, user_ref, device_id FROM connections WHERE id = ?"), id).
				Scan(&rpID, &userRef, &deviceID); err != nil {
				return mapErr(err)
			}
			rows, err := tx.w.QueryContext(ctx, tx.q(`SELECT id, device_id, status FROM connections
				WHERE relying_party_id = ? AND user_ref = ? AND device_id IN (?, ?) ORDER BY id`+tx.forUpdate()),
				rpID, userRef, deviceID, newDeviceID)
			if err != nil {
				return mapErr(err)
			}
			found, status, taken := false, "", false
			for rows.Next() {
				var cid, cdevice, cstatus string
				if err := rows.Scan(&cid, &cdevice, &cstatus); err != nil {
					rows.Close()
					return err
				}
				switch {
				case cid == id:
					found, status = cdevice == deviceID, cstatus
				case cdevice == newDeviceID && cstatus == store.ConnectionActive:
					taken = true
				}
			}
			if err := rows.Close(); err != nil {
				return mapErr(err)
			}
			if err := rows.Err(); err != nil {
				return mapErr(err)
			}
			switch {
			case !found:
				continue
			case status != store.ConnectionActive:
				return fmt.Errorf("status is %q: %w", status, store.ErrNotFound)
			case deviceID == newDeviceID:
				return nil
			case taken:
				return fmt.Errorf("device %q has an active connection for the same user: %w", newDeviceID, store.ErrConflict)
			}
			res, err := tx.w.ExecContext(ctx, tx.q("UPDATE connections SET device_id = ? WHERE id = ? AND status = "+sqlActive),
				newDeviceID, id)
			if err != nil {
				return mapErr(err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				return fmt.Errorf("no longer active: %w", store.ErrNotFound)
			}
			return nil
		}
		return errors.New("connection keeps moving to other devices")
	})
	if err != nil {
		return fmt.Errorf("transfer connection %q to device %q: %w", id, newDeviceID, err)
	}
	return nil
}

// ListDeviceConnections implements store.Connections. Oldest is by
// CreatedAt, then ID.
func (s *Store) ListDeviceConnections(ctx context.Context, deviceID string) ([]store.Connection, error) {
	return s.listConnections(ctx, "list device connections", "device_id = ?", deviceID)
}

// ListUserConnections implements store.Connections. Oldest is by CreatedAt,
// then ID.
func (s *Store) ListUserConnections(ctx context.Context, relyingPartyID, userRef string) ([]store.Connection, error) {
	return s.listConnections(ctx, "list user connections", "relying_party_id = ? AND user_ref = ?", relyingPartyID, userRef)
}

func (s *Store) listConnections(ctx context.Context, what, where string, args ...any) ([]store.Connection, error) {
	rows, err := s.r.QueryContext(ctx, s.q("SELECT "+connectionColumns+" FROM connections WHERE "+where+
		" AND status = "+sqlActive+" ORDER BY created_at NULLS FIRST, id"), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	defer rows.Close()
	var out []store.Connection
	for rows.Next() {
		c, err := scanConnection(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return out, nil
}

// Requests.

const requestColumns = "id, kind, relying_party_id, user_ref, connection_id, account_label, " +
	"context_app_name, context_ip_address, context_location, context_browser, context_action, " +
	"number_matching, number_hash, status, reason, created_at, expires_at, decided_at, " +
	"decided_by, payload, signature, auto_approved, location_rule_id"

func scanRequest(sc scanner) (store.Request, error) {
	var r store.Request
	var nm string
	err := sc.Scan(requestDests(&r, &nm)...)
	r.NumberMatching = store.NumberMatching(nm)
	return r, err
}

// requestDests are the scan destinations of requestColumns; nm receives
// the number-matching mode.
func requestDests(r *store.Request, nm *string) []any {
	return []any{&r.ID, &r.Kind, &r.RelyingPartyID, &r.UserRef, &r.ConnectionID, &r.AccountLabel,
		&r.Context.AppName, &r.Context.IPAddress, &r.Context.Location, &r.Context.Browser, &r.Context.Action,
		nm, &r.NumberHash, &r.Status, &r.Reason,
		timeCol{&r.CreatedAt}, timeCol{&r.ExpiresAt}, timeCol{&r.DecidedAt},
		&r.DecidedBy, &r.Payload, &r.Signature, &r.AutoApproved, &r.LocationRuleID}
}

func (s *Store) queryRequests(ctx context.Context, what, query string, args ...any) ([]store.Request, error) {
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	defer rows.Close()
	var out []store.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return out, nil
}

// CreateRequest implements store.Requests: the request and its targets are
// written in one transaction. Two targets with the same device are
// ErrConflict.
func (s *Store) CreateRequest(ctx context.Context, r store.Request, targets []store.RequestTarget) error {
	insertRequest := "INSERT INTO requests (" + requestColumns + `)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	args := []any{r.ID, r.Kind, r.RelyingPartyID, r.UserRef, r.ConnectionID, r.AccountLabel,
		r.Context.AppName, r.Context.IPAddress, r.Context.Location, r.Context.Browser, r.Context.Action,
		string(r.NumberMatching), bytesArg(r.NumberHash), r.Status, r.Reason,
		timeArg(r.CreatedAt), timeArg(r.ExpiresAt), timeArg(r.DecidedAt),
		r.DecidedBy, bytesArg(r.Payload), bytesArg(r.Signature), r.AutoApproved, r.LocationRuleID}
	// One statement for all targets; each belongs to r, whatever its
	// RequestID says.
	targetArgs := make([]any, 0, 6*len(targets))
	for _, t := range targets {
		targetArgs = append(targetArgs, r.ID, t.DeviceID, t.Delivery, t.Detail, timeArg(t.UpdatedAt), timeArg(t.SeenAt))
	}
	insertTargets := "INSERT INTO request_targets (request_id, device_id, delivery, detail, updated_at, seen_at) VALUES " +
		strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?), ", len(targets)), ", ")
	err := s.atomically(ctx, func(tx *Store) error {
		if len(targets) > 0 && tx.dialect == dialectPostgres {
			// PostgreSQL writes both in one statement; the targets' foreign
			// key is checked at its end, when the request is there.
			if _, err := tx.w.ExecContext(ctx, tx.q("WITH r AS ("+insertRequest+") "+insertTargets), append(args, targetArgs...)...); err != nil {
				return mapErr(err)
			}
			return nil
		}
		if _, err := tx.w.ExecContext(ctx, tx.q(insertRequest), args...); err != nil {
			return mapErr(err)
		}
		if len(targets) == 0 {
			return nil
		}
		if _, err := tx.w.ExecContext(ctx, tx.q(insertTargets), targetArgs...); err != nil {
			return fmt.Errorf("targets: %w", mapErr(err))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create request %q: %w", r.ID, err)
	}
	return nil
}

// GetRequest implements store.Requests.
func (s *Store) GetRequest(ctx context.Context, id string) (store.Request, error) {
	r, err := scanRequest(s.r.QueryRowContext(ctx, s.q("SELECT "+requestColumns+" FROM requests WHERE id = ?"), id))
	if err != nil {
		return store.Request{}, fmt.Errorf("get request %q: %w", id, mapErr(err))
	}
	return r, nil
}

// ListRequestTargets implements store.Requests. An unknown request has no
// targets.
func (s *Store) ListRequestTargets(ctx context.Context, requestID string) ([]store.RequestTarget, error) {
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT request_id, device_id, delivery, detail, updated_at, seen_at
		FROM request_targets WHERE request_id = ? ORDER BY device_id`), requestID)
	if err != nil {
		return nil, fmt.Errorf("list request targets: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.RequestTarget
	for rows.Next() {
		var t store.RequestTarget
		if err := rows.Scan(&t.RequestID, &t.DeviceID, &t.Delivery, &t.Detail, timeCol{&t.UpdatedAt}, timeCol{&t.SeenAt}); err != nil {
			return nil, fmt.Errorf("list request targets: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list request targets: %w", mapErr(err))
	}
	return out, nil
}

// ListDevicePendingRequests implements store.Requests. Oldest is by
// CreatedAt, then ID.
func (s *Store) ListDevicePendingRequests(ctx context.Context, deviceID string, now time.Time) ([]store.Request, error) {
	return s.queryRequests(ctx, "list device pending requests", "SELECT "+qualify("r", requestColumns)+
		` FROM requests r JOIN request_targets t ON t.request_id = r.id
		WHERE t.device_id = ? AND t.delivery <> ? AND r.status = ? AND r.expires_at > ?
		ORDER BY r.created_at NULLS FIRST, r.id`,
		deviceID, store.DeliveryRemoved, store.StatusPending, now.UnixMicro())
}

// ListUserPendingRequests implements store.Requests. Oldest is by CreatedAt,
// then ID.
func (s *Store) ListUserPendingRequests(ctx context.Context, relyingPartyID, userRef, kind string, now time.Time) ([]store.Request, error) {
	return s.queryRequests(ctx, "list user pending requests", "SELECT "+requestColumns+
		` FROM requests WHERE relying_party_id = ? AND user_ref = ? AND status = ? AND kind = ? AND expires_at > ?
		ORDER BY created_at NULLS FIRST, id`,
		relyingPartyID, userRef, store.StatusPending, kind, now.UnixMicro())
}

// DecideRequest implements store.Requests. The WHERE clause is the
// compare-and-swap: the database lets exactly one concurrent UPDATE match. A
// request without ExpiresAt counts as expired. A decision that is PENDING or
// has no time is an error.
func (s *Store) DecideRequest(ctx context.Context, d store.Decision) error {
	switch {
	case d.Status == "" || d.Status == store.StatusPending:
		return fmt.Errorf("decide request %q: status %q is no decision", d.RequestID, d.Status)
	case d.At.IsZero():
		return fmt.Errorf("decide request %q: no time given", d.RequestID)
	}
	query := `UPDATE requests SET status = ?, reason = ?, decided_at = ?, decided_by = ?,
		payload = ?, signature = ?, auto_approved = ?, location_rule_id = ?
		WHERE id = ? AND status = ?`
	args := []any{d.Status, d.Reason, d.At.UnixMicro(), d.DecidedBy,
		bytesArg(d.Payload), bytesArg(d.Signature), d.AutoApproved, d.LocationRuleID,
		d.RequestID, store.StatusPending}
	if d.Status != store.StatusExpired {
		query += " AND expires_at > ?"
		args = append(args, d.At.UnixMicro())
	}
	res, err := s.w.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return fmt.Errorf("decide request %q: %w", d.RequestID, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("decide request %q: %w", d.RequestID, err)
	}
	if n > 0 {
		return nil
	}
	// Say why it lost; on the writer, so it sees the write that won.
	var status string
	err = s.w.QueryRowContext(ctx, s.q("SELECT status FROM requests WHERE id = ?"), d.RequestID).Scan(&status)
	if err != nil {
		return fmt.Errorf("decide request %q: %w", d.RequestID, mapErr(err))
	}
	reason := "expired"
	if status != store.StatusPending {
		reason = "already " + status
	}
	return fmt.Errorf("decide request %q: %s: %w", d.RequestID, reason, store.ErrConflict)
}

// ExpireRequests implements store.Requests, earliest ExpiresAt first, in one
// statement. On PostgreSQL the rows are picked FOR UPDATE SKIP LOCKED, so
// concurrent callers pick disjoint rows instead of waiting for each other
// (and a request a decision holds is left for the next round); on SQLite the
// single writer runs one statement at a time. The pick is a MATERIALIZED CTE
// so it runs exactly once: as a plain IN (subquery) PostgreSQL may rescan it,
// skip the rows the statement has just updated and so expire more than
// limit. The status test is repeated in the UPDATE so a row can only ever
// change from PENDING once. A limit of 0 or less means no limit. A zero now
// is an error.
func (s *Store) ExpireRequests(ctx context.Context, now time.Time, limit int) ([]store.Request, error) {
	if now.IsZero() {
		return nil, errors.New("expire requests: no time given")
	}
	pick := "SELECT id FROM requests WHERE status = ? AND expires_at <= ? ORDER BY expires_at, id"
	args := []any{store.StatusPending, now.UnixMicro()}
	if limit > 0 {
		pick += " LIMIT ?"
		args = append(args, limit)
	}
	if s.dialect == dialectPostgres {
		pick += " FOR UPDATE SKIP LOCKED"
	}
	args = append(args, store.StatusExpired, store.ReasonTimeout, now.UnixMicro(), store.StatusPending)
	rows, err := s.w.QueryContext(ctx, s.q("WITH due AS MATERIALIZED ("+pick+`)
		UPDATE requests SET status = ?, reason = ?, decided_at = ?
		WHERE id IN (SELECT id FROM due) AND status = ? RETURNING `+requestColumns), args...)
	if err != nil {
		return nil, fmt.Errorf("expire requests: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, fmt.Errorf("expire requests: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("expire requests: %w", mapErr(err))
	}
	// RETURNING has no order of its own.
	slices.SortFunc(out, func(a, b store.Request) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// targetExists reports whether a request has a target on this device, on the
// writer so it sees the write that just missed.
func (s *Store) targetExists(ctx context.Context, requestID, deviceID string) (bool, error) {
	var one int
	err := s.w.QueryRowContext(ctx, s.q("SELECT 1 FROM request_targets WHERE request_id = ? AND device_id = ?"),
		requestID, deviceID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// TargetPending implements store.Requests.
func (s *Store) TargetPending(ctx context.Context, requestID, deviceID string, now time.Time) (bool, error) {
	var one int
	err := s.r.QueryRowContext(ctx, s.q(`SELECT 1 FROM requests r JOIN request_targets t ON t.request_id = r.id
		WHERE r.id = ? AND t.device_id = ? AND r.status = ? AND r.expires_at > ? AND t.delivery <> ?`),
		requestID, deviceID, store.StatusPending, now.UnixMicro(), store.DeliveryRemoved).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("is request %q still pending for device %q: %w", requestID, deviceID, mapErr(err))
	}
	return true, nil
}

// UpdateTargetDelivery implements store.Requests.
func (s *Store) UpdateTargetDelivery(ctx context.Context, requestID, deviceID, delivery, detail string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, s.q("UPDATE request_targets SET delivery = ?, detail = ?, updated_at = ? WHERE request_id = ? AND device_id = ? AND delivery <> ?"),
		delivery, detail, timeArg(at), requestID, deviceID, store.DeliveryRemoved)
	if err != nil {
		return fmt.Errorf("update delivery of request %q to device %q: %w", requestID, deviceID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update delivery of request %q to device %q: %w", requestID, deviceID, err)
	} else if n > 0 {
		return nil
	}
	// Rare: tell a removed target from a missing one.
	exists, err := s.targetExists(ctx, requestID, deviceID)
	switch {
	case err != nil:
		return fmt.Errorf("update delivery of request %q to device %q: %w", requestID, deviceID, mapErr(err))
	case exists:
		return fmt.Errorf("update delivery of request %q to device %q: the target was removed: %w", requestID, deviceID, store.ErrConflict)
	}
	return fmt.Errorf("update delivery of request %q to device %q: %w", requestID, deviceID, store.ErrNotFound)
}

// MarkTargetSeen implements store.Requests. The WHERE clause is the
// compare-and-swap: of concurrent callers exactly one gets true. A zero at
// is an error: it would mark nothing seen.
func (s *Store) MarkTargetSeen(ctx context.Context, requestID, deviceID string, at time.Time) (bool, error) {
	if at.IsZero() {
		return false, fmt.Errorf("mark request %q seen on device %q: no time given", requestID, deviceID)
	}
	res, err := s.w.ExecContext(ctx, s.q("UPDATE request_targets SET seen_at = ? WHERE request_id = ? AND device_id = ? AND seen_at IS NULL"),
		at.UnixMicro(), requestID, deviceID)
	if err != nil {
		return false, fmt.Errorf("mark request %q seen on device %q: %w", requestID, deviceID, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("mark request %q seen on device %q: %w", requestID, deviceID, err)
	}
	if n > 0 {
		return true, nil
	}
	ok, err := s.targetExists(ctx, requestID, deviceID)
	switch {
	case err != nil:
		return false, fmt.Errorf("mark request %q seen on device %q: %w", requestID, deviceID, mapErr(err))
	case !ok:
		return false, fmt.Errorf("mark request %q seen on device %q: %w", requestID, deviceID, store.ErrNotFound)
	}
	return false, nil
}

// MarkPushTokenDead implements store.Requests. An unknown device, or one
// whose token changed, is left alone without an error.
func (s *Store) MarkPushTokenDead(ctx context.Context, deviceID, token string) error {
	if _, err := s.w.ExecContext(ctx, s.q("UPDATE devices SET push_token_dead = ? WHERE id = ? AND push_token = ?"),
		true, deviceID, token); err != nil {
		return fmt.Errorf("mark push token of device %q dead: %w", deviceID, mapErr(err))
	}
	return nil
}

// User states.

const userStateColumns = "relying_party_id, user_ref, consecutive_failures, backoff_until, muted_until, totp_failures, totp_locked_until, updated_at"

func scanUserState(sc scanner) (store.UserState, error) {
	var u store.UserState
	err := sc.Scan(userStateDests(&u)...)
	return u, err
}

// userStateDests are the scan destinations of userStateColumns.
func userStateDests(u *store.UserState) []any {
	return []any{&u.RelyingPartyID, &u.UserRef, &u.ConsecutiveFailures,
		timeCol{&u.BackoffUntil}, timeCol{&u.MutedUntil},
		&u.TOTPFailures, timeCol{&u.TOTPLockedUntil}, timeCol{&u.UpdatedAt}}
}

// GetUserState implements store.UserStates.
func (s *Store) GetUserState(ctx context.Context, relyingPartyID, userRef string) (store.UserState, error) {
	u, err := scanUserState(s.r.QueryRowContext(ctx, s.q("SELECT "+userStateColumns+" FROM user_states WHERE relying_party_id = ? AND user_ref = ?"),
		relyingPartyID, userRef))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.UserState{RelyingPartyID: relyingPartyID, UserRef: userRef}, nil
	case err != nil:
		return store.UserState{}, fmt.Errorf("get user state of %q/%q: %w", relyingPartyID, userRef, mapErr(err))
	}
	return u, nil
}

// UpdateUserState implements store.UserStates in one transaction (the
// Store's own, or a new one). The row is read and locked (FOR UPDATE on
// PostgreSQL; SQLite's transactions are serialized already) in one
// statement; only a missing row is created first, so concurrent callers
// always have a row to wait on. It is written back only when fn changed
// it. fn cannot change the keys. When fn fails, a row created just for it
// is deleted again, so nothing is left behind even in a transaction the
// caller commits.
func (s *Store) UpdateUserState(ctx context.Context, relyingPartyID, userRef string, fn func(*store.UserState) error) error {
	err := s.atomically(ctx, func(tx *Store) error {
		lock := func() (store.UserState, error) {
			return scanUserState(tx.w.QueryRowContext(ctx, tx.q("SELECT "+userStateColumns+
				" FROM user_states WHERE relying_party_id = ? AND user_ref = ?"+tx.forUpdate()), relyingPartyID, userRef))
		}
		u, err := lock()
		created := false
		if errors.Is(err, sql.ErrNoRows) {
			res, err := tx.w.ExecContext(ctx, tx.q(`INSERT INTO user_states (relying_party_id, user_ref, consecutive_failures)
				VALUES (?, ?, 0) ON CONFLICT (relying_party_id, user_ref) DO NOTHING`), relyingPartyID, userRef)
			if err != nil {
				return mapErr(err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			created = n > 0
			u, err = lock()
			if err != nil {
				return mapErr(err)
			}
		} else if err != nil {
			return mapErr(err)
		}
		before := u
		if err := fn(&u); err != nil {
			if created {
				if _, derr := tx.w.ExecContext(ctx, tx.q("DELETE FROM user_states WHERE relying_party_id = ? AND user_ref = ?"),
					relyingPartyID, userRef); derr != nil {
					return errors.Join(err, mapErr(derr))
				}
			}
			return err
		}
		if sameUserState(before, u) {
			return nil
		}
		_, err = tx.w.ExecContext(ctx, tx.q(`UPDATE user_states SET consecutive_failures = ?, backoff_until = ?, muted_until = ?,
			totp_failures = ?, totp_locked_until = ?, updated_at = ?
			WHERE relying_party_id = ? AND user_ref = ?`),
			u.ConsecutiveFailures, timeArg(u.BackoffUntil), timeArg(u.MutedUntil),
			u.TOTPFailures, timeArg(u.TOTPLockedUntil), timeArg(u.UpdatedAt),
			relyingPartyID, userRef)
		return mapErr(err)
	})
	if err != nil {
		return fmt.Errorf("update user state of %q/%q: %w", relyingPartyID, userRef, err)
	}
	return nil
}

// sameUserState compares the stored fields of two states.
func sameUserState(a, b store.UserState) bool {
	return a.ConsecutiveFailures == b.ConsecutiveFailures && a.TOTPFailures == b.TOTPFailures &&
		a.BackoffUntil.Equal(b.BackoffUntil) && a.MutedUntil.Equal(b.MutedUntil) &&
		a.TOTPLockedUntil.Equal(b.TOTPLockedUntil) && a.UpdatedAt.Equal(b.UpdatedAt)
}
