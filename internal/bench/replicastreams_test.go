package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Settings of BenchmarkReplicaStreams, issue 9's target of 100,000
// concurrent WaitRequest streams on one replica.
var (
	replicaStreamCount = flag.Int("pushauth.streams", 100000, "BenchmarkReplicaStreams: WaitRequest streams, one per pending request")
	goroutineDump      = flag.String("pushauth.goroutines", "", "BenchmarkReplicaStreams writes every goroutine's stack to this file while all streams are open (where the waiters park)")
	idleCPUProfile     = flag.String("pushauth.idlecpuprofile", "", "BenchmarkReplicaStreams writes a CPU profile of the idle window to this file")
	replicaIdle        = flag.Duration("pushauth.idle", 20*time.Second, "BenchmarkReplicaStreams: how long to watch the server's CPU while the streams are open and nothing happens")
)

// replicaConfig sizes one run of replicaStreams.
type replicaConfig struct {
	streams int           // pending requests, one stream each
	users   int           // paired phones the requests are spread over
	conns   int           // client connections the streams share
	openers int           // streams being opened at once
	idle    time.Duration // the idle window; 0 skips it
}

// replicaResult is what one run measured. RSS is the server process's
// alone: the streams' client side runs in a child process.
type replicaResult struct {
	streams     int           // streams the child held, each past its first message
	attached    time.Duration // from starting the child until every stream had its first message
	rssAttached int64         // VmRSS right after attaching, before any forced GC
	open        memSample     // after runtime.GC and debug.FreeOSMemory
	before      memSample     // the same before the streams were opened
	peak        int64         // VmHWM from just before opening to the end of the idle window; 0 if it could not be reset
	idleCPU     float64       // this process, cores
	idleHostCPU float64       // the whole machine, cores
	approved    int           // streams that ended APPROVED
	approve     time.Duration // approving every request until every stream ended
	elapsed     time.Duration // the whole run after set-up: open, idle window, approve
}

// BenchmarkReplicaStreams holds -pushauth.streams (100,000) concurrent
// WaitRequest streams on one replica (SQLite, in-process NATS with
// JetStream), one stream per pending login request, with the client side in
// a child process over 100 connections. It reports the server's RSS, its
// CPU over an idle window of -pushauth.idle (20 s) with the hub's recheck
// at its default period, then approves every request through the phones'
// signed RespondToRequest and checks that every stream ends APPROVED.
//
// The requests are written in bulk through the store, not by
// CreateApproval (100,000 of those take minutes and push through FCM): each
// is a PENDING login request of one of 200 paired users, targeting that
// user's phone, as CreateApproval writes it after the push went out.
//
// It is heavy, so it only runs when named:
//
//	go test ./internal/bench -run XXX -bench ReplicaStreams -benchtime 1x -timeout 1h
func BenchmarkReplicaStreams(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "ReplicaStreams") {
		b.Skip("heavy: runs only when selected by name, -bench ReplicaStreams")
	}
	cfg := replicaConfig{streams: *replicaStreamCount, users: 200, conns: 100, openers: 256, idle: *replicaIdle}
	url := servertest.Backends[0].NewURL(b) // SQLite
	for range b.N {
		r := replicaStreams(b, url, cfg)
		const mib = 1 << 20
		fmt.Printf("streams=%d attached_s=%.1f rss_mib=%.0f idle_cpu_cores=%.3f approved=%d elapsed_s=%.1f\n",
			r.streams, r.attached.Seconds(), float64(r.open.rss)/mib, r.idleCPU, r.approved, r.elapsed.Seconds())
		b.ReportMetric(float64(r.streams), "streams")
		b.ReportMetric(r.attached.Seconds(), "attached-s")
		b.ReportMetric(float64(r.rssAttached)/mib, "rss-attached-MiB")
		b.ReportMetric(float64(r.open.rss)/mib, "rss-MiB")
		if r.peak > 0 {
			b.ReportMetric(float64(r.peak)/mib, "peak-rss-MiB")
		}
		b.ReportMetric(float64(r.open.rss-r.before.rss)/float64(r.streams)/1024, "KiB/stream")
		b.ReportMetric(float64(r.open.heapInuse-r.before.heapInuse)/float64(r.streams)/1024, "heap-KiB/stream")
		b.ReportMetric(float64(r.open.stackInuse-r.before.stackInuse)/float64(r.streams)/1024, "stack-KiB/stream")
		b.ReportMetric(float64(r.open.goroutines-r.before.goroutines)/float64(r.streams), "goroutines/stream")
		b.ReportMetric(r.idleCPU, "idle-cpu-cores")
		b.ReportMetric(r.idleHostCPU, "idle-host-cpu-cores")
		b.ReportMetric(float64(r.approved), "approved")
		b.ReportMetric(r.approve.Seconds(), "approve-s")
		b.ReportMetric(r.elapsed.Seconds(), "elapsed-s")
	}
}

// TestReplicaStreamsSmoke runs BenchmarkReplicaStreams' whole path at 50
// streams on both databases: bulk-written requests, streams held by a
// child process, approval through the phones, every stream APPROVED. It
// measures nothing.
func TestReplicaStreamsSmoke(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		const n = 50
		r := replicaStreams(t, url, replicaConfig{streams: n, users: 2, conns: 4, openers: 8})
		if r.streams != n || r.approved != n {
			t.Fatalf("held %d streams, %d approved; want %d and %d", r.streams, r.approved, n, n)
		}
	})
}

