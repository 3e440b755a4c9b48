package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

var heapProfile = flag.String("pushauth.heapprofile", "", "BenchmarkWaitStreams writes a heap profile to this file (suffixed with the sub-benchmark) while all streams are open")

// Sizes of BenchmarkWaitStreams: waitStreams streams, spread over waitUsers
// pending requests (many streams may wait on one request, as several login
// servers or retried waits would) and waitConns client connections. The
// harness lifts MaxConcurrentStreams (and the per-key limits), so a client
// connection could carry them all; 20 connections of 1,000 streams are
// closer to a fleet of login servers.
const (
	waitStreams = 20000
	waitUsers   = 200
	waitConns   = 20
	waitOpeners = 64 // streams being opened at once
)

// openBudget bounds the opening of the streams. A set-up that cannot hold
// them all (each open waiter adds re-read load, so opening slows down as it
// goes) stops there, and the benchmark reports how many it holds.
var openBudget = flag.Duration("pushauth.openbudget", time.Minute, "BenchmarkWaitStreams: the most time to spend opening the streams")

// idleWindow is how long BenchmarkWaitStreams watches the CPU while every
// stream is open and nothing happens: two recheck periods (2 s each by
// default), in which every waiter re-reads its request twice.
const idleWindow = 4 * time.Second

// BenchmarkWaitStreams opens 20,000 concurrent WaitRequest streams on one
// server and reports the memory they hold and the CPU they burn while idle,
// then approves every request and checks that every stream ends APPROVED.
// Opening stops after -pushauth.openbudget (1 min); "streams" then reports
// how many the server holds.
//
// Two ways to hold the streams:
//   - in-process: the streams' client side runs in this process beside the
//     server, so the figures are for the whole process (server, 20,000
//     client streams, harness), as /proc/self/status reports it;
//   - server-only: a child process (this test binary running
//     TestWaitStreamsClient) holds the client side, so this process's
//     figures are the server's alone.
//
// It is heavy, so it only runs when named:
//
//	go test ./internal/bench -run XXX -bench WaitStreams -benchtime 1x
func BenchmarkWaitStreams(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "WaitStreams") {
		b.Skip("heavy: runs only when selected by name, -bench WaitStreams")
	}
	for _, be := range servertest.Backends {
		b.Run(be.Name, func(b *testing.B) {
			// The longest answer time a policy allows, so no request
			// expires while the streams open on a slow set-up.
			e := newEnv(b, be.NewURL(b), waitUsers, &pushauthv1.RelyingPartyPolicy{ApprovalTtl: durationpb.New(10 * time.Minute)})
			for _, mode := range []string{"server-only", "in-process"} {
				b.Run(mode, func(b *testing.B) {
					for range b.N {
						e.waitStreams(b, mode)
					}
				})
			}
		})
	}
}

type memSample struct {
	rss, heapInuse, stackInuse int64
	goroutines                 int
}

func readMem(b testing.TB) memSample {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory() // RSS then holds live memory, not garbage the runtime kept
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	rss, err := procStatus("VmRSS")
	if err != nil {
		b.Fatal(err)
	}
	return memSample{rss: rss, heapInuse: int64(m.HeapInuse), stackInuse: int64(m.StackInuse), goroutines: runtime.NumGoroutine()}
}

// waitClient holds the client side of the streams, here or in a child.
type waitClient interface {
	// drain reads every stream to its end; every one must be APPROVED. It
	// returns how many were.
	drain(ctx context.Context) (int, error)
	close()
}

