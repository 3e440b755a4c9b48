// Package cluster runs pushauth as an operator does, with real processes:
// N pushauthd replicas built from ./cmd/pushauthd, on PostgreSQL (a
// database of their own, dropped afterwards, on the local server or on a
// throwaway server of the harness's own) or on SQLite (one node), and a
// NATS cluster of real nats-server nodes with JetStream. Every process
// listens on free ports and logs to a file under the cluster's directory,
// which is kept when a run fails. Faults are injected on purpose (kill -9,
// SIGTERM, a NATS node or the whole cluster stopped, PostgreSQL's
// connections terminated or the server restarted) while a load of login
// flows runs and every flow is accounted for (see Load and Scenarios).
//
// It is used by the chaos test of this package and by scripts/chaos.sh and
// scripts/soak.sh (through ./internal/cluster/cmd/chaos and cmd/soak).
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Database says what the replicas store their data in.
type Database int

const (
	// SharedPostgres is a database of its own on the server at
	// Options.PostgresDSN.
	SharedPostgres Database = iota
	// OwnPostgres is a throwaway PostgreSQL server (initdb, pg_ctl) that
	// the harness may restart.
	OwnPostgres
	// SQLite is one replica with SQLite and the embedded NATS server in
	// its data directory.
	SQLite
)

func (d Database) String() string {
	return [...]string{"postgres", "own-postgres", "sqlite"}[d]
}

// Options describe a cluster.
type Options struct {
	// Dir holds the binary, data, logs; empty makes a temporary one.
	Dir string
	// Binary is a built pushauthd; empty builds one into Dir (Build).
	Binary string
	// Replicas is how many pushauthd run (1 for SQLite).
	Replicas int
	// NATSNodes is the size of the NATS cluster (0 with SQLite: embedded).
	NATSNodes int
	Database  Database
	// PostgresDSN is the server for SharedPostgres (its maintenance db).
	PostgresDSN string
	// Extra are flags added to every replica's command line.
	Extra []string
	// Logf reports progress; nil is silent.
	Logf func(format string, args ...any)
	// Keep keeps the directory (logs, data) of runs that passed too.
	Keep bool
}

// Cluster is a running deployment.
type Cluster struct {
	opts     Options
	Dir      string
	Replicas []*Replica
	NATS     *NATSCluster // nil with SQLite
	PG       *Postgres    // nil with SQLite
	FCM      *FakeFCM
	// AdminToken and SecretKey are what every replica is given.
	AdminToken string
	SecretKey  string
	ownDir     bool
}

// Replica is one pushauthd process.
type Replica struct {
	*proc
	Index    int
	GRPCAddr string
	OpsAddr  string
	DataDir  string
	conn     *grpc.ClientConn // the harness's own, for health checks
}

// Build compiles ./cmd/pushauthd of the module containing the working
// directory into dir and returns the binary's path.
func Build(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "pushauthd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/pushauthd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/pushauthd: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot finds the directory of pushauth's go.mod above the working
// directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/pushauth/pushauth\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the pushauth module")
		}
		dir = parent
	}
}

