package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/status"
)

// Scale sizes a scenario run.
type Scale struct {
	Users int
	// Before and After are how many flows must be decided before the fault
	// and after recovery.
	Before, After int
	// Outage is how long a whole dependency stays down (the NATS cluster,
	// the PostgreSQL server).
	Outage      time.Duration
	FlowTimeout time.Duration
}

// Quick is the scaled-down form for CI; Full is the operator's run.
var (
	Quick = Scale{Users: 8, Before: 16, After: 24, Outage: 10 * time.Second, FlowTimeout: time.Minute}
	Full  = Scale{Users: 32, Before: 150, After: 300, Outage: 10 * time.Second, FlowTimeout: 90 * time.Second}
)

// Env is a running cluster with its load's users paired.
type Env struct {
	C    *Cluster
	Load *Load
}

// Scenario is one fault injected under load.
type Scenario struct {
	Name string
	// Setup is the cluster it needs.
	Database  Database
	Replicas  int
	NATSNodes int
	// Fault injects the fault and repairs it; it returns the moment the
	// repair began (a restart, a start), from which recovery is measured,
	// and what it noted (notServing: did health turn NOT_SERVING while a
	// dependency was gone; "" when the scenario does not ask).
	Fault func(ctx context.Context, e *Env, sc Scale) (repaired time.Time, notes Notes, err error)
}

// Notes are what a fault observed beyond the counts.
type Notes struct {
	// NotServing is "yes"/"no" where health must turn NOT_SERVING while a
	// dependency is gone.
	NotServing string
	// Extra is appended to the scenario's line (e.g. drain_ms=…).
	Extra string
}

// Result is one scenario's outcome.
type Result struct {
	Scenario string
	Counts
	Recovery time.Duration
	Notes
	Err error
}

// Line is the one-line summary scripts/chaos.sh prints.
func (r Result) Line() string {
	s := fmt.Sprintf("scenario=%s flows=%d approved=%d lost=%d stuck=%d dup_push=%d recovery_ms=%d denied=%d wrong=%d create_retries=%d backed_off=%d create_failed=%d max_flow_ms=%d",
		r.Scenario, r.Flows, r.Approved, r.Lost, r.Stuck, r.DupPush, r.Recovery.Milliseconds(), r.Denied, r.Wrong, r.CreateRetries, r.BackedOff, r.CreateFailed, r.MaxFlow.Milliseconds())
	if r.NotServing != "" {
		s += " not_serving_during_outage=" + r.NotServing
	}
	if r.Extra != "" {
		s += " " + r.Extra
	}
	if r.Err != nil {
		s += " error=" + strings.ReplaceAll(fmt.Sprintf("%q", r.Err.Error()), " ", "_")
	}
	return s
}

// Pass is the bar: nothing lost or stranded, health went NOT_SERVING where
// asked, and the run itself worked.
func (r Result) Pass() bool { return r.Err == nil && r.OK() && r.NotServing != "no" }

// Run runs s on e under load: flows until Before are decided, the fault,
// flows until After more are decided, then the open flows finish and
// everything is counted, including pushes that arrive late.
func Run(ctx context.Context, e *Env, s Scenario, sc Scale) Result {
	res := Result{Scenario: s.Name}
	if err := e.C.WaitAllServing(ctx, time.Minute); err != nil {
		res.Err = err
		return res
	}
	stop := make(chan struct{})
	flowsCh := make(chan []FlowResult, 1)
	go func() { flowsCh <- e.Load.Run(ctx, stop) }()
	stopped := false
	stopLoad := func() []FlowResult {
		if !stopped {
			close(stop)
			stopped = true
		}
		return <-flowsCh
	}
	progress := func(n int) error { return e.Load.WaitDecided(ctx, n, 2*sc.FlowTimeout) }

	var repaired time.Time
	err := progress(sc.Before)
	if err == nil {
		repaired, res.Notes, err = s.Fault(ctx, e, sc)
	}
	var servingAt time.Time
	if err == nil {
		if err = e.C.WaitAllServing(ctx, 2*time.Minute); err == nil {
			servingAt = time.Now()
			err = progress(sc.After)
		}
	}
	flows := stopLoad()
	if qerr := e.Load.WaitQueueEmpty(ctx, time.Minute); qerr != nil && err == nil {
		err = fmt.Errorf("after the run: %w", qerr)
	}
	res.Counts = e.Load.Count(flows)
	res.Err = err
	if !repaired.IsZero() && !servingAt.IsZero() {
		// Recovered when every replica serves and a login begun after the
		// repair went through.
		first := time.Time{}
		for _, f := range flows {
			if (f.Outcome == Approved || f.Outcome == Denied) && !f.Start.Before(repaired) {
				if end := f.Start.Add(f.Took); first.IsZero() || end.Before(first) {
					first = end
				}
			}
		}
		end := servingAt
		if first.After(end) {
			end = first
		}
		res.Recovery = end.Sub(repaired)
		res.Extra = strings.TrimSpace(res.Extra + fmt.Sprintf(" serving_ms=%d", servingAt.Sub(repaired).Milliseconds()))
	}
	return res
}

