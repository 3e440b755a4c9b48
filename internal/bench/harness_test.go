package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/registration"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// logMode picks the server's logging. The default keeps the server quiet
// (warnings and errors only, as text into a buffer printed on failure), so
// the numbers measure pushauth, not log formatting. "info-json" is what
// pushauthd does by default: a JSON line per RPC (and per push) at info,
// written to /dev/null, i.e. with the formatting and write syscall cost
// but no disk.
var logMode = flag.String("pushauth.log", "warn", `server logging during benchmarks: "warn" (quiet) or "info-json" (production default, to /dev/null)`)

// Server settings the benchmarks can vary, to test a proposed fix that is
// only configuration; zero keeps the server's default.
var (
	recheck     = flag.Duration("pushauth.recheck", 0, "server Options.Recheck: how often a waiter re-reads its request (default 2s)")
	pushWorkers = flag.Int("pushauth.pushworkers", 0, "server Options.PushQueue.Workers: concurrent push sends per replica (default 8)")
)

// flowTimeout bounds one flow, so a lost push or a stuck stream fails the
// benchmark instead of hanging it.
const flowTimeout = 30 * time.Second

// env is a running server with a relying party and paired phones, and the
// clients a login server and the phones use.
type env struct {
	ts     *servertest.TestServer
	fcm    *fakeFCM
	logs   *servertest.LogBuffer
	rp     pushauthv1.RelyingPartyServiceClient // the login server's own connection
	rpConn *grpc.ClientConn
	rpCtx  context.Context // carries the API key
	rpID   string
	apiKey string
	users  []*user
	timed  *timedStore // with -pushauth.storestats
}

// user is one end user with one paired phone, which has its own gRPC
// connection (phones do not share connections) and receives its pushes from
// the fake FCM.
type user struct {
	ref    string
	phone  *servertest.Phone
	device pushauthv1.DeviceServiceClient
	devCtx context.Context // carries the device credential
	pushes <-chan string
}

// serverOptions makes the benchmark server production-like: the real clock
// (not the test clock frozen at servertest.Epoch) and the chosen logging;
// and it lifts the SMS limits so that set-up can register many phones from
// 127.0.0.1, and the per-connection, per-key and rate limits, since one
// harness plays a whole fleet of login servers with one API key. (servertest's NATS and SMS-outbox loggers stay on its own
// buffer; they log at start-up and during registration only.)
func serverOptions(tb testing.TB, logs *servertest.LogBuffer) func(*server.Options) {
	tb.Helper()
	var log *slog.Logger
	switch *logMode {
	case "warn":
		log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	case "info-json":
		devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = devNull.Close() })
		log = slog.New(slog.NewJSONHandler(devNull, &slog.HandlerOptions{Level: slog.LevelInfo}))
	default:
		tb.Fatalf("-pushauth.log=%q: want warn or info-json", *logMode)
	}
	return func(o *server.Options) {
		o.Now = time.Now
		o.Logger = log
		o.Recheck = *recheck
		o.PushQueue.Workers = *pushWorkers
		o.Registration.Limits = registration.Limits{
			ResendCooldown: time.Nanosecond, PerNumberHour: 1 << 30, PerNumberDay: 1 << 30,
			PerAddressHour: 1 << 30, PerPrefixHour: 1 << 30, GlobalDay: 1 << 30,
			MaxAttempts: 5, MaxFailuresPerNumberDay: 10,
		}
		// A benchmark worker logs its user in hundreds of times a
		// minute: lift the per-user limits on login requests.
		o.Approval = approval.DefaultConfig()
		o.Approval.ApprovalsPerMinute, o.Approval.ApprovalsPerHour = 1<<30, 1<<30
		o.Limits.MaxConnections = -1
		o.Limits.MaxConcurrentStreams = -1
		o.Limits.WaitStreamsPerAPIKey = -1
		o.Limits.APIKeyRate = -1
	}
}

