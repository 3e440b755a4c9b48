package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// failsafe bounds every blocking step; tests never sleep, they wait on
// channels, and this deadline only turns a hang into a failure.
const failsafe = 30 * time.Second

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), failsafe)
	t.Cleanup(cancel)
	return ctx
}

func startEmbedded(t *testing.T) *Bus {
	t.Helper()
	b, err := Start(testCtx(t), Config{StoreDir: t.TempDir(), ServerName: "test"}, testLogger())
	if err != nil {
		t.Fatalf("Start embedded: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// startExternal runs a real nats-server on a random loopback port, standing
// in for a shared NATS cluster.
func startExternal(t *testing.T) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(failsafe) {
		t.Fatal("external server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

func connectURL(t *testing.T, url string) *Bus {
	t.Helper()
	b, err := Start(testCtx(t), Config{URL: url}, testLogger())
	if err != nil {
		t.Fatalf("Start %s: %v", url, err)
	}
	t.Cleanup(b.Close)
	return b
}

func newHub(t *testing.T, nc *nats.Conn, prefix string) *Hub {
	t.Helper()
	h, err := NewHub(nc, prefix, testLogger())
	if err != nil {
		t.Fatalf("NewHub: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

func recv(t *testing.T, ctx context.Context, ch <-chan []byte) []byte {
	t.Helper()
	select {
	case data, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return data
	case <-ctx.Done():
		t.Fatal("timed out waiting for message")
		return nil
	}
}

func mustSubject(t *testing.T, f func(string) (string, error), id string) string {
	t.Helper()
	s, err := f(id)
	if err != nil {
		t.Fatalf("subject %q: %v", id, err)
	}
	return s
}

func TestEmbeddedRoundTrip(t *testing.T) {
	ctx := testCtx(t)
	b := startEmbedded(t)
	if !b.Embedded() {
		t.Fatal("Embedded() = false for empty URL")
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	// Ping also works without a deadline (it adds its own bound).
	if err := b.Ping(context.Background()); err != nil {
		t.Fatalf("Ping without deadline: %v", err)
	}
	subj := mustSubject(t, RequestSubject, "req-1")
	sub, err := b.Conn().SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, subj, []byte("approved")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	msg, err := sub.NextMsgWithContext(ctx)
	if err != nil {
		t.Fatalf("NextMsg: %v", err)
	}
	if string(msg.Data) != "approved" || msg.Subject != "pushauth.request.req-1" {
		t.Fatalf("got %q on %q", msg.Data, msg.Subject)
	}
}

func TestEmbeddedOpensNoPort(t *testing.T) {
	b := startEmbedded(t)
	if b.srv.Addr() != nil {
		t.Fatalf("embedded server listens on %v", b.srv.Addr())
	}
	if b.srv.MonitorAddr() != nil || b.srv.ClusterAddr() != nil {
		t.Fatal("embedded server opened a monitor or cluster listener")
	}
	if !b.srv.ReadyForConnections(time.Second) || !b.Conn().IsConnected() {
		t.Fatal("embedded server should still serve in-process clients")
	}
}

func TestEmbeddedJetStream(t *testing.T) {
	ctx := testCtx(t)
	b := startEmbedded(t)
	js, err := b.JetStream()
	if err != nil {
		t.Fatalf("JetStream: %v", err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:      "PUSHJOBS",
		Subjects:  []string{"pushauth.job.>"},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
	})
	if err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	ack, err := js.Publish(ctx, "pushauth.job.dev1", []byte("job-1"))
	if err != nil {
		t.Fatalf("js Publish: %v", err)
	}
	if ack.Stream != "PUSHJOBS" || ack.Sequence != 1 {
		t.Fatalf("ack = %+v", ack)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "workers", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("CreateConsumer: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchContext(ctx))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if string(msg.Data()) != "job-1" {
		t.Fatalf("got %q", msg.Data())
	}
	if err := msg.DoubleAck(ctx); err != nil {
		t.Fatalf("ack: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("work queue still holds %d msgs after ack", info.State.Msgs)
	}
}

func TestEmbeddedDefaultStoreDirRemoved(t *testing.T) {
	b, err := Start(testCtx(t), Config{}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	dir := b.tmpDir
	if dir == "" {
		t.Fatal("no temporary store dir recorded")
	}
	b.Close()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary store dir %s not removed", dir)
	}
}

func TestExternalTwoReplicas(t *testing.T) {
	ctx := testCtx(t)
	srv := startExternal(t)
	a := connectURL(t, srv.ClientURL())
	b := connectURL(t, srv.ClientURL())
	if a.Embedded() {
		t.Fatal("Embedded() = true with URL")
	}
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	hubB := newHub(t, b.Conn(), RequestPrefix)
	ch, cancel := hubB.Watch("r42")
	defer cancel()

	if err := a.Publish(ctx, mustSubject(t, RequestSubject, "r42"), []byte("denied")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, ctx, ch); string(got) != "denied" {
		t.Fatalf("replica B got %q", got)
	}
}

func TestURLListAndUnreachable(t *testing.T) {
	srv := startExternal(t)
	// A dead address first, then the live one: the list form works.
	dead := deadAddr(t)
	b := connectURL(t, "nats://"+dead+", "+srv.ClientURL())
	if err := b.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	_, err := Start(testCtx(t), Config{URL: "nats://alice:s3cret@" + dead}, testLogger())
	if err == nil {
		t.Fatal("Start succeeded against a dead address")
	}
	msg := err.Error()
	if !strings.Contains(msg, dead) {
		t.Fatalf("error does not name the URL: %v", err)
	}
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "alice") {
		t.Fatalf("error leaks credentials: %v", err)
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"nats://u:p@h1:4222,nats://tok@h2:4222": "nats://REDACTED@h1:4222,nats://REDACTED@h2:4222",
		"localhost:4222":                        "nats://localhost:4222",
		"tls://h:1":                             "tls://h:1",
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

// store is a stand-in for the database row: the source of truth.
type rowStore struct {
	mu    sync.Mutex
	state map[string]string
	reads chan string // each read reports what it saw
}

func newStore() *rowStore {
	return &rowStore{state: map[string]string{}, reads: make(chan string, 100)}
}

func (s *rowStore) set(id, v string) {
	s.mu.Lock()
	s.state[id] = v
	s.mu.Unlock()
}

func (s *rowStore) reader(id string) func(context.Context) (string, bool, error) {
	return func(ctx context.Context) (string, bool, error) {
		s.mu.Lock()
		v := s.state[id]
		s.mu.Unlock()
		s.reads <- v
		return v, v != "" && v != "pending", nil
	}
}

type waitResult struct {
	v   string
	err error
}

func goWait(ctx context.Context, hub *Hub, id string, read func(context.Context) (string, bool, error), recheck <-chan time.Time) <-chan waitResult {
	out := make(chan waitResult, 1)
	go func() {
		v, err := Wait(ctx, hub, id, read, recheck)
		out <- waitResult{v, err}
	}()
	return out
}

func awaitRead(t *testing.T, ctx context.Context, s *rowStore) string {
	t.Helper()
	select {
	case v := <-s.reads:
		return v
	case <-ctx.Done():
		t.Fatal("timed out waiting for a read")
		return ""
	}
}

func awaitResult(t *testing.T, ctx context.Context, ch <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		t.Fatal("timed out waiting for Wait to return")
		return waitResult{}
	}
}

func sendTick(t *testing.T, ctx context.Context, tick chan<- time.Time) {
	t.Helper()
	select {
	case tick <- time.Time{}:
	case <-ctx.Done():
		t.Fatal("timed out sending a recheck tick")
	}
}

func TestWaitWakesOnNews(t *testing.T) {
	ctx := testCtx(t)
	srv := startExternal(t)
	writer := connectURL(t, srv.ClientURL())
	waiter := connectURL(t, srv.ClientURL())
	hub := newHub(t, waiter.Conn(), RequestPrefix)
	s := newStore()
	s.set("r1", "pending")

	res := goWait(ctx, hub, "r1", s.reader("r1"), nil) // no rechecks: only news can wake it
	if v := awaitRead(t, ctx, s); v != "pending" {
		t.Fatalf("first read saw %q", v)
	}
	// The phone's decision: write the row, then announce it from another replica.
	s.set("r1", "approved")
	if err := writer.Publish(ctx, mustSubject(t, RequestSubject, "r1"), nil); err != nil {
		t.Fatal(err)
	}
	r := awaitResult(t, ctx, res)
	if r.err != nil || r.v != "approved" {
		t.Fatalf("Wait = %q, %v", r.v, r.err)
	}
	if n := hub.Len(); n != 0 {
		t.Fatalf("watcher leaked: Len = %d", n)
	}
}

func TestWaitAlreadyDecided(t *testing.T) {
	ctx := testCtx(t)
	b := startEmbedded(t)
	hub := newHub(t, b.Conn(), RequestPrefix)
	s := newStore()
	s.set("r1", "denied") // decided (and announced) before anyone waited

	v, err := Wait(ctx, hub, "r1", s.reader("r1"), nil)
	if err != nil || v != "denied" {
		t.Fatalf("Wait = %q, %v", v, err)
	}
	if len(s.reads) != 1 {
		t.Fatalf("reads = %d, want 1", len(s.reads))
	}
}

func TestWaitRecheckCatchesLostMessage(t *testing.T) {
	ctx := testCtx(t)
	b := startEmbedded(t)
	hub := newHub(t, b.Conn(), RequestPrefix)
	s := newStore()
	s.set("r1", "pending")
	tick := make(chan time.Time)

	res := goWait(ctx, hub, "r1", s.reader("r1"), tick)
	awaitRead(t, ctx, s)
	// A tick with nothing changed just re-reads.
	sendTick(t, ctx, tick)
	if v := awaitRead(t, ctx, s); v != "pending" {
		t.Fatalf("recheck saw %q", v)
	}
	s.set("r1", "approved") // decision written, message lost: nothing published
	sendTick(t, ctx, tick)
	r := awaitResult(t, ctx, res)
	if r.err != nil || r.v != "approved" {
		t.Fatalf("Wait = %q, %v", r.v, r.err)
	}
}

func TestWaitContextCancel(t *testing.T) {
	b := startEmbedded(t)
	hub := newHub(t, b.Conn(), RequestPrefix)
	s := newStore()
	ctx, cancel := context.WithCancel(testCtx(t))

	res := goWait(ctx, hub, "r1", s.reader("r1"), nil)
	awaitRead(t, testCtx(t), s)
	cancel()
	r := awaitResult(t, testCtx(t), res)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Wait err = %v, want context.Canceled", r.err)
	}
	if n := hub.Len(); n != 0 {
		t.Fatalf("watcher leaked: Len = %d", n)
	}
}

func TestWaitReadError(t *testing.T) {
	b := startEmbedded(t)
	hub := newHub(t, b.Conn(), RequestPrefix)
	boom := errors.New("db down")
	_, err := Wait(testCtx(t), hub, "r1", func(context.Context) (int, bool, error) { return 0, false, boom }, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}

func TestWaitHubClosed(t *testing.T) {
	ctx := testCtx(t)
	b := startEmbedded(t)
	hub, err := NewHub(b.Conn(), RequestPrefix, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	s := newStore()
	res := goWait(ctx, hub, "r1", s.reader("r1"), nil)
	awaitRead(t, ctx, s)
	hub.Close()
	r := awaitResult(t, ctx, res)
	if !errors.Is(r.err, ErrHubClosed) {
		t.Fatalf("Wait err = %v, want ErrHubClosed", r.err)
	}
	hub.Close() // idempotent
}

func TestWaitNilHubPolls(t *testing.T) {
	ctx := testCtx(t)
	s := newStore()
	tick := make(chan time.Time)
	res := goWait(ctx, nil, "r1", s.reader("r1"), tick)
	awaitRead(t, ctx, s)
	s.set("r1", "approved")
	sendTick(t, ctx, tick)
	if r := awaitResult(t, ctx, res); r.err != nil || r.v != "approved" {
		t.Fatalf("Wait = %q, %v", r.v, r.err)
	}
}

func TestManyWatchers(t *testing.T) {
	ctx := testCtx(t)
	srv := startExternal(t)
	pub := connectURL(t, srv.ClientURL())
	sub := connectURL(t, srv.ClientURL())
	hub := newHub(t, sub.Conn(), DevicePrefix)

	const n = 5000
	chans := make([]<-chan []byte, n)
	cancels := make([]func(), n)
	for i := range n {
		chans[i], cancels[i] = hub.Watch(fmt.Sprintf("dev-%d", i))
	}
	// Two watchers on one key both get the message.
	extra, cancelExtra := hub.Watch("dev-7")
	if got := hub.Len(); got != n+1 {
		t.Fatalf("Len = %d, want %d", got, n+1)
	}
	for i := range n {
		id := fmt.Sprintf("dev-%d", i)
		if err := pub.Publish(ctx, mustSubject(t, DeviceSubject, id), []byte(id)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		if got, want := string(recv(t, ctx, chans[i])), fmt.Sprintf("dev-%d", i); got != want {
			t.Fatalf("watcher %d got %q", i, got)
		}
	}
	if got := string(recv(t, ctx, extra)); got != "dev-7" {
		t.Fatalf("second watcher got %q", got)
	}
	cancelExtra()
	for i, c := range cancels {
		c()
		if i%2 == 0 {
			c() // idempotent
		}
	}
	if got := hub.Len(); got != 0 {
		t.Fatalf("Len after cancel = %d", got)
	}
}

func TestWatchConcurrent(t *testing.T) {
	b := startEmbedded(t)
	hub := newHub(t, b.Conn(), RequestPrefix)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				key := fmt.Sprintf("k%d", (g*500+i)%97)
				_, cancel := hub.Watch(key)
				hub.dispatch(key, News{Data: []byte("x")})
				cancel()
			}
		})
	}
	wg.Wait()
	if got := hub.Len(); got != 0 {
		t.Fatalf("Len = %d", got)
	}
}

func TestDispatchNeverBlocksMarksLoss(t *testing.T) {
	b := startEmbedded(t)
	hub := newHub(t, b.Conn(), RequestPrefix)
	ch, cancel := hub.Watch("r1")
	defer cancel()
	// Nobody reads: dispatch must not block; what fits is kept in order,
	// and once news is lost the watcher is told so by a nil message.
	for i := range watchBuffer {
		hub.dispatch("r1", News{Data: []byte{byte('0' + i)}})
	}
	for i := range watchBuffer {
		if got := recv(t, testCtx(t), ch); string(got) != string(rune('0'+i)) {
			t.Fatalf("message %d: got %q", i, got)
		}
	}
	for i := range 3 * watchBuffer {
		hub.dispatch("r1", News{Data: []byte{byte('a' + i)}})
	}
	var last []byte
	for {
		select {
		case m := <-ch:
			last = m
			continue
		default:
		}
		break
	}
	if last != nil {
		t.Fatalf("after an overflow the last message is %q, want nil (news lost)", last)
	}
	hub.dispatch("other", News{Data: []byte("x")}) // no watcher: no-op
}

func TestHubCloseAndWatchAfterClose(t *testing.T) {
	b := startEmbedded(t)
	hub, err := NewHub(b.Conn(), RequestPrefix, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ch, cancel := hub.Watch("r1")
	hub.Close()
	if _, ok := <-ch; ok {
		t.Fatal("channel not closed by Hub.Close")
	}
	cancel() // after close: no-op
	ch2, cancel2 := hub.Watch("r2")
	if _, ok := <-ch2; ok {
		t.Fatal("Watch on closed hub returned an open channel")
	}
	cancel2()
	if hub.Len() != 0 {
		t.Fatal("Len != 0 after Close")
	}
	hub.Close()
}

func TestBadIDs(t *testing.T) {
	bad := []string{"", "a.b", ".", "*", ">", "a*", "a>", "a b", "a\tb", "a\nb", "\x00", "a\u00a0b", strings.Repeat("x", MaxIDLen+1)}
	for _, id := range bad {
		if _, err := RequestSubject(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("RequestSubject(%q) err = %v", id, err)
		}
		if _, err := DeviceSubject(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("DeviceSubject(%q) err = %v", id, err)
		}
		if _, err := Wait(testCtx(t), nil, id, func(context.Context) (int, bool, error) {
			t.Fatal("read called for bad id")
			return 0, false, nil
		}, nil); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Wait(%q) err = %v", id, err)
		}
	}
	good := map[string]string{"abc": "pushauth.request.abc", "0b5e7c2a-9f1d-4c1e-8e4b-1a2b3c4d5e6f": "pushauth.request.0b5e7c2a-9f1d-4c1e-8e4b-1a2b3c4d5e6f", "A_b-9": "pushauth.request.A_b-9"}
	for id, want := range good {
		if got := mustSubject(t, RequestSubject, id); got != want {
			t.Errorf("RequestSubject(%q) = %q", id, got)
		}
	}
	if got := mustSubject(t, DeviceSubject, "d1"); got != "pushauth.device.d1" {
		t.Errorf("DeviceSubject = %q", got)
	}
	b := startEmbedded(t)
	for _, p := range []string{"", "pushauth.request", "pushauth.*.", "pushauth..", "a b.", ">."} {
		if _, err := NewHub(b.Conn(), p, testLogger()); err == nil {
			t.Errorf("NewHub(%q) accepted", p)
		}
	}
}

func TestCloseTwice(t *testing.T) {
	ctx := testCtx(t)
	b := startEmbedded(t)
	hub := newHub(t, b.Conn(), RequestPrefix)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(b.Close)
	}
	wg.Wait()
	b.Close()
	if !b.Conn().IsClosed() {
		t.Fatal("connection not closed")
	}
	if err := b.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded after Close")
	}
	if err := b.Publish(ctx, "pushauth.request.x", nil); err == nil {
		t.Fatal("Publish succeeded after Close")
	}
	hub.Close() // after the Bus: fine

	ext := connectURL(t, startExternal(t).ClientURL())
	ext.Close()
	ext.Close()
}

func TestEmbeddedBadStoreDir(t *testing.T) {
	file := t.TempDir() + "/not-a-dir"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := Start(testCtx(t), Config{StoreDir: file}, testLogger()); err == nil {
		b.Close()
		t.Fatal("Start succeeded with a file as StoreDir")
	} else if !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("error does not explain the failure: %v", err)
	}
}

func TestStartCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Start(ctx, Config{URL: "nats://127.0.0.1:1"}, testLogger()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestPublishCanceledContext(t *testing.T) {
	b := startEmbedded(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Publish(ctx, "pushauth.request.x", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

// deadAddr returns a loopback address nobody listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
