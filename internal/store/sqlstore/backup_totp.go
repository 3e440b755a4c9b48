package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Backups and TOTP factors.

// Backups.

const backupColumns = "phone_number, device_id, blob, sealed_share, verifier, version, created_at, updated_at"

func scanBackup(sc scanner) (store.Backup, error) {
	var b store.Backup
	err := sc.Scan(&b.PhoneNumber, &b.DeviceID, &b.Blob, &b.SealedShare, &b.Verifier,
		&b.Version, timeCol{&b.CreatedAt}, timeCol{&b.UpdatedAt})
	return b, err
}

// PutBackup implements store.Backups in one conditional statement: an
// insert that does nothing when a backup exists, or an update whose WHERE
// names the version it replaces.
func (s *Store) PutBackup(ctx context.Context, b store.Backup, version int64) error {
	var res sql.Result
	var err error
	if version == 0 {
		res, err = s.w.ExecContext(ctx, s.q("INSERT INTO backups ("+backupColumns+`) VALUES (?, ?, ?, ?, ?, 1, ?, ?)
			ON CONFLICT (phone_number) DO NOTHING`),
			b.PhoneNumber, b.DeviceID, bytesArg(b.Blob), bytesArg(b.SealedShare), bytesArg(b.Verifier), timeArg(b.CreatedAt), timeArg(b.UpdatedAt))
	} else {
		res, err = s.w.ExecContext(ctx, s.q(`UPDATE backups SET device_id = ?, blob = ?, sealed_share = ?, verifier = ?,
			version = version + 1, created_at = ?, updated_at = ? WHERE phone_number = ? AND version = ?`),
			b.DeviceID, bytesArg(b.Blob), bytesArg(b.SealedShare), bytesArg(b.Verifier), timeArg(b.CreatedAt), timeArg(b.UpdatedAt),
			b.PhoneNumber, version)
	}
	if err != nil {
		return fmt.Errorf("put backup: %w", mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("put backup: %w", err)
	} else if n == 0 {
		return fmt.Errorf("put backup: not at version %d: %w", version, store.ErrConflict)
	}
	return nil
}

// GetBackup implements store.Backups.
func (s *Store) GetBackup(ctx context.Context, phoneNumber string) (store.Backup, error) {
	b, err := scanBackup(s.r.QueryRowContext(ctx, s.q("SELECT "+backupColumns+" FROM backups WHERE phone_number = ?"), phoneNumber))
	if err != nil {
		return store.Backup{}, fmt.Errorf("get backup: %w", mapErr(err))
	}
	return b, nil
}

// DeleteBackup implements store.Backups.
func (s *Store) DeleteBackup(ctx context.Context, phoneNumber string, version int64) error {
	res, err := s.w.ExecContext(ctx, s.q("DELETE FROM backups WHERE phone_number = ? AND version = ?"), phoneNumber, version)
	if err != nil {
		return fmt.Errorf("delete backup: %w", mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete backup: %w", err)
	} else if n > 0 {
		return nil
	}
	if ok, err := s.backupExists(ctx, phoneNumber); err != nil {
		return fmt.Errorf("delete backup: %w", err)
	} else if ok {
		return fmt.Errorf("delete backup: not at version %d: %w", version, store.ErrConflict)
	}
	return fmt.Errorf("delete backup: %w", store.ErrNotFound)
}

func (s *Store) backupExists(ctx context.Context, phoneNumber string) (bool, error) {
	var one int
	err := s.w.QueryRowContext(ctx, s.q("SELECT 1 FROM backups WHERE phone_number = ?"), phoneNumber).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, mapErr(err)
}

// TOTP factors.

const totpFactorColumns = "id, relying_party_id, user_ref, kind, connection_id, label, sealed_secret, status, last_used_step, created_at, confirmed_at, removed_at"

func scanTOTPFactor(sc scanner) (store.TOTPFactor, error) {
	var f store.TOTPFactor
	err := sc.Scan(&f.ID, &f.RelyingPartyID, &f.UserRef, &f.Kind, &f.ConnectionID, &f.Label, &f.SealedSecret,
		&f.Status, &f.LastUsedStep, timeCol{&f.CreatedAt}, timeCol{&f.ConfirmedAt}, timeCol{&f.RemovedAt})
	return f, err
}

// CreateTOTPFactor implements store.TOTPFactors. Every field is stored as
// given, Status and LastUsedStep included.
func (s *Store) CreateTOTPFactor(ctx context.Context, f store.TOTPFactor) error {
	_, err := s.w.ExecContext(ctx, s.q("INSERT INTO totp_factors ("+totpFactorColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
		f.ID, f.RelyingPartyID, f.UserRef, f.Kind, f.ConnectionID, f.Label, bytesArg(f.SealedSecret),
		f.Status, f.LastUsedStep, timeArg(f.CreatedAt), timeArg(f.ConfirmedAt), timeArg(f.RemovedAt))
	if err != nil {
		return fmt.Errorf("create totp factor %q: %w", f.ID, mapErr(err))
	}
	return nil
}

// GetTOTPFactor implements store.TOTPFactors.
func (s *Store) GetTOTPFactor(ctx context.Context, id string) (store.TOTPFactor, error) {
	f, err := scanTOTPFactor(s.r.QueryRowContext(ctx, s.q("SELECT "+totpFactorColumns+" FROM totp_factors WHERE id = ?"), id))
	if err != nil {
		return store.TOTPFactor{}, fmt.Errorf("get totp factor %q: %w", id, mapErr(err))
	}
	return f, nil
}

// ListUserTOTPFactors implements store.TOTPFactors. Oldest is by CreatedAt,
// then ID.
func (s *Store) ListUserTOTPFactors(ctx context.Context, relyingPartyID, userRef string) ([]store.TOTPFactor, error) {
	rows, err := s.r.QueryContext(ctx, s.q("SELECT "+totpFactorColumns+
		` FROM totp_factors WHERE relying_party_id = ? AND user_ref = ? AND status IN (?, ?)
		ORDER BY created_at NULLS FIRST, id`),
		relyingPartyID, userRef, store.TOTPPending, store.TOTPActive)
	if err != nil {
		return nil, fmt.Errorf("list user totp factors: %w", mapErr(err))
	}
	return collect(rows, "list user totp factors", scanTOTPFactor)
}

// GetConnectionTOTPFactor implements store.TOTPFactors. Should a connection
// have several ACTIVE factors, the one confirmed last (then the greatest ID)
// is returned. The connection "" has none: factors that belong to no
// connection are not its.
func (s *Store) GetConnectionTOTPFactor(ctx context.Context, connectionID string) (store.TOTPFactor, error) {
	if connectionID == "" {
		return store.TOTPFactor{}, fmt.Errorf("get totp factor of connection %q: %w", connectionID, store.ErrNotFound)
	}
	f, err := scanTOTPFactor(s.r.QueryRowContext(ctx, s.q("SELECT "+totpFactorColumns+
		" FROM totp_factors WHERE connection_id = ? AND status = ? ORDER BY confirmed_at DESC NULLS LAST, id DESC LIMIT 1"),
		connectionID, store.TOTPActive))
	if err != nil {
		return store.TOTPFactor{}, fmt.Errorf("get totp factor of connection %q: %w", connectionID, mapErr(err))
	}
	return f, nil
}

// ActivateTOTPFactor implements store.TOTPFactors. The WHERE clause is the
// compare-and-swap: the database lets exactly one concurrent UPDATE match.
func (s *Store) ActivateTOTPFactor(ctx context.Context, id string, at time.Time) error {
	return s.swap(ctx, "activate totp factor", "totp_factors", id, "not pending",
		"UPDATE totp_factors SET status = ?, confirmed_at = ? WHERE id = ? AND status = ?",
		store.TOTPActive, timeArg(at), id, store.TOTPPending)
}

// RemoveTOTPFactor implements store.TOTPFactors. The WHERE clause is the
// compare-and-swap: the database lets exactly one concurrent UPDATE match.
func (s *Store) RemoveTOTPFactor(ctx context.Context, id string, at time.Time) error {
	return s.swap(ctx, "remove totp factor", "totp_factors", id, "already removed",
		"UPDATE totp_factors SET status = ?, removed_at = ? WHERE id = ? AND status <> ?",
		store.TOTPRemoved, timeArg(at), id, store.TOTPRemoved)
}

// RemoveConnectionTOTPFactors implements store.TOTPFactors: every factor of
// the connection that is not removed yet is removed at at; removed ones keep
// their RemovedAt. A connection without factors is no error. The connection
// "" has no factors, so nothing is removed for it.
func (s *Store) RemoveConnectionTOTPFactors(ctx context.Context, connectionID string, at time.Time) error {
	if connectionID == "" {
		return nil
	}
	if _, err := s.w.ExecContext(ctx, s.q("UPDATE totp_factors SET status = ?, removed_at = ? WHERE connection_id = ? AND status <> ?"),
		store.TOTPRemoved, timeArg(at), connectionID, store.TOTPRemoved); err != nil {
		return fmt.Errorf("remove totp factors of connection %q: %w", connectionID, mapErr(err))
	}
	return nil
}

// UseTOTPStep implements store.TOTPFactors. The WHERE clause is the
// compare-and-swap: the database lets exactly one concurrent UPDATE match,
// and on PostgreSQL a racer that waited re-checks last_used_step against
// the winner's write.
func (s *Store) UseTOTPStep(ctx context.Context, id string, step int64) error {
	res, err := s.w.ExecContext(ctx, s.q("UPDATE totp_factors SET last_used_step = ? WHERE id = ? AND status = ? AND last_used_step < ?"),
		step, id, store.TOTPActive, step)
	if err != nil {
		return fmt.Errorf("use step %d of totp factor %q: %w", step, id, mapErr(err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("use step %d of totp factor %q: %w", step, id, err)
	}
	if n > 0 {
		return nil
	}
	// Say why it lost; on the writer, so it sees the write that won.
	var status string
	err = s.w.QueryRowContext(ctx, s.q("SELECT status FROM totp_factors WHERE id = ?"), id).Scan(&status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("use step %d of totp factor %q: %w", step, id, store.ErrNotFound)
	case err != nil:
		return fmt.Errorf("use step %d of totp factor %q: %w", step, id, mapErr(err))
	case status != store.TOTPActive:
		return fmt.Errorf("use step %d of totp factor %q: status is %q: %w", step, id, status, store.ErrNotFound)
	}
	return fmt.Errorf("use step %d of totp factor %q: step already used: %w", step, id, store.ErrConflict)
}
