package sqlstore

import (
	"context"
	"fmt"

	"github.com/pushauth/pushauth/internal/store"
)

// sealedColumn names the table, row key and column of a sealed kind. Only
// these fixed names are ever put into SQL.
func sealedColumn(kind string) (table, key, col string, err error) {
	switch kind {
	case store.SealBackupShare:
		return "backups", "phone_number", "sealed_share", nil
	case store.SealTOTPSecret:
		return "totp_factors", "id", "sealed_secret", nil
	}
	return "", "", "", fmt.Errorf("unknown sealed kind %q", kind)
}

// ListSealed implements store.Seals.
func (s *Store) ListSealed(ctx context.Context, kind, after string, limit int) ([]store.Sealed, error) {
	table, key, col, err := sealedColumn(kind)
	if err != nil {
		return nil, fmt.Errorf("list sealed: %w", err)
	}
	rows, err := s.r.QueryContext(ctx, s.q("SELECT "+key+", "+col+" FROM "+table+
		" WHERE "+key+" > ? AND "+col+" IS NOT NULL ORDER BY "+key+" LIMIT ?"), after, limit)
	if err != nil {
		return nil, fmt.Errorf("list sealed %s: %w", kind, mapErr(err))
	}
	return collect(rows, "list sealed "+kind, func(sc scanner) (store.Sealed, error) {
		var v store.Sealed
		err := sc.Scan(&v.Key, &v.Value)
		return v, err
	})
}

// ReplaceSealed implements store.Seals in one conditional statement; only
// when it changes nothing is the row looked up, to tell a missing row from
// a changed one.
func (s *Store) ReplaceSealed(ctx context.Context, kind, rowKey string, prev, next []byte) error {
	table, key, col, err := sealedColumn(kind)
	if err != nil {
		return fmt.Errorf("replace sealed: %w", err)
	}
	res, err := s.w.ExecContext(ctx, s.q("UPDATE "+table+" SET "+col+" = ? WHERE "+key+" = ? AND "+col+" = ?"),
		bytesArg(next), rowKey, bytesArg(prev))
	if err != nil {
		return fmt.Errorf("replace sealed %s: %w", kind, mapErr(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("replace sealed %s: %w", kind, err)
	} else if n > 0 {
		return nil
	}
	var one int
	err = s.w.QueryRowContext(ctx, s.q("SELECT 1 FROM "+table+" WHERE "+key+" = ?"), rowKey).Scan(&one)
	if err != nil {
		return fmt.Errorf("replace sealed %s: %w", kind, mapErr(err))
	}
	return fmt.Errorf("replace sealed %s: the value changed: %w", kind, store.ErrConflict)
}
