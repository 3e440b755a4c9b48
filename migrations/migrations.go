// Package migrations holds pushauth's database schema as golang-migrate files,
// embedded so a single binary can migrate its own database.
package migrations

import "embed"

// Postgres is the schema for PostgreSQL, files under postgres/.
//
//go:embed postgres/*.sql
var Postgres embed.FS

// SQLite is the same schema for SQLite, files under sqlite/. It must stay
// equivalent to Postgres: sqlstore runs the same queries on both.
//
//go:embed sqlite/*.sql
var SQLite embed.FS