func (e *env) waitStreams(b *testing.B, mode string) {
	ctx, cancel := context.WithTimeout(b.Context(), 15*time.Minute)
	defer cancel()
	ids := make([]string, len(e.users))
	for i, u := range e.users {
		c, err := e.rp.CreateApproval(mergeMD(ctx, e.rpCtx), &pushauthv1.CreateApprovalRequest{UserRef: u.ref, Context: flowContext})
		if err != nil {
			b.Fatalf("CreateApproval: %v", err)
		}
		ids[i] = c.GetRequestId()
	}

	before := readMem(b)
	// Peak RSS from here on: "5" resets VmHWM to the current RSS (Linux 4.0+).
	resetPeak := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	b.ResetTimer()

	openStart := time.Now()
	var (
		client waitClient
		opened int
		err    error
	)
	switch mode {
	case "in-process":
		var w *waiters
		w, err = openWaiters(ctx, waitConfig{Addr: e.ts.Addr, APIKey: e.apiKey, IDs: ids, Streams: waitStreams, Conns: waitConns, Openers: waitOpeners}, openStart.Add(*openBudget))
		if err == nil {
			client, opened = w, len(w.streams)
		}
	case "server-only":
		var p *waitProcess
		p, err = startWaitProcess(ctx, b, waitConfig{Addr: e.ts.Addr, APIKey: e.apiKey, IDs: ids, Streams: waitStreams,
			Conns: waitConns, Openers: waitOpeners, Budget: openBudget.String()})
		if err == nil {
			client, opened = p, p.opened
		}
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer client.close()
	openTime := time.Since(openStart)
	if opened < waitStreams {
		b.Logf("only %d of %d streams opened within -pushauth.openbudget=%s: the server cannot hold them all", opened, waitStreams, *openBudget)
	}

	open := readMem(b)
	if *heapProfile != "" {
		writeHeapProfile(b, *heapProfile+"."+strings.ReplaceAll(b.Name(), "/", "_"))
	}

	// The open streams are not idle for the server: each waiter re-reads its
	// request every recheck period. Measure what that costs. The timer is a
	// measuring window, not a wait for some condition.
	cpu0 := readCPU(b)
	t := time.NewTimer(idleWindow)
	select {
	case <-t.C:
	case <-ctx.Done():
		b.Fatal(ctx.Err())
	}
	cpu1 := readCPU(b)
	peak, err := procStatus("VmHWM")
	if err != nil {
		b.Fatal(err)
	}

	// Approve every request; every stream must end with APPROVED.
	closeStart := time.Now()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(e.users) && failed.Load() == nil; i = int(next.Add(1) - 1) {
				if err := e.users[i].approve(ctx, ids[i]); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	if _, err := client.drain(ctx); err != nil {
		b.Fatal(err)
	}
	closeTime := time.Since(closeStart)
	b.StopTimer()

	const mib = 1 << 20
	b.ReportMetric(float64(opened), "streams")
	b.ReportMetric(float64(open.rss)/mib, "rss-MiB")
	if resetPeak {
		b.ReportMetric(float64(peak)/mib, "peak-rss-MiB")
	}
	b.ReportMetric(float64(open.rss-before.rss)/mib, "rss-growth-MiB")
	b.ReportMetric(float64(open.heapInuse-before.heapInuse)/mib, "heap-growth-MiB")
	b.ReportMetric(float64(open.stackInuse-before.stackInuse)/mib, "stack-growth-MiB")
	b.ReportMetric(float64(open.rss-before.rss)/float64(opened)/1024, "KiB/stream")
	b.ReportMetric(float64(open.goroutines-before.goroutines)/float64(opened), "goroutines/stream")
	b.ReportMetric(float64(cpu1.proc-cpu0.proc)/float64(idleWindow), "idle-cpu-cores")
	b.ReportMetric(float64(cpu1.host-cpu0.host)/float64(idleWindow), "idle-host-cpu-cores")
	b.ReportMetric(float64(opened)/openTime.Seconds(), "opened/s")
	b.ReportMetric(closeTime.Seconds(), "approve+drain-s")
}

// waiters is the client side of many WaitRequest streams.
type waiters struct {
	conns   []*grpc.ClientConn
	streams []pushauthv1.RelyingPartyService_WaitRequestClient
	cancel  context.CancelFunc
}

// openWaiters opens cfg.Streams streams on cfg.IDs (round robin) over
// cfg.Conns connections, cfg.Openers at a time, and reads each stream's
// first message (QUEUED/SENT progress), so the server has registered every
// waiter when it returns. It starts no new stream after deadline, and then
// holds fewer than cfg.Streams.
func openWaiters(ctx context.Context, cfg waitConfig, deadline time.Time) (*waiters, error) {
	n, ids := cfg.Streams, cfg.IDs
	sctx, cancel := context.WithCancel(withToken(context.WithoutCancel(ctx), cfg.APIKey))
	w := &waiters{streams: make([]pushauthv1.RelyingPartyService_WaitRequestClient, n), cancel: cancel}
	clients := make([]pushauthv1.RelyingPartyServiceClient, cfg.Conns)
	for i := range clients {
		conn, err := grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			w.close()
			return nil, err
		}
		w.conns = append(w.conns, conn)
		clients[i] = pushauthv1.NewRelyingPartyServiceClient(conn)
	}
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range cfg.Openers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && failed.Load() == nil && time.Now().Before(deadline); i = int(next.Add(1) - 1) {
				s, err := clients[i%len(clients)].WaitRequest(sctx, &pushauthv1.WaitRequestRequest{RequestId: ids[i%len(ids)]})
				if err == nil {
					_, err = s.Recv()
				}
				if err != nil {
					err = fmt.Errorf("stream %d: %w", i, err)
					failed.CompareAndSwap(nil, &err)
					return
				}
				w.streams[i] = s
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		w.close()
		return nil, *err
	}
	w.streams = slices.DeleteFunc(w.streams, func(s pushauthv1.RelyingPartyService_WaitRequestClient) bool { return s == nil })
	return w, nil
}

func (w *waiters) drain(ctx context.Context) (int, error) {
	var next, approved atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range waitOpeners {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(w.streams) && failed.Load() == nil && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				for {
					m, err := w.streams[i].Recv()
					if err != nil {
						err = fmt.Errorf("stream %d ended without a result: %w", i, err)
						failed.CompareAndSwap(nil, &err)
						return
					}
					if r := m.GetResult(); r != nil {
						if r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
							err := fmt.Errorf("stream %d: %s, want APPROVED", i, r.GetStatus())
							failed.CompareAndSwap(nil, &err)
						} else {
							approved.Add(1)
						}
						break
					}
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		return int(approved.Load()), *err
	}
	return int(approved.Load()), ctx.Err()
}

func (w *waiters) close() {
	w.cancel()
	for _, c := range w.conns {
		_ = c.Close()
	}
}

// The child process protocol: the parent writes waitConfig to a file and
// passes its path in the environment (100,000 request ids do not fit in
// one environment string: Linux caps it at 128 KiB); the child prints
// "waitclient: open <n>" once it holds its streams, waits for "drain" on
// its stdin, drains, and prints "waitclient: done <approved>". Anything
// else it prints is test output.
const waitClientEnv = "PUSHAUTH_BENCH_WAITCLIENT"

type waitConfig struct {
	Addr    string   `json:"addr"`
	APIKey  string   `json:"api_key"`
	IDs     []string `json:"ids"`
	Streams int      `json:"streams"`
	Conns   int      `json:"conns"`   // client connections the streams share
	Openers int      `json:"openers"` // streams being opened at once
	Budget  string   `json:"budget"`  // time.Duration
}

// waitProcess is the client side of the streams in a child process.
type waitProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr *bytes.Buffer
	opened int // streams the child holds
}

