package main

import (
	"context"
	"fmt"
	"io"

	"github.com/pushauth/pushauth/internal/store/sqlstore"
)

// runMigrate is "pushauthd migrate up|down|version [flags]": schema changes
// by hand, e.g. before a rollback. The server migrates up by itself at start.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "up" && args[0] != "down" && args[0] != "version") {
		fmt.Fprintln(stderr, "usage: pushauthd migrate up|down|version [flags]\n  up       apply all migrations\n  down     undo all migrations (drops every table: all data is lost)\n  version  print the schema version")
		return 2
	}
	cfg, log, code := configure(args[1:], getenv, environ, stdout, stderr)
	if code >= 0 {
		return code
	}
	st, err := sqlstore.Open(ctx, cfg.databaseURL(), log)
	if err != nil {
		fmt.Fprintf(stderr, "pushauthd: database: %v\n", err)
		return 1
	}
	defer st.Close()
	switch args[0] {
	case "up":
		err = st.MigrateUp(ctx)
	case "down":
		err = st.MigrateDown(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pushauthd: migrate %s: %v\n", args[0], err)
		return 1
	}
	v, dirty, err := st.MigrateVersion(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "pushauthd: migrate version: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "schema version %d (%s)", v, st.Dialect())
	if dirty {
		fmt.Fprint(stdout, ", DIRTY: a migration failed halfway; fix it by hand")
	}
	fmt.Fprintln(stdout)
	return 0
}