// newEnv starts a server on the database at url and pairs n phones, each
// to its own user of one relying party with policy (nil: the default, one
// tap and 120 s to answer). extra options apply after the benchmarks' own.
func newEnv(tb testing.TB, url string, n int, policy *pushauthv1.RelyingPartyPolicy, extra ...func(*server.Options)) *env {
	tb.Helper()
	fcm := newFakeFCM(tb)
	sender := fcm.sender(tb)
	logs := &servertest.LogBuffer{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("server log (warnings and errors):\n%s", logs.String())
		}
	})
	var timed *timedStore
	opts := []func(*server.Options){serverOptions(tb, logs), servertest.WithPushSender(sender)}
	if *storeStats {
		opts = append(opts, withTimedStore(&timed))
	}
	opts = append(opts, extra...)
	ts := servertest.New(tb, url, opts...)
	rp := ts.CreateRelyingParty(tb, "bench-portal", policy)
	_, key := ts.CreateAPIKey(tb, rp.GetId())

	e := &env{ts: ts, fcm: fcm, logs: logs, rpID: rp.GetId(), apiKey: key, timed: timed}
	e.rpConn = dial(tb, ts.Addr)
	e.rp = pushauthv1.NewRelyingPartyServiceClient(e.rpConn)
	e.rpCtx = withToken(context.Background(), key)
	e.addUsers(tb, n)
	return e
}

// addUsers registers and pairs more phones, 8 at a time.
func (e *env) addUsers(tb testing.TB, n int) {
	tb.Helper()
	first := len(e.users)
	added := make([]*user, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			added[i] = e.newUser(tb, first+i)
		})
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
	e.users = append(e.users, added...)
}

// newUser registers a phone through the SMS flow and pairs it with the
// two-word phrase, as servertest does in the functional tests. It reports
// failures with Errorf: it runs off the test goroutine.
func (e *env) newUser(tb testing.TB, i int) *user {
	p := servertest.NewPhone(tb, i%2 == 1) // Android and iOS key formats alternate
	p.PushToken = fmt.Sprintf("fcm-bench-%06d", i)
	u := &user{ref: fmt.Sprintf("user-%06d@bench.example", i), phone: p, pushes: e.fcm.phone(p.PushToken)}
	number := fmt.Sprintf("+3161%07d", i) // Dutch mobile numbers
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := e.ts.Device.StartPhoneVerification(ctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: number})
	if err != nil {
		tb.Errorf("StartPhoneVerification(%s): %v", number, err)
		return u
	}
	sms, err := e.ts.Admin.ListOutboxMessages(e.ts.AdminCtx(ctx), &pushauthv1.ListOutboxMessagesRequest{PhoneNumber: number, Limit: 1})
	if err != nil || len(sms.GetMessages()) != 1 {
		tb.Errorf("ListOutboxMessages: %d messages, %v", len(sms.GetMessages()), err) // not the code or the number
		return u
	}
	code := smsCode(sms.GetMessages()[0].GetBody())
	reg, err := e.ts.Device.CompletePhoneVerification(ctx, &pushauthv1.CompletePhoneVerificationRequest{
		VerificationId: st.GetVerificationId(),
		Proof:          &pushauthv1.CompletePhoneVerificationRequest_Code{Code: code},
		Device:         p.Registration(tb, st.GetVerificationId()),
	})
	if err != nil {
		tb.Errorf("CompletePhoneVerification(%s): %v", number, err)
		return u
	}
	p.DeviceID, p.Credential = reg.GetDevice().GetId(), reg.GetDeviceCredential()

	conn := dial(tb, e.ts.Addr)
	u.device = pushauthv1.NewDeviceServiceClient(conn)
	u.devCtx = withToken(context.Background(), p.Credential)

	ph, err := u.device.CreatePairingPhrase(mergeMD(ctx, u.devCtx), &pushauthv1.CreatePairingPhraseRequest{})
	if err != nil {
		tb.Errorf("CreatePairingPhrase: %v", err)
		return u
	}
	claim, err := e.rp.ClaimPairingPhrase(withToken(ctx, e.apiKey), &pushauthv1.ClaimPairingPhraseRequest{
		Phrase: ph.GetPhrase(), UserRef: u.ref, AccountLabel: u.ref,
	})
	if err != nil {
		tb.Errorf("ClaimPairingPhrase: %v", err)
		return u
	}
	if err := u.approve(ctx, claim.GetRequestId()); err != nil {
		tb.Errorf("approve pairing: %v", err)
	}
	return u
}

