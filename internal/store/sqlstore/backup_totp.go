package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/pushauth/pushauth/internal/pii"
	"github.com/pushauth/pushauth/internal/store"
)

// Backups and TOTP factors.

// Backups.

const backupColumns = "phone_number, device_id, blob, sealed_share, verifier, failed_attempts, locked_until, created_at, updated_at"

func scanBackup(sc scanner) (store.Backup, error) {
	var b store.Backup
	err := sc.Scan(&b.PhoneNumber, &b.DeviceID, &b.Blob, &b.SealedShare, &b.Verifier,
		&b.FailedAttempts, timeCol{&b.LockedUntil}, timeCol{&b.CreatedAt}, timeCol{&b.UpdatedAt})
	return b, err
}

// PutBackup implements store.Backups in one statement. A replaced backup
// takes every field of b, CreatedAt included.
func (s *Store) PutBackup(ctx context.Context, b store.Backup) error {
	_, err := s.w.ExecContext(ctx, s.q("INSERT INTO backups ("+backupColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (phone_number) DO UPDATE SET device_id = excluded.device_id, blob = excluded.blob,
		sealed_share = excluded.sealed_share, verifier = excluded.verifier, failed_attempts = excluded.failed_attempts,
		locked_until = excluded.locked_until, created_at = excluded.created_at, updated_at = excluded.updated_at`),
		b.PhoneNumber, b.DeviceID, bytesArg(b.Blob), bytesArg(b.SealedShare), bytesArg(b.Verifier),
		b.FailedAttempts, timeArg(b.LockedUntil), timeArg(b.CreatedAt), timeArg(b.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put backup of %s: %w", pii.MaskPhone(b.PhoneNumber), mapErr(err))
	}
	return nil
}

// GetBackup implements store.Backups.
func (s *Store) GetBackup(ctx context.Context, phoneNumber string) (store.Backup, error) {
	b, err := scanBackup(s.r.QueryRowContext(ctx, s.q("SELECT "+backupColumns+" FROM backups WHERE phone_number = ?"), phoneNumber))
	if err != nil {
		return store.Backup{}, fmt.Errorf("get backup of %s: %w", pii.MaskPhone(phoneNumber), mapErr(err))
	}
	return b, nil
}

// DeleteBackup implements store.Backups.
func (s *Store) DeleteBackup(ctx context.Context, phoneNumber string) error {
	res, err := s.w.ExecContext(ctx, s.q("DELETE FROM backups WHERE phone_number = ?"), phoneNumber)
	if err != nil {
		return fmt.Errorf("delete backup of %s: %w", pii.MaskPhone(phoneNumber), mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete backup of %s: %w", pii.MaskPhone(phoneNumber), err)
	} else if n == 0 {
		return fmt.Errorf("delete backup of %s: %w", pii.MaskPhone(phoneNumber), store.ErrNotFound)
	}
	return nil
}

// AddBackupFailure implements store.Backups in one transaction (the Store's
// own, or a new one). The increment locks the row until the transaction
// ends (PostgreSQL; SQLite transactions are serialized already), so
// concurrent callers each get a count of their own and the lock-out is
// always the one computed from the count stored with it. lockedUntil runs
// inside the transaction and should only compute. A nil lockedUntil leaves
// LockedUntil as it is.
func (s *Store) AddBackupFailure(ctx context.Context, phoneNumber string, lockedUntil func(failures int) time.Time) (int, error) {
	var n int
	err := s.atomically(ctx, func(tx *Store) error {
		if err := tx.w.QueryRowContext(ctx, tx.q("UPDATE backups SET failed_attempts = failed_attempts + 1 WHERE phone_number = ? RETURNING failed_attempts"),
			phoneNumber).Scan(&n); err != nil {
			return mapErr(err)
		}
		if lockedUntil == nil {
			return nil
		}
		_, err := tx.w.ExecContext(ctx, tx.q("UPDATE backups SET locked_until = ? WHERE phone_number = ?"),
			timeArg(lockedUntil(n)), phoneNumber)
		return mapErr(err)
	})
	if err != nil {
		return 0, fmt.Errorf("add backup failure to %s: %w", pii.MaskPhone(phoneNumber), err)
	}
	return n, nil
}

// ResetBackupFailures implements store.Backups. ErrNotFound if there is no
// backup of the number.
func (s *Store) ResetBackupFailures(ctx context.Context, phoneNumber string) error {
	res, err := s.w.ExecContext(ctx, s.q("UPDATE backups SET failed_attempts = 0, locked_until = NULL WHERE phone_number = ?"), phoneNumber)
	if err != nil {
		return fmt.Errorf("reset backup failures of %s: %w", pii.MaskPhone(phoneNumber), mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("reset backup failures of %s: %w", pii.MaskPhone(phoneNumber), err)
	} else if n == 0 {
		return fmt.Errorf("reset backup failures of %s: %w", pii.MaskPhone(phoneNumber), store.ErrNotFound)
	}
	return nil
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
	defer rows.Close()
	var out []store.TOTPFactor
	for rows.Next() {
		f, err := scanTOTPFactor(rows)
		if err != nil {
			return nil, fmt.Errorf("list user totp factors: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list user totp factors: %w", mapErr(err))
	}
	return out, nil
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
