package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store/sqlstore"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// maxWorkers is the highest concurrency BenchmarkFlow runs; each worker has
// its own user and phone, so flows never supersede each other.
const maxWorkers = 50

// TestFlowSmoke proves the harness: 20 complete flows at concurrency 5 on
// SQLite. It checks outcomes, never times.
func TestFlowSmoke(t *testing.T) {
	e := newEnv(t, servertest.Backends[0].NewURL(t), 5, nil)
	ss, _, err := e.run(t.Context(), 20, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 20 {
		t.Fatalf("%d flows done, want 20", len(ss))
	}
	for _, s := range ss {
		if !(0 < s.created && s.created <= s.pushed && s.pushed <= s.fetched && s.fetched <= s.answered && s.total > s.fetched) {
			t.Fatalf("phases out of order: %+v", s)
		}
	}
	// 5 pairing pushes and 20 login pushes, each delivered to its phone.
	if got := e.fcm.sent.Load(); got != 25 {
		t.Errorf("fake FCM answered %d pushes, want 25", got)
	}
	if got := e.fcm.dropped.Load(); got != 0 {
		t.Errorf("%d pushes found no phone", got)
	}
}

// BenchmarkFlow runs complete login approvals: CreateApproval, WaitRequest
// opened at once, the push through the real FCM client to the fake FCM, the
// phone's GetRequest and signed RespondToRequest, and APPROVED on the
// stream. b.N flows per run, spread over c workers.
func BenchmarkFlow(b *testing.B) {
	for _, be := range servertest.Backends {
		b.Run(be.Name, func(b *testing.B) {
			e := newEnv(b, be.NewURL(b), maxWorkers, nil)
			for _, c := range []int{1, maxWorkers} {
				b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) { e.bench(b, c) })
			}
		})
	}
}

