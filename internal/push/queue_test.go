package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// startNATS runs a real nats-server with JetStream on a loopback port.
func startNATS(t *testing.T) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// connect opens a connection of its own, as a separate replica would.
func connect(t *testing.T, s *server.Server) jetstream.JetStream {
	t.Helper()
	return clusterJS(t, s.ClientURL())
}

// clock is a controllable now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

var t0 = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// funcSender is a Sender whose behaviour the test scripts; it counts calls
// per request id.
type funcSender struct {
	mu    sync.Mutex
	calls map[string]int
	fn    func(j Job, call int) error
}

func newFuncSender(fn func(j Job, call int) error) *funcSender {
	return &funcSender{calls: map[string]int{}, fn: fn}
}

func (s *funcSender) Name() string { return "test" }

func (s *funcSender) Send(_ context.Context, j Job) error {
	s.mu.Lock()
	s.calls[j.RequestID]++
	n := s.calls[j.RequestID]
	s.mu.Unlock()
	if s.fn == nil {
		return nil
	}
	return s.fn(j, n)
}

func (s *funcSender) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}

type result struct {
	job Job
	res Result
}

type harness struct {
	t       *testing.T
	srv     *server.Server
	js      jetstream.JetStream
	clock   *clock
	results chan result
	cfg     QueueConfig
}

func newHarness(t *testing.T) *harness {
	s := startNATS(t)
	return &harness{
		t: t, srv: s, js: connect(t, s), clock: &clock{t: t0},
		results: make(chan result, 1000),
		cfg: QueueConfig{Workers: 2, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
			AckWait: 30 * time.Second},
	}
}

func (h *harness) onResult(_ context.Context, j Job, r Result) { h.results <- result{j, r} }

// queue creates a Queue on js (a replica's connection) without running it.
func (h *harness) queue(js jetstream.JetStream, sender Sender) *Queue {
	h.t.Helper()
	q, err := NewQueue(h.t.Context(), js, h.cfg, sender, h.clock.now, slog.New(slog.DiscardHandler))
	if err != nil {
		h.t.Fatal(err)
	}
	return q
}

// run starts q's workers until the test ends or stop is called, then checks
// Run returned nil.
func (h *harness) run(q *Queue) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, h.onResult) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					h.t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				h.t.Error("Run did not return after cancel")
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

func (h *harness) next() result {
	h.t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(15 * time.Second):
		h.t.Fatal("no result")
		return result{}
	}
}

// expect reads results for one job and checks their outcomes and attempts.
func (h *harness) expect(id string, want ...Result) []Result {
	h.t.Helper()
	var got []Result
	for _, w := range want {
		r := h.next()
		if r.job.RequestID != id {
			h.t.Fatalf("result for %s, want %s", r.job.RequestID, id)
		}
		if r.res.Outcome != w.Outcome || r.res.Attempt != w.Attempt {
			h.t.Fatalf("result %d = %v attempt %d (err %v), want %v attempt %d",
				len(got)+1, r.res.Outcome, r.res.Attempt, r.res.Err, w.Outcome, w.Attempt)
		}
		got = append(got, r.res)
	}
	return got
}

// drained asserts the work queue holds nothing and nothing is in flight, so
// no job can be delivered again.
func (h *harness) drained() {
	h.t.Helper()
	ctx := h.t.Context()
	st, err := h.js.Stream(ctx, "PUSHAUTH_PUSH")
	if err != nil {
		h.t.Fatal(err)
	}
	si, err := st.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	if si.State.Msgs != 0 {
		h.t.Errorf("stream holds %d jobs, want 0", si.State.Msgs)
	}
	ci, err := st.Consumer(ctx, "push-workers")
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := ci.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 {
		h.t.Errorf("consumer: %d ack pending, %d pending, %d redelivered; want none",
			info.NumAckPending, info.NumPending, info.NumRedelivered)
	}
}

func job(id string) Job {
	return Job{RequestID: id, DeviceID: "dev-" + id, Platform: PlatformAndroid, PushToken: "tok-" + id,
		Kind: KindLogin, Locale: "en", ExpiresAt: t0.Add(time.Hour)}
}