// replicaStreams runs one server, writes cfg.streams pending requests,
// holds a stream on each from a child process, measures, approves them all
// and drains the streams.
func replicaStreams(tb testing.TB, url string, cfg replicaConfig) replicaResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), time.Hour)
	defer cancel()
	// Many pending logins per user are what the bulk write makes; let the
	// configuration allow it too (CreateApproval is not called).
	e := newEnv(tb, url, cfg.users, &pushauthv1.RelyingPartyPolicy{ApprovalTtl: durationpb.New(10 * time.Minute)},
		func(o *server.Options) { o.Approval.MaxPendingPerUser = 1 << 30 })
	ids := e.pendingRequests(ctx, tb, cfg.streams)

	var r replicaResult
	r.before = readMem(tb)
	// Peak RSS from here on: "5" resets VmHWM to the current RSS (Linux 4.0+).
	resetPeak := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	start := time.Now()
	p, err := startWaitProcess(ctx, tb, waitConfig{Addr: e.ts.Addr, APIKey: e.apiKey, IDs: ids, Streams: len(ids),
		Conns: cfg.conns, Openers: cfg.openers, Budget: time.Hour.String()})
	if err != nil {
		tb.Fatal(err)
	}
	defer p.close()
	r.streams, r.attached = p.opened, time.Since(start)
	if r.streams < len(ids) {
		tb.Fatalf("the child process holds %d of %d streams", r.streams, len(ids))
	}
	if r.rssAttached, err = procStatus("VmRSS"); err != nil {
		tb.Fatal(err)
	}
	r.open = readMem(tb)
	if *heapProfile != "" {
		writeHeapProfile(tb, *heapProfile+"."+strings.ReplaceAll(tb.Name(), "/", "_"))
	}
	if *goroutineDump != "" {
		writeGoroutines(tb, *goroutineDump)
	}

	if cfg.idle > 0 {
		// A measuring window, not a wait for some condition: the hub's
		// recheck runs at its default period meanwhile.
		if *idleCPUProfile != "" {
			f, err := os.Create(*idleCPUProfile)
			if err != nil {
				tb.Fatal(err)
			}
			defer func() { _ = f.Close() }()
			if err := pprof.StartCPUProfile(f); err != nil {
				tb.Fatal(err)
			}
		}
		cpu0 := readCPU(tb)
		t := time.NewTimer(cfg.idle)
		select {
		case <-t.C:
		case <-ctx.Done():
			tb.Fatal(ctx.Err())
		}
		cpu1 := readCPU(tb)
		if *idleCPUProfile != "" {
			pprof.StopCPUProfile()
		}
		r.idleCPU = float64(cpu1.proc-cpu0.proc) / float64(cfg.idle)
		r.idleHostCPU = float64(cpu1.host-cpu0.host) / float64(cfg.idle)
	}
	if resetPeak {
		if r.peak, err = procStatus("VmHWM"); err != nil {
			tb.Fatal(err)
		}
	}

	approveStart := time.Now()
	e.approveAll(ctx, tb, ids)
	if r.approved, err = p.drain(ctx); err != nil {
		tb.Fatal(err)
	}
	r.approve, r.elapsed = time.Since(approveStart), time.Since(start)
	return r
}

// pendingRequests writes n PENDING login requests, spread round robin over
// the users, each targeting its user's phone with the push sent, in
// transactions of 1,000, and returns their ids in order (request i belongs
// to user i mod len(e.users)). They expire in an hour, so none does while
// 100,000 streams open.
func (e *env) pendingRequests(ctx context.Context, tb testing.TB, n int) []string {
	tb.Helper()
	now := time.Now()
	rc := store.RequestContext{AppName: flowContext.GetAppName(), IPAddress: flowContext.GetIpAddress(),
		Location: flowContext.GetLocation(), Browser: flowContext.GetBrowser()}
	ids := make([]string, n)
	const batch = 1000
	for lo := 0; lo < n; lo += batch {
		err := e.ts.Store.InTx(ctx, func(tx store.Store) error {
			for i := lo; i < min(lo+batch, n); i++ {
				u := e.users[i%len(e.users)]
				r := store.Request{
					ID: secret.NewID("req", now.UnixMilli()), Kind: store.KindLogin,
					RelyingPartyID: e.rpID, UserRef: u.ref, AccountLabel: u.ref, Context: rc,
					NumberMatching: store.NumberMatchingNone, Status: store.StatusPending,
					CreatedAt: now, ExpiresAt: now.Add(time.Hour),
				}
				t := store.RequestTarget{RequestID: r.ID, DeviceID: u.phone.DeviceID, Delivery: store.DeliverySent, UpdatedAt: now}
				if err := tx.CreateRequest(ctx, r, []store.RequestTarget{t}); err != nil {
					return err
				}
				ids[i] = r.ID
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("write pending requests: %v", err)
		}
	}
	return ids
}

// approveAll has each request's phone fetch it and send its signed
// approval (user.approve), 16 at a time.
func (e *env) approveAll(ctx context.Context, tb testing.TB, ids []string) {
	tb.Helper()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(ids) && failed.Load() == nil; i = int(next.Add(1) - 1) {
				if err := e.users[i%len(e.users)].approve(ctx, ids[i]); err != nil {
					err = fmt.Errorf("approve request %d: %w", i, err)
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		tb.Fatal(*err)
	}
}

// writeHeapProfile writes the heap profile to path.
func writeHeapProfile(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		tb.Fatal(err)
	}
}

// writeGoroutines writes every goroutine's stack (pprof debug=2) to path.
func writeGoroutines(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	if err := pprof.Lookup("goroutine").WriteTo(f, 2); err != nil {
		tb.Fatal(err)
	}
}