// Start brings up the NATS cluster, the database and the replicas, and
// waits until every replica says SERVING. On error everything started is
// stopped again.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Database == SQLite {
		o.Replicas, o.NATSNodes = 1, 0
	}
	c = &Cluster{opts: o, Dir: o.Dir}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "pushauth-cluster-"); err != nil {
			return nil, err
		}
		c.ownDir = true
	}
	defer func() {
		if err != nil {
			c.Close(context.Background(), false)
		}
	}()
	bin := o.Binary
	if bin == "" {
		o.Logf("building pushauthd")
		if bin, err = Build(ctx, c.Dir); err != nil {
			return nil, err
		}
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	c.SecretKey = base64.StdEncoding.EncodeToString(raw[:])
	_, _ = rand.Read(raw[:])
	c.AdminToken = base64.RawURLEncoding.EncodeToString(raw[:])
	if c.FCM, err = newFakeFCM(); err != nil {
		return nil, err
	}
	creds := filepath.Join(c.Dir, "fcm.json")
	if err := c.FCM.writeCredentials(creds); err != nil {
		return nil, err
	}
	if o.NATSNodes > 0 {
		o.Logf("starting a %d-node NATS cluster", o.NATSNodes)
		if c.NATS, err = startNATS(ctx, c.Dir, o.NATSNodes); err != nil {
			return nil, err
		}
	}
	switch o.Database {
	case SharedPostgres:
		if o.PostgresDSN == "" {
			return nil, errors.New("cluster: Options.PostgresDSN is empty")
		}
		c.PG, err = createDatabase(ctx, o.PostgresDSN)
	case OwnPostgres:
		o.Logf("starting a PostgreSQL server of its own")
		c.PG, err = startOwnPostgres(ctx, c.Dir)
	}
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2 * o.Replicas)
	if err != nil {
		return nil, err
	}
	for i := range o.Replicas {
		r := &Replica{Index: i, GRPCAddr: fmt.Sprintf("127.0.0.1:%d", ports[2*i]), OpsAddr: fmt.Sprintf("127.0.0.1:%d", ports[2*i+1]),
			DataDir: filepath.Join(c.Dir, fmt.Sprintf("replica-%d", i+1))}
		args := []string{
			"--data-dir", r.DataDir, "--grpc-addr", r.GRPCAddr, "--ops-addr", r.OpsAddr, "--http-addr", "",
			"--admin-token", c.AdminToken, "--secret-key", c.SecretKey,
			"--fcm-credentials-file", creds, "--fcm-endpoint", c.FCM.URL + "/v1",
			"--log-format", "json", "--health-interval", "250ms", "--shutdown-timeout", "10s",
			// One harness plays every user from 127.0.0.1: lift the limits
			// meant for the public.
			"--sms-resend-cooldown", "1ms", "--sms-per-number-hour", "1000000", "--sms-per-number-day", "1000000",
			"--sms-per-address-hour", "1000000", "--sms-per-prefix-hour", "1000000", "--sms-daily-budget", "1000000",
			"--approvals-per-minute", "1000000", "--approvals-per-hour", "1000000",
			"--api-key-rate", "0", "--wait-streams-per-api-key", "0", "--max-connections", "0",
		}
		if c.PG != nil {
			args = append(args, "--database-url", c.PG.DSN)
		}
		if c.NATS != nil {
			args = append(args, "--nats-url", c.NATS.URL())
		}
		args = append(args, o.Extra...)
		r.proc = &proc{name: fmt.Sprintf("pushauthd-%d", i+1), bin: bin, args: args, logPath: filepath.Join(c.Dir, fmt.Sprintf("pushauthd-%d.log", i+1))}
		if r.conn, err = grpc.NewClient(r.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return nil, err
		}
		c.Replicas = append(c.Replicas, r)
	}
	o.Logf("starting %d pushauthd replica(s) on %s", o.Replicas, o.Database)
	for _, r := range c.Replicas {
		// One at a time: the first applies the migrations.
		if err := r.start(); err != nil {
			return nil, err
		}
		if err := c.WaitServing(ctx, r, time.Minute); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Addrs are the replicas' gRPC addresses.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, r := range c.Replicas {
		a = append(a, r.GRPCAddr)
	}
	return a
}

// Health asks a replica's grpc.health.v1 for the server's status.
func (r *Replica) Health(ctx context.Context) (healthpb.HealthCheckResponse_ServingStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(r.conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN, err
	}
	return resp.GetStatus(), nil
}

// WaitServing polls r's health until it says SERVING, at most limit; the
// error carries the replica's log tail when it exited.
func (c *Cluster) WaitServing(ctx context.Context, r *Replica, limit time.Duration) error {
	return c.waitHealth(ctx, r, healthpb.HealthCheckResponse_SERVING, limit)
}

// WaitNotServing polls until r says NOT_SERVING (or cannot be reached).
func (c *Cluster) WaitNotServing(ctx context.Context, r *Replica, limit time.Duration) error {
	return c.waitHealth(ctx, r, healthpb.HealthCheckResponse_NOT_SERVING, limit)
}

