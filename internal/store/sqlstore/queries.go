package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/pii"
	"github.com/pushauth/pushauth/internal/store"
)

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// collect scans every row with scan and closes rows; what names the query
// in errors.
func collect[T any](rows *sql.Rows, what string, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, mapErr(err))
	}
	return out, nil
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

const rpColumns = "id, name, display_name, number_matching, approval_ttl_ms, allow_location_automation, allow_backup_restore, approvals_per_minute, approvals_per_hour, created_at, updated_at"

func scanRelyingParty(sc scanner) (store.RelyingParty, error) {
	var rp store.RelyingParty
	var ttlMS int64
	var nm string
	err := sc.Scan(&rp.ID, &rp.Name, &rp.DisplayName, &nm, &ttlMS,
		&rp.Policy.AllowLocationAutomation, &rp.Policy.AllowBackupRestore,
		&rp.Policy.ApprovalsPerMinute, &rp.Policy.ApprovalsPerHour,
		timeCol{&rp.CreatedAt}, timeCol{&rp.UpdatedAt})
	rp.Policy.NumberMatching = store.NumberMatching(nm)
	rp.Policy.ApprovalTTL = time.Duration(ttlMS) * time.Millisecond
	return rp, err
}

// CreateRelyingParty implements store.RelyingParties.
func (s *Store) CreateRelyingParty(ctx context.Context, rp store.RelyingParty) error {
	_, err := s.w.ExecContext(ctx, s.q("INSERT INTO relying_parties ("+rpColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		rp.ID, rp.Name, rp.DisplayName, string(rp.Policy.NumberMatching), rp.Policy.ApprovalTTL.Milliseconds(),
		rp.Policy.AllowLocationAutomation, rp.Policy.AllowBackupRestore,
		rp.Policy.ApprovalsPerMinute, rp.Policy.ApprovalsPerHour,
		timeArg(rp.CreatedAt), timeArg(rp.UpdatedAt))
	if err != nil {
		return fmt.Errorf("create relying party %q: %w", rp.ID, mapErr(err))
	}
	return nil
}

// GetRelyingParty implements store.RelyingParties. Inside InTx on
// PostgreSQL it locks the row until the transaction ends (FOR UPDATE), so a
// read-modify-write of a relying party cannot lose a concurrent one; SQLite
// transactions are serialized already (BEGIN IMMEDIATE).
func (s *Store) GetRelyingParty(ctx context.Context, id string) (store.RelyingParty, error) {
	query := "SELECT " + rpColumns + " FROM relying_parties WHERE id = ?"
	if s.tx != nil && s.dialect == dialectPostgres {
		query += " FOR UPDATE"
	}
	rp, err := scanRelyingParty(s.r.QueryRowContext(ctx, s.q(query), id))
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
	return collect(rows, "list relying parties", scanRelyingParty)
}

// UpdateRelyingParty implements store.RelyingParties.
func (s *Store) UpdateRelyingParty(ctx context.Context, rp store.RelyingParty) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE relying_parties SET display_name = ?, number_matching = ?,
		approval_ttl_ms = ?, allow_location_automation = ?, allow_backup_restore = ?,
		approvals_per_minute = ?, approvals_per_hour = ?, updated_at = ?
		WHERE id = ?`),
		rp.DisplayName, string(rp.Policy.NumberMatching), rp.Policy.ApprovalTTL.Milliseconds(),
		rp.Policy.AllowLocationAutomation, rp.Policy.AllowBackupRestore,
		rp.Policy.ApprovalsPerMinute, rp.Policy.ApprovalsPerHour, timeArg(rp.UpdatedAt), rp.ID)
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
	return collect(rows, "list api keys", scanAPIKey)
}

// RevokeAPIKey implements store.APIKeys. The WHERE clause is the
// compare-and-swap: the database lets exactly one concurrent UPDATE match.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.swap(ctx, "revoke api key", "api_keys", id, "already revoked",
		"UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", timeArg(at), id)
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

// swap runs a compare-and-swap UPDATE on the row id of table: nil when it
// changed the row, else ErrNotFound when there is no such row and
// ErrConflict ("<why>") when the row exists but was not in the expected
// state. The WHERE clause makes the database let exactly one concurrent
// UPDATE match.
func (s *Store) swap(ctx context.Context, what, table, id, why, query string, args ...any) error {
	res, err := s.w.ExecContext(ctx, s.q(query), args...)
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
	ok, err := s.exists(ctx, table, id)
	switch {
	case err != nil:
		return fmt.Errorf("%s %q: %w", what, id, mapErr(err))
	case !ok:
		return fmt.Errorf("%s %q: %w", what, id, store.ErrNotFound)
	}
	return fmt.Errorf("%s %q: %s: %w", what, id, why, store.ErrConflict)
}

// Devices.

const deviceColumns = "id, credential_prefix, credential_hash, phone_number, public_key, platform, push_token, push_token_dead, name, app_version, created_at, last_seen_at, revoked_at, locale"

func scanDevice(sc scanner) (store.Device, error) {
	var d store.Device
	err := sc.Scan(&d.ID, &d.CredentialPrefix, &d.CredentialHash, &d.PhoneNumber, &d.PublicKey,
		&d.Platform, &d.PushToken, &d.PushTokenDead, &d.Name, &d.AppVersion,
		timeCol{&d.CreatedAt}, timeCol{&d.LastSeenAt}, timeCol{&d.RevokedAt}, &d.Locale)
	return d, err
}

// CreateDevice implements store.Devices.
func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	_, err := s.w.ExecContext(ctx, s.q("INSERT INTO devices ("+deviceColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		d.ID, d.CredentialPrefix, bytesArg(d.CredentialHash), d.PhoneNumber, bytesArg(d.PublicKey),
		d.Platform, d.PushToken, d.PushTokenDead, d.Name, d.AppVersion,
		timeArg(d.CreatedAt), timeArg(d.LastSeenAt), timeArg(d.RevokedAt), d.Locale)
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

// UpdateDevice implements store.Devices. A revoked device is not updated and
// is ErrNotFound, like a missing one.
func (s *Store) UpdateDevice(ctx context.Context, d store.Device) error {
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE devices SET push_token = ?, push_token_dead = ?, name = ?, app_version = ?, locale = ?
		WHERE id = ? AND revoked_at IS NULL`),
		d.PushToken, d.PushTokenDead, d.Name, d.AppVersion, d.Locale, d.ID)
	if err != nil {
		return fmt.Errorf("update device %q: %w", d.ID, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update device %q: %w", d.ID, err)
	} else if n == 0 {
		return fmt.Errorf("update device %q: %w", d.ID, store.ErrNotFound)
	}
	return nil
}