// waitAllNotServing polls every running replica until each says
// NOT_SERVING, at most limit.
func waitAllNotServing(ctx context.Context, c *Cluster, limit time.Duration) string {
	deadline := time.Now().Add(limit)
	for _, r := range c.Replicas {
		if err := c.WaitNotServing(ctx, r, time.Until(deadline)); err != nil {
			c.opts.Logf("%v", firstLine(err))
			return "no"
		}
	}
	return "yes"
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// outage waits d (how long the dependency stays down), or until ctx ends.
func outage(ctx context.Context, d time.Duration) error {
	if !sleepCtx(ctx, d) {
		return ctx.Err()
	}
	return nil
}

// Scenarios are the faults of issue 13, in the order they run: those on a
// shared cluster (3 replicas, 3 NATS nodes, PostgreSQL) first, then the
// PostgreSQL restart on a server of the harness's own, then SQLite.
func Scenarios() []Scenario {
	shared := func(name string, f func(context.Context, *Env, Scale) (time.Time, Notes, error)) Scenario {
		return Scenario{Name: name, Database: SharedPostgres, Replicas: 3, NATSNodes: 3, Fault: f}
	}
	return []Scenario{
		shared("replica-kill9", func(ctx context.Context, e *Env, sc Scale) (time.Time, Notes, error) {
			e.C.Kill(0)
			// The others carry the load meanwhile.
			if err := e.Load.WaitDecided(ctx, sc.Before/2, 2*sc.FlowTimeout); err != nil {
				return time.Time{}, Notes{}, fmt.Errorf("with replica 1 down: %w", err)
			}
			at := time.Now()
			return at, Notes{}, e.C.Restart(0)
		}),
		shared("replica-sigterm", func(ctx context.Context, e *Env, sc Scale) (time.Time, Notes, error) {
			// A phone's app holds WatchRequests open on the replica: the
			// drain must end it (Unavailable, so the app goes elsewhere)
			// rather than wait out shutdown_timeout.
			watch, err := e.Load.HoldWatch(ctx, 1)
			if err != nil {
				return time.Time{}, Notes{}, fmt.Errorf("WatchRequests: %w", err)
			}
			start := time.Now()
			took, err := e.C.Term(1)
			n := Notes{Extra: fmt.Sprintf("drain_ms=%d", took.Milliseconds())}
			select {
			case w := <-watch:
				n.Extra += fmt.Sprintf(" watch_ended=%s watch_end_ms=%d", status.Code(w.Err), w.At.Sub(start).Milliseconds())
			default:
				n.Extra += " watch_ended=no"
			}
			if err != nil {
				return time.Time{}, n, fmt.Errorf("SIGTERM: %w", err)
			}
			if err := e.Load.WaitDecided(ctx, sc.Before/2, 2*sc.FlowTimeout); err != nil {
				return time.Time{}, n, fmt.Errorf("with replica 2 stopped: %w", err)
			}
			at := time.Now()
			return at, n, e.C.Restart(1)
		}),
		shared("nats-node-kill9", func(ctx context.Context, e *Env, sc Scale) (time.Time, Notes, error) {
			// The node leading the push queue's stream: the worst one to lose.
			leader, replicas, err := e.C.NATS.StreamInfo(ctx, PushStream)
			victim := max(e.C.NATS.NodeIndex(leader), 0)
			n := Notes{Extra: fmt.Sprintf("stream_replicas=%d killed=%s", replicas, e.C.NATS.Nodes[victim].name)}
			if err != nil {
				n.Extra = "stream_replicas=unknown"
				e.C.opts.Logf("push stream: %v", err)
			}
			e.C.NATS.KillNode(victim)
			// The load must go on without it: pushes included.
			if err := e.Load.WaitDecided(ctx, sc.Before, 2*sc.FlowTimeout); err != nil {
				return time.Time{}, n, fmt.Errorf("with NATS node %s down: %w", e.C.NATS.Nodes[victim].name, err)
			}
			at := time.Now()
			if err := e.C.NATS.StartNode(victim); err != nil {
				return at, n, err
			}
			return at, n, e.C.NATS.WaitReady(ctx)
		}),
		shared("nats-cluster-stop", func(ctx context.Context, e *Env, sc Scale) (time.Time, Notes, error) {
			down := time.Now()
			e.C.NATS.Stop()
			n := Notes{NotServing: waitAllNotServing(ctx, e.C, sc.Outage)}
			if err := outage(ctx, sc.Outage-time.Since(down)); err != nil {
				return time.Time{}, n, err
			}
			at := time.Now()
			if err := e.C.NATS.Start(); err != nil {
				return at, n, err
			}
			return at, n, e.C.NATS.WaitReady(ctx)
		}),
		shared("pg-terminate", func(ctx context.Context, e *Env, sc Scale) (time.Time, Notes, error) {
			at := time.Now()
			n, err := e.C.PG.TerminateBackends(ctx)
			return at, Notes{Extra: fmt.Sprintf("terminated=%d", n)}, err
		}),
		{Name: "pg-restart", Database: OwnPostgres, Replicas: 2, NATSNodes: 3, Fault: func(ctx context.Context, e *Env, sc Scale) (time.Time, Notes, error) {
			down := time.Now()
			if err := e.C.PG.Stop(); err != nil {
				return time.Time{}, Notes{}, err
			}
			n := Notes{NotServing: waitAllNotServing(ctx, e.C, sc.Outage)}
			if err := outage(ctx, sc.Outage-time.Since(down)); err != nil {
				return time.Time{}, n, err
			}
			at := time.Now()
			return at, n, e.C.PG.Start()
		}},
		{Name: "sqlite-kill9", Database: SQLite, Replicas: 1, Fault: func(ctx context.Context, e *Env, sc Scale) (time.Time, Notes, error) {
			e.C.Kill(0)
			at := time.Now()
			return at, Notes{}, e.C.Restart(0)
		}},
	}
}

// RunAll runs scenarios (all of Scenarios when names is empty), starting a
// cluster for each kind of setup and reusing it for the scenarios that
// share it. It returns each result; report is called as each ends.
func RunAll(ctx context.Context, base Options, sc Scale, names []string, report func(Result, *Env)) ([]Result, error) {
	var list []Scenario
	for _, s := range Scenarios() {
		if len(names) == 0 || slices.Contains(names, s.Name) {
			list = append(list, s)
		}
	}
	if len(list) == 0 {
		return nil, errors.New("no such scenario")
	}
	if base.Binary == "" {
		dir, err := makeTemp()
		if err != nil {
			return nil, err
		}
		defer removeAll(dir)
		if base.Logf != nil {
			base.Logf("building pushauthd")
		}
		if base.Binary, err = Build(ctx, dir); err != nil {
			return nil, err
		}
	}
	var results []Result
	var env *Env
	var envKey string
	closeEnv := func(failed bool) {
		if env != nil {
			env.Load.Close()
			env.C.Close(context.Background(), failed || base.Keep)
			env = nil
		}
	}
	anyFailed := false
	for _, s := range list {
		key := fmt.Sprintf("%s/%d/%d", s.Database, s.Replicas, s.NATSNodes)
		if env == nil || key != envKey {
			closeEnv(anyFailed)
			anyFailed = false
			o := base
			o.Database, o.Replicas, o.NATSNodes = s.Database, s.Replicas, s.NATSNodes
			c, err := Start(ctx, o)
			if err != nil {
				r := Result{Scenario: s.Name, Err: fmt.Errorf("starting the cluster: %w", err)}
				results = append(results, r)
				report(r, nil)
				continue
			}
			l, err := NewLoad(ctx, c, LoadOptions{Users: sc.Users, FlowTimeout: sc.FlowTimeout, DenyEvery: 0})
			if err != nil {
				if base.Logf != nil {
					base.Logf("%s", c.Logs(40))
				}
				c.Close(ctx, true)
				r := Result{Scenario: s.Name, Err: fmt.Errorf("pairing the users: %w", err)}
				results = append(results, r)
				report(r, nil)
				continue
			}
			env, envKey = &Env{C: c, Load: l}, key
		}
		r := Run(ctx, env, s, sc)
		if !r.Pass() {
			anyFailed = true
		}
		results = append(results, r)
		report(r, env)
	}
	closeEnv(anyFailed)
	return results, nil
}