// smsCode finds the 6-digit code in an SMS text.
func smsCode(body string) string {
	for f := range strings.FieldsFuncSeq(body, func(r rune) bool { return r < '0' || r > '9' }) {
		if len(f) == 6 {
			return f
		}
	}
	return ""
}

// approve is the phone's part: fetch the request (which marks it seen) and
// send an approval signed with the device key over the canonical decision
// string.
func (u *user) approve(ctx context.Context, id string) error {
	ctx = mergeMD(ctx, u.devCtx)
	got, err := u.device.GetRequest(ctx, &pushauthv1.DeviceServiceGetRequestRequest{RequestId: id})
	if err != nil {
		return fmt.Errorf("device GetRequest: %w", err)
	}
	resp, err := u.device.RespondToRequest(ctx, u.signed(got.GetRequest()))
	if err != nil {
		return fmt.Errorf("RespondToRequest: %w", err)
	}
	if s := resp.GetRequest().GetStatus(); s != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
		return fmt.Errorf("RespondToRequest: status %s", s)
	}
	return nil
}

// signed builds the phone's signed approval of dr: a real ECDSA P-256
// signature (ASN.1 DER over SHA-256) of approval.SignedFields.Payload.
func (u *user) signed(dr *pushauthv1.DeviceRequest) *pushauthv1.RespondToRequestRequest {
	return u.phone.SignedResponse(nopTB{}, dr, pushauthv1.Decision_DECISION_APPROVE, "", time.Now())
}

// nopTB satisfies testing.TB for servertest.Phone's signing helpers, which
// only call Helper, and Fatal if crypto/rand fails (it never returns an
// error; it aborts the program instead). It lets phones sign off the test
// goroutine without touching testing.B from many goroutines.
type nopTB struct{ testing.TB }

func (nopTB) Helper() {}
func (nopTB) Fatal(args ...any) {
	panic(fmt.Sprint(args...))
}

// phases of one flow, as offsets from its start.
type sample struct {
	created  time.Duration // CreateApproval returned (and WaitRequest opened)
	pushed   time.Duration // the phone got the push from the fake FCM
	fetched  time.Duration // device GetRequest returned
	answered time.Duration // RespondToRequest returned
	total    time.Duration // WaitRequest delivered APPROVED
}

// flowContext is what the login server shows on the phone.
var flowContext = &pushauthv1.RequestContext{
	AppName: "Mijn Portal", IpAddress: "203.0.113.7", Location: "Utrecht, NL", Browser: "Firefox 140 on Linux",
}

// flow runs one complete login approval for u and returns its timing.
func (e *env) flow(ctx context.Context, u *user) (sample, error) {
	var s sample
	ctx, cancel := context.WithTimeout(ctx, flowTimeout)
	defer cancel()
	start := time.Now()

	// Login server: ask, then wait on the request at once.
	c, err := e.rp.CreateApproval(mergeMD(ctx, e.rpCtx), &pushauthv1.CreateApprovalRequest{UserRef: u.ref, Context: flowContext})
	if err != nil {
		return s, fmt.Errorf("CreateApproval: %w", err)
	}
	id := c.GetRequestId()
	stream, err := e.rp.WaitRequest(mergeMD(ctx, e.rpCtx), &pushauthv1.WaitRequestRequest{RequestId: id})
	if err != nil {
		return s, fmt.Errorf("WaitRequest: %w", err)
	}
	s.created = time.Since(start)
	type result struct {
		at  time.Duration
		err error
	}
	done := make(chan result, 1)
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				done <- result{err: fmt.Errorf("WaitRequest ended without a result: %w", err)}
				return
			}
			if r := m.GetResult(); r != nil {
				at := time.Since(start)
				if r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
					err = fmt.Errorf("WaitRequest result %s, want APPROVED", r.GetStatus())
				}
				done <- result{at: at, err: err}
				return
			}
		}
	}()

	// Phone: the push names the request (older pushes, e.g. the pairing
	// request's, are skipped as the app would).
	for pushed := ""; pushed != id; {
		select {
		case pushed = <-u.pushes:
		case <-ctx.Done():
			return s, fmt.Errorf("no push for %s: %w", id, ctx.Err())
		}
	}
	s.pushed = time.Since(start)
	dctx := mergeMD(ctx, u.devCtx)
	got, err := u.device.GetRequest(dctx, &pushauthv1.DeviceServiceGetRequestRequest{RequestId: id})
	if err != nil {
		return s, fmt.Errorf("device GetRequest: %w", err)
	}
	s.fetched = time.Since(start)
	if _, err := u.device.RespondToRequest(dctx, u.signed(got.GetRequest())); err != nil {
		return s, fmt.Errorf("RespondToRequest: %w", err)
	}
	s.answered = time.Since(start)

	select {
	case r := <-done:
		s.total = r.at
		return s, r.err
	case <-ctx.Done():
		return s, fmt.Errorf("no WaitRequest result for %s: %w", id, ctx.Err())
	}
}

