package cluster

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// buildDir holds pushauthd, built once for the package's tests.
var buildDir string

var binary = sync.OnceValues(func() (string, error) {
	return Build(context.Background(), buildDir)
})

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pushauth-test-build-")
	if err != nil {
		panic(err)
	}
	buildDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// tiny is smaller than Quick: the normal suite runs it on every change.
var tiny = Scale{Users: 4, Before: 8, After: 8, Outage: 5 * time.Second, FlowTimeout: time.Minute}

// runScenario runs one scenario of Scenarios on real processes and fails
// unless every login was accounted for (lost = stuck = wrong = 0).
func runScenario(t *testing.T, name, dsn string) {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Fatal(err)
	}
	results, err := RunAll(t.Context(), Options{Binary: bin, PostgresDSN: dsn, Logf: t.Logf}, tiny, []string{name}, func(r Result, e *Env) {
		t.Log(r.Line())
		if !r.Pass() {
			for _, ex := range r.Examples {
				t.Log(ex)
			}
			if e != nil {
				t.Logf("log tails:\n%s", e.C.Logs(30))
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if !r.Pass() {
			t.Errorf("%s", r.Line())
		}
		if r.Approved == 0 {
			t.Errorf("%s: no login went through", r.Scenario)
		}
	}
}

// TestSQLiteKill9 kills a single SQLite node with SIGKILL mid-load and
// restarts it on the same data directory.
func TestSQLiteKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pushauthd")
	}
	runScenario(t, "sqlite-kill9", "")
}

// TestPostgresTerminate ends every PostgreSQL connection of three replicas
// (on a 3-node NATS cluster) mid-load.
func TestPostgresTerminate(t *testing.T) {
	dsn := os.Getenv("PUSHAUTH_TEST_POSTGRES_DSN")
	if dsn == "" || testing.Short() {
		t.Skip("PUSHAUTH_TEST_POSTGRES_DSN not set")
	}
	if _, err := os.Stat(NATSServerBin); err != nil && os.Getenv("CI") == "" {
		t.Skip("no " + NATSServerBin)
	}
	runScenario(t, "pg-terminate", dsn)
}