func TestQueueSends(t *testing.T) {
	h := newHarness(t)
	var got Job
	var mu sync.Mutex
	s := newFuncSender(func(j Job, _ int) error { mu.Lock(); got = j; mu.Unlock(); return nil })
	q := h.queue(h.js, s)
	h.run(q)
	want := job("a")
	want.Platform, want.Kind, want.Locale = PlatformIOS, KindPairing, "nl"
	if err := q.Enqueue(t.Context(), want); err != nil {
		t.Fatal(err)
	}
	h.expect("a", Result{Outcome: Sent, Attempt: 1})
	mu.Lock()
	if !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("expiry %v, want %v", got.ExpiresAt, want.ExpiresAt)
	}
	got.ExpiresAt = want.ExpiresAt
	if got != want {
		t.Errorf("sender got %+v, want %+v", got, want)
	}
	mu.Unlock()
	h.drained()
}

func TestQueueRetriesTemporaryFailures(t *testing.T) {
	h := newHarness(t)
	s := newFuncSender(func(_ Job, call int) error {
		switch call {
		case 1:
			return &TemporaryError{Err: errors.New("overloaded"), RetryAfter: 3 * time.Millisecond}
		case 2:
			return fmt.Errorf("wrapped: %w", &TemporaryError{Err: errors.New("unavailable")})
		}
		return nil
	})
	q := h.queue(h.js, s)
	h.run(q)
	if err := q.Enqueue(t.Context(), job("r")); err != nil {
		t.Fatal(err)
	}
	got := h.expect("r",
		Result{Outcome: Retrying, Attempt: 1},
		Result{Outcome: Retrying, Attempt: 2},
		Result{Outcome: Sent, Attempt: 3})
	if got[0].RetryIn != 3*time.Millisecond {
		t.Errorf("first retry in %v, want the Retry-After 3ms", got[0].RetryIn)
	}
	if got[1].RetryIn > 2*time.Millisecond || got[1].Err == nil || got[1].Err.Error() != "wrapped: unavailable (temporary)" {
		t.Errorf("second retry: in %v (want ≤ 2ms: MinBackoff doubled), err %v", got[1].RetryIn, got[1].Err)
	}
	if n := s.count("r"); n != 3 {
		t.Errorf("sent %d times, want 3", n)
	}
	h.drained()
}

func TestQueueDeadTokenIsNotRetried(t *testing.T) {
	h := newHarness(t)
	s := newFuncSender(func(Job, int) error { return fmt.Errorf("%w: gone", ErrTokenDead) })
	q := h.queue(h.js, s)
	h.run(q)
	if err := q.Enqueue(t.Context(), job("d")); err != nil {
		t.Fatal(err)
	}
	r := h.expect("d", Result{Outcome: Dead, Attempt: 1})
	if !errors.Is(r[0].Err, ErrTokenDead) {
		t.Errorf("err = %v", r[0].Err)
	}
	h.drained()
	if n := s.count("d"); n != 1 {
		t.Errorf("sent %d times, want 1", n)
	}
}

func TestQueueExpiredJobIsNotSent(t *testing.T) {
	h := newHarness(t)
	s := newFuncSender(nil)
	q := h.queue(h.js, s)
	h.run(q)
	j := job("x")
	j.ExpiresAt = t0 // expires exactly now
	if err := q.Enqueue(t.Context(), j); err != nil {
		t.Fatal(err)
	}
	r := h.expect("x", Result{Outcome: Expired, Attempt: 0})
	if r[0].Err != nil {
		t.Errorf("err = %v", r[0].Err)
	}
	if n := s.count("x"); n != 0 {
		t.Errorf("sender called %d times, want 0", n)
	}
	h.drained()
}

func TestQueueGivesUpWhenRetryWouldOutliveRequest(t *testing.T) {
	h := newHarness(t)
	s := newFuncSender(func(Job, int) error {
		return &TemporaryError{Err: errors.New("quota"), RetryAfter: 2 * time.Hour}
	})
	q := h.queue(h.js, s)
	h.run(q)
	if err := q.Enqueue(t.Context(), job("late")); err != nil {
		t.Fatal(err)
	}
	r := h.expect("late", Result{Outcome: Expired, Attempt: 1})
	if !IsTemporary(r[0].Err) {
		t.Errorf("err = %v, want the sender's temporary error", r[0].Err)
	}
	h.drained()
}

