package sqlstore

import (
	"context"

	"github.com/golang-migrate/migrate/v4"
)

// MigrateSteps applies n migrations up (n > 0) or reverts -n (n < 0), so
// tests can check one down migration at a time.
func (s *Store) MigrateSteps(ctx context.Context, n int) error {
	return s.migrate(ctx, "migrate steps", func(m *migrate.Migrate) error { return m.Steps(n) })
}