func (c *Cluster) waitHealth(ctx context.Context, r *Replica, want healthpb.HealthCheckResponse_ServingStatus, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err := poll(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		if !r.running() && want == healthpb.HealthCheckResponse_SERVING {
			return fmt.Errorf("%s exited", r.name)
		}
		st, err := r.Health(ctx)
		if err != nil {
			return err
		}
		if st != want {
			return fmt.Errorf("%s is %s", r.name, st)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s not %s within %s: %w\nlog tail:\n%s", r.name, want, limit, err, r.tail(30))
	}
	return nil
}

// WaitAllServing waits until every running replica says SERVING.
func (c *Cluster) WaitAllServing(ctx context.Context, limit time.Duration) error {
	for _, r := range c.Replicas {
		if err := c.WaitServing(ctx, r, limit); err != nil {
			return err
		}
	}
	return nil
}

// Kill stops replica i with SIGKILL.
func (c *Cluster) Kill(i int) { c.Replicas[i].kill() }

// Term stops replica i with SIGTERM and waits for it to exit (at most
// its shutdown_timeout and a margin); it returns how long that took.
func (c *Cluster) Term(i int) (time.Duration, error) {
	start := time.Now()
	err := c.Replicas[i].signal(syscall.SIGTERM, time.Minute)
	return time.Since(start), err
}

// Restart starts replica i again (same ports and data directory).
func (c *Cluster) Restart(i int) error { return c.Replicas[i].start() }

// AdminContext returns ctx carrying the operators' token.
func (c *Cluster) AdminContext(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.AdminToken)
}

// Admin is the AdminService on replica i.
func (c *Cluster) Admin(i int) pushauthv1.AdminServiceClient {
	return pushauthv1.NewAdminServiceClient(c.Replicas[i].conn)
}

// Logs returns the tail of every process's log, for a failure report.
func (c *Cluster) Logs(lines int) string {
	var b strings.Builder
	for _, r := range c.Replicas {
		fmt.Fprintf(&b, "--- %s (%s)\n%s\n", r.name, r.logPath, r.tail(lines))
	}
	if c.NATS != nil {
		for _, n := range c.NATS.Nodes {
			fmt.Fprintf(&b, "--- %s (%s)\n%s\n", n.proc.name, n.logPath, n.tail(lines/2))
		}
	}
	return b.String()
}

// Close stops every process, drops the database and removes the directory
// unless keep is set (a failed run keeps its logs and data).
func (c *Cluster) Close(ctx context.Context, keep bool) {
	for _, r := range c.Replicas {
		if r.proc != nil {
			_ = r.signal(syscall.SIGTERM, 20*time.Second)
			r.kill()
		}
		if r.conn != nil {
			r.conn.Close()
		}
	}
	if c.NATS != nil {
		c.NATS.stop()
	}
	if c.PG != nil {
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := c.PG.drop(dctx); err != nil {
			c.opts.Logf("dropping the database: %v", err)
		}
		cancel()
	}
	if c.FCM != nil {
		c.FCM.Close()
	}
	if keep {
		c.opts.Logf("logs and data kept in %s", c.Dir)
		return
	}
	if c.ownDir {
		_ = os.RemoveAll(c.Dir)
	}
}

// metric reads one sample of the replica's /metrics (the first series of
// name whose labels contain match, e.g. `state="pending"`).
func (r *Replica) metric(ctx context.Context, name, match string) (float64, error) {
	body, err := httpGet(ctx, "http://"+r.OpsAddr+"/metrics")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(body) {
		if strings.HasPrefix(line, "#") || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest != "" && rest[0] != ' ' && rest[0] != '{' {
			continue
		}
		if match != "" && !strings.Contains(rest, match) {
			continue
		}
		f := strings.Fields(rest)
		return strconv.ParseFloat(f[len(f)-1], 64)
	}
	return 0, fmt.Errorf("no %s{%s} in /metrics", name, match)
}