// run does n flows with c workers, each on its own user, and returns every
// flow's sample and the wall time of the whole run.
func (e *env) run(ctx context.Context, n, c int) ([]sample, time.Duration, error) {
	if c > len(e.users) {
		return nil, 0, fmt.Errorf("%d workers but only %d users", c, len(e.users))
	}
	per := make([][]sample, c)
	var (
		next     atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for w := range c {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				s, err := e.flow(ctx, e.users[w])
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				per[w] = append(per[w], s)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	return slices.Concat(per...), elapsed, firstErr
}

// percentile returns the p-th percentile (0 < p <= 100, nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// column extracts one phase of the samples.
func column(ss []sample, f func(sample) time.Duration) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

func dial(tb testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		tb.Fatalf("grpc.NewClient: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// mergeMD returns ctx carrying the outgoing metadata of from.
func mergeMD(ctx, from context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(from)
	return metadata.NewOutgoingContext(ctx, md)
}

// procStatus reads a "VmRSS"-style field of /proc/self/status in bytes.
func procStatus(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest) // "123456 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc/self/status %s: %q", field, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		return kb << 10, err
	}
	return 0, errors.New("/proc/self/status has no " + field)
}

// cpuTime is the process's user+system CPU time so far, from /proc/self/stat
// (clock ticks of 1/100 s, the USER_HZ of every Linux this runs on).
func cpuTime() (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc/self/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// rpcStat is what the server's own metrics say about one method.
type rpcStat struct {
	count uint64
	sum   float64 // seconds
}

// rpcStats reads the server's RPC latency histograms (the
// grpc_server_handling_seconds family), by full method name.
func (e *env) rpcStats(tb testing.TB) map[string]rpcStat {
	tb.Helper()
	fams, err := e.ts.Server.Metrics.Registry.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]rpcStat{}
	for _, f := range fams {
		if f.GetName() != "grpc_server_handling_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			service, name := "", ""
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "grpc_service":
					service = l.GetValue()
				case "grpc_method":
					name = l.GetValue()
				}
			}
			method := "/" + service + "/" + name
			out[method] = rpcStat{count: m.GetHistogram().GetSampleCount(), sum: m.GetHistogram().GetSampleSum()}
		}
	}
	return out
}

// logRPCStats logs the mean server-side time of each method between two
// readings of rpcStats: where a flow's time goes inside the server.
func logRPCStats(tb testing.TB, before, after map[string]rpcStat) {
	tb.Helper()
	var lines []string
	for method, a := range after {
		b := before[method]
		n := a.count - b.count
		if n == 0 {
			continue
		}
		lines = append(lines, fmt.Sprintf("%-55s %7d calls  mean %7.3f ms", method, n, (a.sum-b.sum)/float64(n)*1000))
	}
	slices.Sort(lines)
	tb.Logf("server-side RPC time (from the server's own metrics):\n%s", strings.Join(lines, "\n"))
}

// hostCPU is the busy time of the whole machine so far (all processes:
// with PostgreSQL, its backends too), from the first line of /proc/stat.
func hostCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat")
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is already in user
			continue
		}
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond, nil
}

// cpuMeter reads this process's and the machine's CPU time.
type cpuMeter struct{ proc, host time.Duration }

func readCPU(tb testing.TB) cpuMeter {
	tb.Helper()
	p, err := cpuTime()
	if err != nil {
		tb.Fatal(err)
	}
	h, err := hostCPU()
	if err != nil {
		tb.Fatal(err)
	}
	return cpuMeter{proc: p, host: h}
}