func TestQueuePermanentFailure(t *testing.T) {
	h := newHarness(t)
	s := newFuncSender(func(Job, int) error { return fmt.Errorf("%w: platform", ErrNoSender) })
	q := h.queue(h.js, s)
	h.run(q)
	if err := q.Enqueue(t.Context(), job("f")); err != nil {
		t.Fatal(err)
	}
	h.expect("f", Result{Outcome: Failed, Attempt: 1})
	h.drained()
}

func TestQueueStopsAtMaxDeliver(t *testing.T) {
	h := newHarness(t)
	h.cfg.MaxDeliver = 2
	s := newFuncSender(func(Job, int) error { return &TemporaryError{Err: errors.New("down")} })
	q := h.queue(h.js, s)
	h.run(q)
	if err := q.Enqueue(t.Context(), job("m")); err != nil {
		t.Fatal(err)
	}
	r := h.expect("m", Result{Outcome: Retrying, Attempt: 1}, Result{Outcome: Failed, Attempt: 2})
	if !IsTemporary(r[1].Err) {
		t.Errorf("err = %v, want it to wrap the last temporary error", r[1].Err)
	}
	h.drained()
}

func TestQueueDeduplicatesEnqueue(t *testing.T) {
	h := newHarness(t)
	s := newFuncSender(nil)
	q := h.queue(h.js, s)
	ctx := t.Context()
	if err := q.Enqueue(ctx, job("dup")); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, job("dup"), job("dup")); err != nil {
		t.Fatal(err)
	}
	st, err := h.js.Stream(ctx, "PUSHAUTH_PUSH")
	if err != nil {
		t.Fatal(err)
	}
	si, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.State.Msgs != 1 {
		t.Fatalf("stream holds %d jobs after enqueueing one job three times, want 1", si.State.Msgs)
	}
	// Same request, other device: a different job.
	other := job("dup")
	other.DeviceID = "dev-2"
	if err := q.Enqueue(ctx, other); err != nil {
		t.Fatal(err)
	}
	h.run(q)
	h.expect("dup", Result{Outcome: Sent, Attempt: 1}, Result{Outcome: Sent, Attempt: 1})
	// Still deduplicated once sent and gone from the work queue.
	if err := q.Enqueue(ctx, job("dup")); err != nil {
		t.Fatal(err)
	}
	h.drained()
	if n := s.count("dup"); n != 2 {
		t.Errorf("sent %d times, want 2 (one per device)", n)
	}
}

func TestQueueTwoReplicasShareTheWork(t *testing.T) {
	h := newHarness(t)
	s := newFuncSender(nil)
	var mu sync.Mutex
	byReplica := map[string]int{}
	sender := func(name string) Sender {
		return senderFunc{name: name, fn: func(ctx context.Context, j Job) error {
			mu.Lock()
			byReplica[name]++
			mu.Unlock()
			return s.Send(ctx, j)
		}}
	}
	q1 := h.queue(connect(t, h.srv), sender("replica-1"))
	q2 := h.queue(connect(t, h.srv), sender("replica-2"))
	h.run(q1)
	h.run(q2)

	const n = 60
	var jobs []Job
	for i := range n {
		jobs = append(jobs, job(fmt.Sprintf("j%02d", i)))
	}
	if err := q1.Enqueue(t.Context(), jobs[:n/2]...); err != nil {
		t.Fatal(err)
	}
	if err := q2.Enqueue(t.Context(), jobs[n/2:]...); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range n {
		r := h.next()
		if r.res.Outcome != Sent {
			t.Fatalf("%s: %v", r.job.RequestID, r.res.Outcome)
		}
		if seen[r.job.RequestID] {
			t.Fatalf("%s reported twice", r.job.RequestID)
		}
		seen[r.job.RequestID] = true
	}
	h.drained()
	for _, j := range jobs {
		if c := s.count(j.RequestID); c != 1 {
			t.Errorf("%s sent %d times, want 1", j.RequestID, c)
		}
	}
	mu.Lock()
	t.Logf("jobs per replica: %v", byReplica)
	mu.Unlock()
}