// RevokeDevice implements store.Devices. The WHERE clause is the
// compare-and-swap: the database lets exactly one concurrent UPDATE match.
func (s *Store) RevokeDevice(ctx context.Context, id string, at time.Time) error {
	return s.swap(ctx, "revoke device", "devices", id, "already revoked",
		"UPDATE devices SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", timeArg(at), id)
}

// Verifications.

const verificationColumns = "id, phone_number, code_hash, link_hash, locale, client_address, created_at, expires_at, attempts, used_at"

func scanVerification(sc scanner) (store.Verification, error) {
	var v store.Verification
	err := sc.Scan(&v.ID, &v.PhoneNumber, &v.CodeHash, &v.LinkHash, &v.Locale, &v.ClientAddress,
		timeCol{&v.CreatedAt}, timeCol{&v.ExpiresAt}, &v.Attempts, timeCol{&v.UsedAt})
	return v, err
}

// CreateVerification implements store.Verifications. Attempts and UsedAt are
// stored as given.
func (s *Store) CreateVerification(ctx context.Context, v store.Verification) error {
	_, err := s.w.ExecContext(ctx, s.q("INSERT INTO phone_verifications ("+verificationColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		v.ID, v.PhoneNumber, bytesArg(v.CodeHash), bytesArg(v.LinkHash), v.Locale, v.ClientAddress,
		timeArg(v.CreatedAt), timeArg(v.ExpiresAt), v.Attempts, timeArg(v.UsedAt))
	if err != nil {
		return fmt.Errorf("create verification %q: %w", v.ID, mapErr(err))
	}
	return nil
}

// GetVerification implements store.Verifications.
func (s *Store) GetVerification(ctx context.Context, id string) (store.Verification, error) {
	v, err := scanVerification(s.r.QueryRowContext(ctx, s.q("SELECT "+verificationColumns+" FROM phone_verifications WHERE id = ?"), id))
	if err != nil {
		return store.Verification{}, fmt.Errorf("get verification %q: %w", id, mapErr(err))
	}
	return v, nil
}

// LatestVerification implements store.Verifications. Of verifications created
// at the same time the one with the greatest ID wins; one without CreatedAt
// is older than any with.
func (s *Store) LatestVerification(ctx context.Context, phoneNumber string) (store.Verification, error) {
	v, err := scanVerification(s.r.QueryRowContext(ctx, s.q("SELECT "+verificationColumns+
		" FROM phone_verifications WHERE phone_number = ? ORDER BY created_at DESC NULLS LAST, id DESC LIMIT 1"), phoneNumber))
	if err != nil {
		return store.Verification{}, fmt.Errorf("latest verification of %s: %w", pii.MaskPhone(phoneNumber), mapErr(err))
	}
	return v, nil
}

// AddVerificationAttempt implements store.Verifications in one conditional
// statement. A used verification takes no more attempts: it is ErrNotFound,
// like a missing one.
func (s *Store) AddVerificationAttempt(ctx context.Context, id string, maxAttempts int) (int, error) {
	var n int
	err := s.w.QueryRowContext(ctx, s.q("UPDATE phone_verifications SET attempts = attempts + 1 WHERE id = ? AND used_at IS NULL AND attempts < ? RETURNING attempts"),
		id, maxAttempts).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		var attempts int
		err = s.w.QueryRowContext(ctx, s.q("SELECT attempts FROM phone_verifications WHERE id = ? AND used_at IS NULL"), id).Scan(&attempts)
		if err == nil {
			return 0, fmt.Errorf("add verification attempt to %q: %d of %d made: %w", id, attempts, maxAttempts, store.ErrConflict)
		}
	}
	if err != nil {
		return 0, fmt.Errorf("add verification attempt to %q: %w", id, mapErr(err))
	}
	return n, nil
}

