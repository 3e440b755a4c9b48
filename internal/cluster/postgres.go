package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is the database the replicas share: a database of its own,
// created for the run and dropped after, either on an existing server
// (AdminDSN) or on a throwaway server the harness runs itself.
type Postgres struct {
	// DSN is the pushauth database's URL.
	DSN string
	// AdminDSN is the server's maintenance database, for creating,
	// dropping and terminating.
	AdminDSN string
	name     string
	// instance is the harness's own server, nil on a shared one.
	instance *pgInstance
}

// createDatabase makes a fresh database on the server at adminDSN.
func createDatabase(ctx context.Context, adminDSN string) (*Postgres, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "pushauth_cluster_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("postgres: create database: %w", err)
	}
	u, err := url.Parse(adminDSN)
	if err != nil {
		return nil, err
	}
	u.Path = "/" + name
	return &Postgres{DSN: u.String(), AdminDSN: adminDSN, name: name}, nil
}

// drop removes the database (and stops the throwaway server).
func (p *Postgres) drop(ctx context.Context) error {
	if p.instance != nil {
		return p.instance.stop()
	}
	conn, err := pgx.Connect(ctx, p.AdminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+p.name+" WITH (FORCE)")
	return err
}

// TerminateBackends ends every connection to the pushauth database, as an
// operator's pg_terminate_backend or a failover does, and returns how many
// were ended.
func (p *Postgres) TerminateBackends(ctx context.Context) (int, error) {
	conn, err := pgx.Connect(ctx, p.AdminDSN)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()) t`, p.name).Scan(&n)
	return n, err
}

// Size is the database's size in bytes.
func (p *Postgres) Size(ctx context.Context) (int64, error) {
	conn, err := pgx.Connect(ctx, p.AdminDSN)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int64
	err = conn.QueryRow(ctx, "SELECT pg_database_size($1)", p.name).Scan(&n)
	return n, err
}

// Stop stops the throwaway server (fast shutdown); only a server the
// harness runs can be stopped.
func (p *Postgres) Stop() error {
	if p.instance == nil {
		return errors.New("postgres: the server is shared; only the harness's own server can be stopped")
	}
	return p.instance.ctl("stop", "-m", "fast")
}

// Start starts the throwaway server again.
func (p *Postgres) Start() error {
	if p.instance == nil {
		return errors.New("postgres: the server is shared")
	}
	return p.instance.ctl("start")
}

// pgInstance is a PostgreSQL server of the harness's own (initdb +
// pg_ctl), on a free port, so it can be restarted without disturbing
// anyone else.
type pgInstance struct {
	bin, data, log string
	port           int
	asUser         string // run the tools as this user (PostgreSQL refuses root)
}

// PGBinDir finds PostgreSQL's server tools (initdb, pg_ctl), newest
// version first; "" if they are not installed.
func PGBinDir() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// startOwnPostgres initdbs and starts a server under dir and creates the
// pushauth database on it.
func startOwnPostgres(ctx context.Context, dir string) (*Postgres, error) {
	bin := PGBinDir()
	if bin == "" {
		return nil, errors.New("postgres: initdb and pg_ctl are not installed")
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	inst := &pgInstance{bin: bin, data: filepath.Join(dir, "pgdata"), log: filepath.Join(dir, "postgres.log"), port: ports[0]}
	if os.Geteuid() == 0 {
		u, err := osuser.Lookup("postgres")
		if err != nil {
			return nil, errors.New("postgres: running as root and there is no postgres user to run initdb as")
		}
		inst.asUser = "postgres"
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.MkdirAll(inst.data, 0o700); err != nil {
			return nil, err
		}
		// The server's user must reach its data directory and log.
		for d := inst.data; d != "/" && d != "."; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
				_ = os.Chmod(d, st.Mode().Perm()|0o011)
			}
		}
		if err := os.Chown(inst.data, uid, gid); err != nil {
			return nil, err
		}
		if f, err := os.Create(inst.log); err == nil {
			f.Close()
			_ = os.Chown(inst.log, uid, gid)
		}
	}
	if out, err := inst.run(filepath.Join(bin, "initdb"), "-D", inst.data, "-U", "postgres", "--auth=trust", "--no-sync"); err != nil {
		return nil, fmt.Errorf("postgres: initdb: %w\n%s", err, out)
	}
	if err := inst.ctl("start"); err != nil {
		return nil, err
	}
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", inst.port)
	pg, err := createDatabase(ctx, admin)
	if err != nil {
		_ = inst.stop()
		return nil, err
	}
	pg.instance = inst
	return pg, nil
}

func (i *pgInstance) run(name string, args ...string) ([]byte, error) {
	var cmd *exec.Cmd
	if i.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", i.asUser, "--", name}, args...)...)
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Dir = os.TempDir()
	return cmd.CombinedOutput()
}

// ctl runs pg_ctl; start waits until the server accepts connections.
func (i *pgInstance) ctl(action string, args ...string) error {
	a := []string{action, "-D", i.data, "-w", "-t", "60"}
	if action == "start" {
		a = append(a, "-l", i.log, "-o", fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c max_connections=200", i.port, i.data))
	}
	a = append(a, args...)
	if out, err := i.run(filepath.Join(i.bin, "pg_ctl"), a...); err != nil {
		return fmt.Errorf("postgres: pg_ctl %s: %w\n%s", action, err, out)
	}
	return nil
}

func (i *pgInstance) stop() error {
	err := i.ctl("stop", "-m", "immediate")
	return err
}

// pingPostgres checks the server at dsn answers.
func pingPostgres(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}