func TestQueueShutdownHandsJobToAnotherReplica(t *testing.T) {
	h := newHarness(t)
	h.cfg.AckWait = time.Minute // a handover must not wait for this
	entered := make(chan struct{})
	blocking := senderFunc{name: "stuck", fn: func(ctx context.Context, _ Job) error {
		close(entered)
		<-ctx.Done() // a send in flight when the replica stops
		return &TemporaryError{Err: ctx.Err()}
	}}
	q1 := h.queue(connect(t, h.srv), blocking)
	stop1 := h.run(q1)
	if err := q1.Enqueue(t.Context(), job("h")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(15 * time.Second):
		t.Fatal("replica 1 never got the job")
	}
	stop1()
	select {
	case r := <-h.results:
		t.Fatalf("stopping replica reported %v", r.res.Outcome)
	default:
	}
	s := newFuncSender(nil)
	h.run(h.queue(connect(t, h.srv), s))
	h.expect("h", Result{Outcome: Sent, Attempt: 2})
	h.drained()
}

// With FinishTimeout, a send in flight when the replica stops completes
// and is acknowledged instead of being cancelled and handed back.
func TestQueueShutdownFinishesSendInFlight(t *testing.T) {
	h := newHarness(t)
	h.cfg.FinishTimeout = time.Hour // the send below decides when it ends
	entered, release := make(chan struct{}), make(chan struct{})
	slow := senderFunc{name: "slow", fn: func(ctx context.Context, _ Job) error {
		close(entered)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return &TemporaryError{Err: ctx.Err()}
		}
	}}
	q := h.queue(h.js, slow)
	if err := q.Enqueue(t.Context(), job("f")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, h.onResult) }()
	<-entered
	cancel() // shutdown begins while the send is in flight
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.expect("f", Result{Outcome: Sent, Attempt: 1})
	h.drained()
}

func TestQueueDropsUndecodableJob(t *testing.T) {
	h := newHarness(t)
	h.cfg.Workers = 1
	s := newFuncSender(nil)
	q := h.queue(h.js, s)
	if _, err := h.js.Publish(t.Context(), "pushauth.push.jobs", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(t.Context(), job("ok")); err != nil {
		t.Fatal(err)
	}
	h.run(q)
	h.expect("ok", Result{Outcome: Sent, Attempt: 1})
	h.drained()
}

func TestEnqueueValidates(t *testing.T) {
	h := newHarness(t)
	q := h.queue(h.js, newFuncSender(nil))
	bad := job("v")
	bad.Platform = "WINDOWS_PHONE"
	if err := q.Enqueue(t.Context(), job("fine"), bad); err == nil {
		t.Fatal("Enqueue accepted an unknown platform")
	}
	st, _ := h.js.Stream(t.Context(), "PUSHAUTH_PUSH")
	si, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if si.State.Msgs != 0 {
		t.Errorf("a rejected batch stored %d jobs", si.State.Msgs)
	}
}

func TestNewQueueStreamConfig(t *testing.T) {
	h := newHarness(t)
	h.queue(h.js, newFuncSender(nil))
	// A second replica starting up must not fail on the existing objects.
	h.queue(connect(t, h.srv), newFuncSender(nil))
	st, err := h.js.Stream(t.Context(), "PUSHAUTH_PUSH")
	if err != nil {
		t.Fatal(err)
	}
	si, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c := si.Config
	if c.Retention != jetstream.WorkQueuePolicy || c.Storage != jetstream.FileStorage || c.Replicas != 1 ||
		len(c.Subjects) != 1 || c.Subjects[0] != "pushauth.push.jobs" || c.MaxAge != time.Hour {
		t.Errorf("stream config = %+v", c)
	}
	cons, err := st.Consumer(t.Context(), "push-workers")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if ci.Config.AckPolicy != jetstream.AckExplicitPolicy || ci.Config.AckWait != 30*time.Second ||
		ci.Config.MaxDeliver != 50 || ci.Config.Durable != "push-workers" {
		t.Errorf("consumer config = %+v", ci.Config)
	}
}

type senderFunc struct {
	name string
	fn   func(context.Context, Job) error
}

func (s senderFunc) Name() string                          { return s.name }
func (s senderFunc) Send(ctx context.Context, j Job) error { return s.fn(ctx, j) }