// UseVerification implements store.Verifications. The WHERE clause is the
// compare-and-swap: the database lets exactly one concurrent UPDATE match. A
// verification without ExpiresAt counts as expired. A zero at is an error:
// it would mark nothing used.
func (s *Store) UseVerification(ctx context.Context, id string, at time.Time, maxAttempts int) error {
	if at.IsZero() {
		return fmt.Errorf("use verification %q: no time given", id)
	}
	res, err := s.w.ExecContext(ctx, s.q(`UPDATE phone_verifications SET used_at = ?
		WHERE id = ? AND used_at IS NULL AND expires_at > ? AND attempts < ?`),
		at.UnixMicro(), id, at.UnixMicro(), maxAttempts)
	if err != nil {
		return fmt.Errorf("use verification %q: %w", id, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("use verification %q: %w", id, err)
	}
	if n > 0 {
		return nil
	}
	// Say why it lost; on the writer, so it sees the write that won.
	var usedAt, expiresAt time.Time
	var attempts int
	err = s.w.QueryRowContext(ctx, s.q("SELECT used_at, expires_at, attempts FROM phone_verifications WHERE id = ?"), id).
		Scan(timeCol{&usedAt}, timeCol{&expiresAt}, &attempts)
	if err != nil {
		return fmt.Errorf("use verification %q: %w", id, mapErr(err))
	}
	reason := "expired"
	switch {
	case !usedAt.IsZero():
		reason = "already used"
	case attempts >= maxAttempts:
		reason = fmt.Sprintf("%d of %d attempts made", attempts, maxAttempts)
	}
	return fmt.Errorf("use verification %q: %s: %w", id, reason, store.ErrConflict)
}

// Outbox.

// AddOutboxMessage implements store.Outbox. m.ID is ignored.
func (s *Store) AddOutboxMessage(ctx context.Context, m store.OutboxMessage) (int64, error) {
	var id int64
	err := s.w.QueryRowContext(ctx, s.q("INSERT INTO sms_outbox (phone_number, body, created_at) VALUES (?, ?, ?) RETURNING id"),
		m.PhoneNumber, m.Body, timeArg(m.CreatedAt)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("add outbox message: %w", mapErr(err))
	}
	return id, nil
}

// ListOutboxMessages implements store.Outbox. A limit of 0 or less means no
// limit.
func (s *Store) ListOutboxMessages(ctx context.Context, phoneNumber string, limit int) ([]store.OutboxMessage, error) {
	query := "SELECT id, phone_number, body, created_at FROM sms_outbox"
	var args []any
	if phoneNumber != "" {
		query += " WHERE phone_number = ?"
		args = append(args, phoneNumber)
	}
	query += " ORDER BY id DESC"
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.r.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("list outbox messages: %w", mapErr(err))
	}
	defer rows.Close()
	var out []store.OutboxMessage
	for rows.Next() {
		var m store.OutboxMessage
		if err := rows.Scan(&m.ID, &m.PhoneNumber, &m.Body, timeCol{&m.CreatedAt}); err != nil {
			return nil, fmt.Errorf("list outbox messages: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list outbox messages: %w", mapErr(err))
	}
	return out, nil
}

// Audit.

const auditColumns = "id, time, actor, action, relying_party_id, target, request_id, details"

// auditInsertColumns are what AppendAuditEvent and RecordAuditEvent write.
const auditInsertColumns = "time, actor, action, relying_party_id, target, request_id, details"

// AppendAuditEvent implements store.Audit. e.ID is ignored.
func (s *Store) AppendAuditEvent(ctx context.Context, e store.AuditEvent) (int64, error) {
	details, err := json.Marshal(e.Details)
	if err != nil {
		return 0, fmt.Errorf("append audit event: encode details: %w", err)
	}
	var id int64
	err = s.w.QueryRowContext(ctx, s.q("INSERT INTO audit_events ("+auditInsertColumns+") VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"),
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
