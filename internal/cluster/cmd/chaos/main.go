// Command chaos runs the fault scenarios of package cluster against real
// pushauthd, nats-server and PostgreSQL processes and prints one line per
// scenario. It exits 1 when any scenario loses or strands a login, or
// cannot run. scripts/chaos.sh is its front door.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/pushauth/pushauth/internal/cluster"
)

func main() {
	quick := flag.Bool("quick", false, "run each scenario scaled down (CI)")
	only := flag.String("only", "", "comma-separated scenario names (default: all)")
	dsn := flag.String("postgres", os.Getenv("PUSHAUTH_TEST_POSTGRES_DSN"), "PostgreSQL server for the shared-database scenarios (maintenance database URL)")
	verbose := flag.Bool("v", false, "log progress")
	keep := flag.Bool("keep", false, "keep every cluster's directory (logs, data), not only failed ones")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := log.New(os.Stderr, "chaos: ", log.Ltime)
	logf := func(string, ...any) {}
	if *verbose {
		logf = logger.Printf
	}
	if *dsn == "" {
		*dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	sc := cluster.Full
	if *quick {
		sc = cluster.Quick
	}
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	if cluster.PGBinDir() == "" && (len(names) == 0 || slices.Contains(names, "pg-restart")) {
		logger.Printf("initdb/pg_ctl not installed: skipping pg-restart")
		names = without(names, "pg-restart")
		if len(names) == 0 {
			logger.Printf("no scenario left to run")
			os.Exit(2)
		}
	}
	failed := false
	_, err := cluster.RunAll(ctx, cluster.Options{PostgresDSN: *dsn, Logf: logf, Keep: *keep}, sc, names, func(r cluster.Result, e *cluster.Env) {
		fmt.Println(r.Line())
		if !r.Pass() || *verbose {
			for _, ex := range r.Examples {
				logger.Printf("%s: %s", r.Scenario, ex)
			}
		}
		if !r.Pass() {
			failed = true
			if e != nil {
				logger.Printf("%s failed; log tails:\n%s", r.Scenario, e.C.Logs(30))
			}
		}
	})
	if err != nil {
		logger.Print(err)
		os.Exit(1)
	}
	if failed {
		os.Exit(1)
	}
}

// without returns every scenario but name (all of them when list is empty).
func without(list []string, name string) []string {
	if len(list) == 0 {
		for _, s := range cluster.Scenarios() {
			list = append(list, s.Name)
		}
	}
	var out []string
	for _, x := range list {
		if x != name {
			out = append(out, x)
		}
	}
	return out
}
