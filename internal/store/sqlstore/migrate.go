package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	migratesqlite "github.com/golang-migrate/migrate/v4/database/sqlite"
	"github.com/golang-migrate/migrate/v4/source/iofs"

	"github.com/pushauth/pushauth/migrations"
)

// MigrateUp applies every migration not applied yet. Being up to date is not
// an error. Cancelling ctx stops it between two migrations (a running one
// finishes).
func (s *Store) MigrateUp(ctx context.Context) error {
	return s.migrate(ctx, "migrate up", func(m *migrate.Migrate) error {
		err := m.Up()
		if err == nil {
			s.logVersion(m, "database migrated up")
		}
		return err
	})
}

// MigrateDown reverts every migration, leaving an empty database. It is for
// tests and for starting over, never for a running service.
func (s *Store) MigrateDown(ctx context.Context) error {
	return s.migrate(ctx, "migrate down", func(m *migrate.Migrate) error {
		err := m.Down()
		if err == nil {
			s.logVersion(m, "database migrated down")
		}
		return err
	})
}

// MigrateVersion reports the schema version (0 when nothing is applied) and
// whether a migration failed half-way (dirty), which needs a human.
func (s *Store) MigrateVersion(ctx context.Context) (version uint, dirty bool, err error) {
	err = s.migrate(ctx, "migration version", func(m *migrate.Migrate) error {
		var err error
		version, dirty, err = m.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			version, dirty, err = 0, false, nil
		}
		return err
	})
	return version, dirty, err
}

// migrate runs fn on a migrate.Migrate over a *sql.DB of its own: the
// drivers close the DB they are given, which must not be the Store's.
func (s *Store) migrate(ctx context.Context, what string, fn func(*migrate.Migrate) error) (err error) {
	if s.tx != nil {
		return fmt.Errorf("%s: called inside InTx", what)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var (
		fsys fs.FS
		dir  string
	)
	switch s.dialect {
	case dialectPostgres:
		fsys, dir = migrations.Postgres, "postgres"
	case dialectSQLite:
		fsys, dir = migrations.SQLite, "sqlite"
	}
	src, err := iofs.New(fsys, dir)
	if err != nil {
		return fmt.Errorf("%s: read migrations: %w", what, err)
	}
	db, err := s.openMigrationDB()
	if err != nil {
		_ = src.Close()
		return fmt.Errorf("%s: open %s: %w", what, s.where, err)
	}
	var drv database.Driver
	switch s.dialect {
	case dialectPostgres:
		drv, err = migratepgx.WithInstance(db, &migratepgx.Config{})
	case dialectSQLite:
		drv, err = migratesqlite.WithInstance(db, &migratesqlite.Config{})
	}
	if err != nil {
		_ = db.Close()
		_ = src.Close()
		return fmt.Errorf("%s: %s: %w", what, s.where, err)
	}
	m, err := migrate.NewWithInstance("iofs", src, s.dialect, drv)
	if err != nil {
		_ = drv.Close()
		_ = src.Close()
		return fmt.Errorf("%s: %w", what, err)
	}
	m.Log = migrateLogger{s.logger}
	defer func() {
		srcErr, dbErr := m.Close()
		if cerr := errors.Join(srcErr, dbErr); cerr != nil && err == nil {
			err = fmt.Errorf("%s: close: %w", what, cerr)
		}
	}()
	stop := context.AfterFunc(ctx, func() {
		select {
		case m.GracefulStop <- true:
		default:
		}
	})
	defer stop()

	err = fn(m)
	if errors.Is(err, migrate.ErrNoChange) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("%s: %s: %w", what, s.where, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: interrupted: %w", what, err)
	}
	return nil
}

// logVersion reports where a migration left the schema.
func (s *Store) logVersion(m *migrate.Migrate, msg string) {
	if v, dirty, err := m.Version(); err == nil || errors.Is(err, migrate.ErrNilVersion) {
		s.logger.Info(msg, "where", s.where, "version", v, "dirty", dirty)
	}
}

// migrateLogger sends golang-migrate's progress lines to slog at debug.
type migrateLogger struct{ l *slog.Logger }

func (m migrateLogger) Printf(format string, v ...any) {
	m.l.Debug("migrate: " + fmt.Sprintf(format, v...))
}

func (m migrateLogger) Verbose() bool { return false }