func (e *env) bench(b *testing.B, c int) {
	ctx := b.Context()
	// One untimed flow per worker: connections and caches warm.
	if _, _, err := e.run(ctx, c, c); err != nil {
		b.Fatal(err)
	}
	before := e.rpcStats(b)
	if e.timed != nil {
		e.timed.reset()
	}
	b.ReportAllocs() // of the whole process: server, phones, login server, fake FCM
	counted, _ := e.ts.Store.(interface{ Counts() sqlstore.Counts })
	var counts0 sqlstore.Counts
	if counted != nil {
		counts0 = counted.Counts()
	}
	cpu0 := readCPU(b)
	b.ResetTimer()
	ss, elapsed, err := e.run(ctx, b.N, c)
	b.StopTimer()
	cpu1 := readCPU(b)
	if err != nil {
		b.Fatal(err)
	}
	if testing.Verbose() {
		logRPCStats(b, before, e.rpcStats(b))
	}
	if e.timed != nil {
		e.timed.log(b, b.N)
	}
	total := column(ss, func(s sample) time.Duration { return s.total })
	b.ReportMetric(float64(len(ss))/elapsed.Seconds(), "flows/s")
	if counted != nil {
		// SQL per flow beside the throughput: the request path, and the
		// background work (relay, push results, batched marks; lagging
		// work of the last flows may fall outside the window).
		d := counted.Counts().Sub(counts0)
		n := float64(len(ss))
		b.ReportMetric(float64(d.Statements)/n, "stmts/flow")
		b.ReportMetric(float64(d.Commits)/n, "commits/flow")
		b.ReportMetric(float64(d.BackgroundStatements)/n, "bg-stmts/flow")
		b.ReportMetric(float64(d.BackgroundCommits)/n, "bg-commits/flow")
		if d.RoundTrips > 0 {
			b.ReportMetric(float64(d.RoundTrips)/n, "pg-roundtrips/flow")
		}
	}
	b.ReportMetric(ms(percentile(total, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(total, 99)), "p99-ms")
	// CPU per flow: of this process (server and harness), and of the whole
	// machine (with PostgreSQL, its backends; and anything else running).
	b.ReportMetric(ms(cpu1.proc-cpu0.proc)/float64(len(ss)), "cpu-ms/flow")
	b.ReportMetric(ms(cpu1.host-cpu0.host)/float64(len(ss)), "host-cpu-ms/flow")
	// Where the median flow spends its time, phase by phase.
	for _, ph := range []struct {
		name string
		f    func(sample) time.Duration
	}{
		{"create", func(s sample) time.Duration { return s.created }},
		{"push", func(s sample) time.Duration { return s.pushed - s.created }},
		{"get", func(s sample) time.Duration { return s.fetched - s.pushed }},
		{"respond", func(s sample) time.Duration { return s.answered - s.fetched }},
		{"result", func(s sample) time.Duration { return max(s.total-s.answered, 0) }},
	} {
		b.ReportMetric(ms(percentile(column(ss, ph.f), 50)), ph.name+"-p50-ms")
	}
}

// BenchmarkFloor measures what every flow stands on, one call at a time
// over the same loopback set-up (quiet logs):
//
//   - grpc-unary: grpc.health.v1.Health/Check, a unary round trip through
//     the server's whole interceptor chain (request id, logging, metrics,
//     recovery, auth, validation) that touches no database;
//   - grpc-unary-c50: the same from 50 concurrent callers (calls/s is the
//     ceiling of unary RPCs on this machine);
//   - whoami: RelyingPartyService/WhoAmI, the same plus API-key
//     authentication (two database reads), which every relying-party call pays;
//   - nats-hop: publish on the embedded NATS and receive through an
//     events.Hub watcher: the path of a decision's news to a waiter;
//   - db-<backend>/read: one primary-key read through the store
//     (GetRelyingParty), and db-<backend>/commit: one single-statement write
//     transaction (TouchAPIKey), the unit of every state change.
func BenchmarkFloor(b *testing.B) {
	e := newEnv(b, servertest.Backends[0].NewURL(b), 0, nil)
	health := healthpb.NewHealthClient(e.rpConn)
	check := func(ctx context.Context) error {
		_, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}
	b.Run("grpc-unary", func(b *testing.B) { timeCalls(b, 1, check) })
	b.Run("grpc-unary-c50", func(b *testing.B) { timeCalls(b, 50, check) })
	b.Run("whoami", func(b *testing.B) {
		timeCalls(b, 1, func(ctx context.Context) error {
			_, err := e.rp.WhoAmI(mergeMD(ctx, e.rpCtx), &pushauthv1.WhoAmIRequest{})
			return err
		})
	})
	b.Run("nats-hop", func(b *testing.B) {
		hub, err := events.NewHub(e.ts.Bus.Conn(), "pushauth.benchhop.", nil)
		if err != nil {
			b.Fatal(err)
		}
		defer hub.Close()
		news, cancel := hub.Watch("k")
		defer cancel()
		msg := []byte(`decided`)
		timeCalls(b, 1, func(ctx context.Context) error {
			if err := e.ts.Bus.Publish(ctx, "pushauth.benchhop.k", msg); err != nil {
				return err
			}
			select {
			case <-news:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	})
	for _, be := range servertest.Backends {
		b.Run("db-"+be.Name, func(b *testing.B) {
			e := newEnv(b, be.NewURL(b), 0, nil)
			who, err := e.rp.WhoAmI(e.rpCtx, &pushauthv1.WhoAmIRequest{})
			if err != nil {
				b.Fatal(err)
			}
			key, err := e.ts.Store.GetAPIKeyByPrefix(b.Context(), who.GetApiKeyPrefix())
			if err != nil {
				b.Fatal(err)
			}
			b.Run("read", func(b *testing.B) {
				timeCalls(b, 1, func(ctx context.Context) error {
					_, err := e.ts.Store.GetRelyingParty(ctx, who.GetRelyingParty().GetId())
					return err
				})
			})
			b.Run("commit", func(b *testing.B) {
				timeCalls(b, 1, func(ctx context.Context) error {
					return e.ts.Store.TouchAPIKey(ctx, key.ID, time.Now().UTC().Truncate(time.Microsecond))
				})
			})
		})
	}
}

// timeCalls runs call b.N times from c goroutines and reports calls/s and
// the latency percentiles.
func timeCalls(b *testing.B, c int, call func(context.Context) error) {
	ctx, cancel := context.WithTimeout(b.Context(), 5*time.Minute)
	defer cancel()
	for range 100 { // warm-up
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
	}
	per := make([][]time.Duration, c)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if err := call(ctx); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				per[w] = append(per[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	var all []time.Duration
	for _, p := range per {
		all = append(all, p...)
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "calls/s")
	b.ReportMetric(ms(percentile(all, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(all, 99)), "p99-ms")
}
