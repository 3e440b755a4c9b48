package main

import (
	"context"
	"fmt"
	"io"

	"github.com/pushauth/pushauth/internal/reseal"
	"github.com/pushauth/pushauth/internal/store/sqlstore"
)

// runReseal is "pushauthd reseal [flags]": after a rotation of secret_key
// has put a new key first, it re-seals backup key shares and TOTP seeds
// under that key, so the older keys can be dropped. It runs beside serving
// replicas (every replacement is compare-and-swap) and can be run again.
func runReseal(ctx context.Context, args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) int {
	cfg, log, code := configure(args, getenv, environ, stdout, stderr)
	if code >= 0 {
		return code
	}
	keys, err := loadKeys(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "pushauthd: %v\n", err)
		return 1
	}
	st, err := sqlstore.Open(ctx, cfg.databaseURL(), log)
	if err != nil {
		fmt.Fprintf(stderr, "pushauthd: database: %v\n", err)
		return 1
	}
	defer st.Close()
	if v, dirty, err := st.MigrateVersion(ctx); err != nil || dirty || v == 0 {
		fmt.Fprintf(stderr, "pushauthd: reseal: the database schema is not ready (version %d, dirty %v, %v): run pushauthd migrate up first\n", v, dirty, err)
		return 1
	}
	fmt.Fprintf(stderr, "re-sealing under key %s (keys configured: %v)\n", keys.IDs()[0], keys.IDs())
	counts, err := reseal.Job{Store: st, Keys: keys, Log: log,
		Progress: func(c reseal.Count) { fmt.Fprintf(stderr, "  %s\n", c) },
	}.Run(ctx)
	failed := 0
	for _, c := range counts {
		fmt.Fprintln(stdout, c)
		failed += c.Failed
	}
	if err != nil {
		fmt.Fprintf(stderr, "pushauthd: reseal: %v (run it again: what is done stays done)\n", err)
		return 1
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "pushauthd: reseal: %d values do not open with any configured key (the log names the key ids they need); keep those keys, or the backups and TOTP factors they protect stop working\n", failed)
		return 1
	}
	fmt.Fprintf(stdout, "everything sealed is now under key %s; keys after it can be dropped once no backup passcode made before the rotation is in use (see docs/security/secrets.md)\n", keys.IDs()[0])
	return 0
}