func startWaitProcess(ctx context.Context, tb testing.TB, cfg waitConfig) (*waitProcess, error) {
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(tb.TempDir(), "waitclient.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return nil, err
	}
	p := &waitProcess{stderr: &bytes.Buffer{}}
	p.cmd = exec.CommandContext(ctx, os.Args[0], "-test.run=^TestWaitStreamsClient$", "-test.count=1", "-test.v")
	p.cmd.Env = append(os.Environ(), waitClientEnv+"="+path)
	p.cmd.Stderr = p.stderr
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.lines = bufio.NewScanner(stdout)
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	line, err := p.expect("waitclient: open ")
	if err == nil {
		p.opened, err = strconv.Atoi(strings.TrimPrefix(line, "waitclient: open "))
	}
	if err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// expect reads the child's output up to a line starting with want and
// returns that line.
func (p *waitProcess) expect(want string) (string, error) {
	var out []string
	for p.lines.Scan() {
		if strings.HasPrefix(p.lines.Text(), want) {
			return p.lines.Text(), nil
		}
		out = append(out, p.lines.Text())
	}
	return "", fmt.Errorf("wait client process: no %q; its output:\n%s\n%s", want, strings.Join(out, "\n"), p.stderr)
}

func (p *waitProcess) drain(context.Context) (int, error) {
	if _, err := io.WriteString(p.stdin, "drain\n"); err != nil {
		return 0, fmt.Errorf("wait client process: %w", err)
	}
	line, err := p.expect("waitclient: done ")
	if err != nil {
		return 0, err
	}
	approved, err := strconv.Atoi(strings.TrimPrefix(line, "waitclient: done "))
	if err != nil {
		return 0, fmt.Errorf("wait client process: %q: %w", line, err)
	}
	_ = p.stdin.Close()
	if err := p.cmd.Wait(); err != nil {
		return approved, fmt.Errorf("wait client process: %w\n%s", err, p.stderr)
	}
	return approved, nil
}

func (p *waitProcess) close() {
	_ = p.stdin.Close()
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

// TestWaitStreamsClient is the client half of BenchmarkWaitStreams in its
// server-only mode, run in a child process; on its own it skips.
func TestWaitStreamsClient(t *testing.T) {
	path := os.Getenv(waitClientEnv)
	if path == "" {
		t.Skip("the client half of BenchmarkWaitStreams; it starts this in a child process")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg waitConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	budget, err := time.ParseDuration(cfg.Budget)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
	defer cancel()
	w, err := openWaiters(ctx, cfg, time.Now().Add(budget))
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	fmt.Printf("waitclient: open %d\n", len(w.streams))
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if strings.TrimSpace(line) != "drain" {
		t.Fatalf("parent said %q, want drain", line)
	}
	approved, err := w.drain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("waitclient: done %d\n", approved)
}
