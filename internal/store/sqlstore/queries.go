package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// exists reports whether table has a row with this id. It runs on the writer
// so it sees the write that just missed.
func (s *Store) exists(ctx context.Context, table, id string) (bool, error) {
	var one int
	err := s.w.QueryRowContext(ctx, s.q("SELECT 1 FROM "+table+" WHERE id = ?"), id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// Relying parties.

const rpColumns = "id, name, display_name, number_matching, approval_ttl_ms, allow_location_automation, allow_backup_restore, created_at, updated_at"

func scanRelyingParty(sc scanner) (store.RelyingParty, error) {
	var rp store.RelyingParty
	var ttlMS int64
	var nm string
	err := sc.Scan(&rp.ID, &rp.Name, &rp.DisplayName, &nm, &ttlMS,
		&rp.Policy.AllowLocationAutomation, &rp.Policy.AllowBackupRestore,
		timeCol{&rp.CreatedAt}, timeCol{&rp.UpdatedAt})
	rp.Policy.NumberMatching = store.NumberMatching(nm)
	rp.Policy.ApprovalTTL = time.Duration(ttlMS) * time.Millisecond
	return rp, err
}

// CreateRelyingParty implements store.RelyingParties.
func (s *Store) CreateRelyingParty(ctx context.Context, rp store.RelyingParty) error {
	_, err := s.w.ExecContext(ctx, s.q("INSERT INTO relying_parties ("+rpColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		rp.ID, rp.Name, rp.DisplayName, string(rp.Policy.NumberMatching), rp.Policy.ApprovalTTL.Milliseconds(),
		rp.Policy.AllowLocationAutomation, rp.Policy.AllowBackupRestore,
		timeArg(rp.CreatedAt), timeArg(rp.UpdatedAt))
	if err != nil {
		return fmt.Errorf("create relying party %q: %w", rp.ID, mapErr(err))
	}
	return nil
}

// GetRelyingParty implements store.RelyingParties.
func (s *Store) GetRelyingParty(ctx context.Context, id string) (store.RelyingParty, error) {
	rp, err := scanRelyingParty(s.r.QueryRowContext(ctx, s.q("SELECT "+rpColumns+" FROM relying_parties WHERE id = ?"), id))
	if err != nil {
		return store.RelyingParty{}, fmt.Errorf("get relying party %q: %w", id, mapErr(err))
	}
	return rp, nil
}

// GetRelyingPartyByName implements store.RelyingParties.
func (s *Store) GetRelyingPartyByName(ctx context.Context, name string) (store.RelyingParty, error) {
	rp, err := scanRelyingParty(s.r.QueryRowContext(ctx, s.q("SELECT "+rpColumns+" FROM relying_parties WHERE name = ?"), name))
	if err != nil {
		return store.RelyingParty{}, fmt.Errorf("get relying party by name %q: %w", name, mapErr(err))
	}
	return rp, nil
}

// ListRelyingParties implements store.RelyingParties. A limit of 0 or less
// means no limit.
func (s *Store) ListRelyingParties(ctx context.Context, afterID string, limit int) ([]store.RelyingParty, error) {
	query := "SELECT " + rpColumns + " FROM relying_parties WHERE id > ? ORDER BY id"
	args := []any{afterID}
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list relying parties: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.RelyingParty
	for rows.Next() {
		rp, err := scanRelyingParty(rows)
		if err != nil {
			return nil, fmt.Errorf("list relying parties: %w", err)
		}
		out = append(out, rp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list relying parties: %w", mapErr(err))
	}
	return out, nil
}

// UpdateRelyingParty implements store.RelyingParties.
func (s *Store) UpdateRelyingParty(ctx context.Context, rp store.RelyingParty) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE relying_parties SET display_name = ?, number_matching = ?,
		approval_ttl_ms = ?, allow_location_automation = ?, allow_backup_restore = ?, updated_at = ?
		WHERE id = ?`),
		rp.DisplayName, string(rp.Policy.NumberMatching), rp.Policy.ApprovalTTL.Milliseconds(),
		rp.Policy.AllowLocationAutomation, rp.Policy.AllowBackupRestore, timeArg(rp.UpdatedAt), rp.ID)
	if err != nil {
		return fmt.Errorf("update relying party %q: %w", rp.ID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update relying party %q: %w", rp.ID, err)
	} else if n == 0 {
		return fmt.Errorf("update relying party %q: %w", rp.ID, store.ErrNotFound)
	}
	return nil
}

// API keys.

const apiKeyColumns = "id, relying_party_id, prefix, hash, description, created_at, last_used_at, revoked_at"

func scanAPIKey(sc scanner) (store.APIKey, error) {
	var k store.APIKey
	err := sc.Scan(&k.ID, &k.RelyingPartyID, &k.Prefix, &k.Hash, &k.Description,
		timeCol{&k.CreatedAt}, timeCol{&k.LastUsedAt}, timeCol{&k.RevokedAt})
	return k, err
}

// CreateAPIKey implements store.APIKeys.
func (s *Store) CreateAPIKey(ctx context.Context, k store.APIKey) error {
	_, err := s.w.ExecContext(ctx, s.q("INSERT INTO api_keys ("+apiKeyColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
		k.ID, k.RelyingPartyID, k.Prefix, bytesArg(k.Hash), k.Description,
		timeArg(k.CreatedAt), timeArg(k.LastUsedAt), timeArg(k.RevokedAt))
	if err != nil {
		return fmt.Errorf("create api key %q: %w", k.ID, mapErr(err))
	}
	return nil
}

// GetAPIKey implements store.APIKeys.
func (s *Store) GetAPIKey(ctx context.Context, id string) (store.APIKey, error) {
	k, err := scanAPIKey(s.r.QueryRowContext(ctx, s.q("SELECT "+apiKeyColumns+" FROM api_keys WHERE id = ?"), id))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("get api key %q: %w", id, mapErr(err))
	}
	return k, nil
}

// GetAPIKeyByPrefix implements store.APIKeys.
func (s *Store) GetAPIKeyByPrefix(ctx context.Context, prefix string) (store.APIKey, error) {
	k, err := scanAPIKey(s.r.QueryRowContext(ctx, s.q("SELECT "+apiKeyColumns+" FROM api_keys WHERE prefix = ?"), prefix))
	if err != nil {
		return store.APIKey{}, fmt.Errorf("get api key by prefix %q: %w", prefix, mapErr(err))
	}
	return k, nil
}

// ListAPIKeys implements store.APIKeys. An unknown relying party has no keys.
func (s *Store) ListAPIKeys(ctx context.Context, relyingPartyID string, includeRevoked bool) ([]store.APIKey, error) {
	query := "SELECT " + apiKeyColumns + " FROM api_keys WHERE relying_party_id = ?"
	if !includeRevoked {
		query += " AND revoked_at IS NULL"
	}
	query += " ORDER BY created_at NULLS FIRST, id" // NULLS FIRST: the dialects disagree otherwise
	rows, err := s.r.QueryContext(ctx, s.q(query), relyingPartyID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list api keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list api keys: %w", mapErr(err))
	}
	return out, nil
}

// RevokeAPIKey implements store.APIKeys. The WHERE clause is the
// compare-and-swap: the database lets exactly one concurrent UPDATE match.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := s.w.ExecContext(ctx, s.q("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"),
		timeArg(at), id)
	if err != nil {
		return fmt.Errorf("revoke api key %q: %w", id, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("revoke api key %q: %w", id, err)
	}
	if n > 0 {
		return nil
	}
	ok, err := s.exists(ctx, "api_keys", id)
	switch {
	case err != nil:
		return fmt.Errorf("revoke api key %q: %w", id, mapErr(err))
	case !ok:
		return fmt.Errorf("revoke api key %q: %w", id, store.ErrNotFound)
	}
	return fmt.Errorf("revoke api key %q: already revoked: %w", id, store.ErrConflict)
}

// TouchAPIKey implements store.APIKeys. ErrNotFound if there is no such key.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.touch(ctx, "touch api key", "api_keys", "last_used_at", id, at)
}

// touch moves a timestamp column forward, never back, in one statement so
// concurrent touches cannot lose the latest time.
func (s *Store) touch(ctx context.Context, what, table, column, id string, at time.Time) error {
	if !at.IsZero() {
		res, err := s.w.ExecContext(ctx, s.q("UPDATE "+table+" SET "+column+" = ? WHERE id = ? AND ("+column+" IS NULL OR "+column+" < ?)"),
			at.UnixMicro(), id, at.UnixMicro())
		if err != nil {
			return fmt.Errorf("%s %q: %w", what, id, mapErr(err))
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("%s %q: %w", what, id, err)
		}
		if n > 0 {
			return nil
		}
	}
	ok, err := s.exists(ctx, table, id)
	switch {
	case err != nil:
		return fmt.Errorf("%s %q: %w", what, id, mapErr(err))
	case !ok:
		return fmt.Errorf("%s %q: %w", what, id, store.ErrNotFound)
	}
	return nil
}

// Devices.

const deviceColumns = "id, credential_prefix, credential_hash, phone_number, public_key, platform, push_token, push_token_dead, name, app_version, created_at, last_seen_at, revoked_at"

func scanDevice(sc scanner) (store.Device, error) {
	var d store.Device
	err := sc.Scan(&d.ID, &d.CredentialPrefix, &d.CredentialHash, &d.PhoneNumber, &d.PublicKey,
		&d.Platform, &d.PushToken, &d.PushTokenDead, &d.Name, &d.AppVersion,
		timeCol{&d.CreatedAt}, timeCol{&d.LastSeenAt}, timeCol{&d.RevokedAt})
	return d, err
}

// CreateDevice implements store.Devices.
func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	_, err := s.w.ExecContext(ctx, s.q("INSERT INTO devices ("+deviceColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		d.ID, d.CredentialPrefix, bytesArg(d.CredentialHash), d.PhoneNumber, bytesArg(d.PublicKey),
		d.Platform, d.PushToken, d.PushTokenDead, d.Name, d.AppVersion,
		timeArg(d.CreatedAt), timeArg(d.LastSeenAt), timeArg(d.RevokedAt))
	if err != nil {
		return fmt.Errorf("create device %q: %w", d.ID, mapErr(err))
	}
	return nil
}

// GetDevice implements store.Devices.
func (s *Store) GetDevice(ctx context.Context, id string) (store.Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx, s.q("SELECT "+deviceColumns+" FROM devices WHERE id = ?"), id))
	if err != nil {
		return store.Device{}, fmt.Errorf("get device %q: %w", id, mapErr(err))
	}
	return d, nil
}

// GetDeviceByCredentialPrefix implements store.Devices.
func (s *Store) GetDeviceByCredentialPrefix(ctx context.Context, prefix string) (store.Device, error) {
	d, err := scanDevice(s.r.QueryRowContext(ctx, s.q("SELECT "+deviceColumns+" FROM devices WHERE credential_prefix = ?"), prefix))
	if err != nil {
		return store.Device{}, fmt.Errorf("get device by credential prefix %q: %w", prefix, mapErr(err))
	}
	return d, nil
}

// TouchDevice implements store.Devices. ErrNotFound if there is no such
// device.
func (s *Store) TouchDevice(ctx context.Context, id string, at time.Time) error {
	return s.touch(ctx, "touch device", "devices", "last_seen_at", id, at)
}

// Audit.

const auditColumns = "id, time, actor, action, relying_party_id, target, request_id, details"

// AppendAuditEvent implements store.Audit. e.ID is ignored.
func (s *Store) AppendAuditEvent(ctx context.Context, e store.AuditEvent) (int64, error) {
	details, err := json.Marshal(e.Details)
	if err != nil {
		return 0, fmt.Errorf("append audit event: encode details: %w", err)
	}
	var id int64
	err = s.w.QueryRowContext(ctx, s.q(`INSERT INTO audit_events (time, actor, action, relying_party_id, target, request_id, details)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		timeArg(e.Time), e.Actor, e.Action, e.RelyingPartyID, e.Target, e.RequestID, string(details)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("append audit event: %w", mapErr(err))
	}
	return id, nil
}

// ListAuditEvents implements store.Audit. A Limit of 0 or less means no
// limit.
func (s *Store) ListAuditEvents(ctx context.Context, f store.AuditFilter) ([]store.AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	if f.RelyingPartyID != "" {
		where = append(where, "relying_party_id = ?")
		args = append(args, f.RelyingPartyID)
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, f.Since.UnixMicro())
	}
	if !f.Until.IsZero() {
		where = append(where, "time < ?")
		args = append(args, f.Until.UnixMicro())
	}
	if f.BeforeID != 0 {
		where = append(where, "id < ?")
		args = append(args, f.BeforeID)
	}
	query := "SELECT " + auditColumns + " FROM audit_events"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC"
	if f.Limit > 0 {
		query += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.AuditEvent
	for rows.Next() {
		var e store.AuditEvent
		var details string
		if err := rows.Scan(&e.ID, timeCol{&e.Time}, &e.Actor, &e.Action, &e.RelyingPartyID,
			&e.Target, &e.RequestID, &details); err != nil {
			return nil, fmt.Errorf("list audit events: %w", err)
		}
		if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
			return nil, fmt.Errorf("list audit events: decode details of event %d: %w", e.ID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit events: %w", mapErr(err))
	}
	return out, nil
}
