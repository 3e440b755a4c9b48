package server_test

// Tests of the transport limits on the real gRPC server: per-key and
// per-device stream caps, the connection cap and the per-key rate.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// limited is a server with a paired phone and an API key of its relying
// party; limits changes the server's limits.
type limited struct {
	ts    *servertest.TestServer
	rpID  string
	key   string
	phone *servertest.Phone
}

const limitedUser = "jan@example.nl"

func newLimited(t *testing.T, url string, limits func(*server.Limits)) *limited {
	t.Helper()
	ts := servertest.New(t, url, func(o *server.Options) { limits(&o.Limits) })
	rp := ts.CreateRelyingParty(t, "portal", nil)
	_, key := ts.CreateAPIKey(t, rp.GetId())
	p := servertest.NewPhone(t, false)
	ts.Register(t, p, "+31612345678")
	if r := ts.Pair(t, p, key, limitedUser, "Jan"); r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
		t.Fatalf("pairing: %v", r)
	}
	return &limited{ts: ts, rpID: rp.GetId(), key: key, phone: p}
}

func (l *limited) login(t *testing.T) string {
	t.Helper()
	resp, err := l.ts.RP.CreateApproval(l.ts.WithToken(servertest.Context(t), l.key), &pushauthv1.CreateApprovalRequest{UserRef: limitedUser})
	if err != nil {
		t.Fatalf("CreateApproval: %v", err)
	}
	return resp.GetRequestId()
}

// wantRetryInfo fails the test unless st carries a RetryInfo, and returns
// its delay.
func wantRetryInfo(t *testing.T, st *status.Status) time.Duration {
	t.Helper()
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	t.Fatalf("status %s %q has no RetryInfo", st.Code(), st.Message())
	return 0
}

// wantMetric fails the test unless /metrics has the line want.
func wantMetric(t *testing.T, ts *servertest.TestServer, want string) {
	t.Helper()
	if body := wantOps(t, ts, "/metrics", http.StatusOK); !strings.Contains(body, want+"\n") {
		t.Errorf("/metrics lacks %q", want)
	}
}

// openWait opens a WaitRequest stream and waits for its first event, which
// proves the server admitted it.
func openWait(t *testing.T, ctx context.Context, c pushauthv1.RelyingPartyServiceClient, id string) pushauthv1.RelyingPartyService_WaitRequestClient {
	t.Helper()
	s, err := c.WaitRequest(ctx, &pushauthv1.WaitRequestRequest{RequestId: id})
	if err != nil {
		t.Fatalf("WaitRequest: %v", err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("WaitRequest first event: %v", err)
	}
	return s
}

// drain reads s to its end and fails unless it ends cleanly.
func drain[T any](t *testing.T, recv func() (T, error)) {
	t.Helper()
	for {
		if _, err := recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("stream ended with %v", err)
			}
			return
		}
	}
}

func TestWaitStreamsPerAPIKey(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		l := newLimited(t, url, func(lim *server.Limits) { lim.WaitStreamsPerAPIKey = 2; lim.APIKeyRate = -1 })
		ctx := servertest.Context(t)
		kctx := l.ts.WithToken(ctx, l.key)
		id := l.login(t)

		// Two streams on one connection are admitted; the third is refused.
		w1 := openWait(t, kctx, l.ts.RP, id)
		w2 := openWait(t, kctx, l.ts.RP, id)
		s3, err := l.ts.RP.WaitRequest(kctx, &pushauthv1.WaitRequestRequest{RequestId: id})
		if err == nil {
			_, err = s3.Recv()
		}
		st := wantStatus(t, err, codes.ResourceExhausted, "WaitRequest streams", "at most 2")
		wantRetryInfo(t, st)

		// The server keeps serving: other calls with the key, and streams of
		// another key of the same relying party.
		if _, err := l.ts.RP.GetRequest(kctx, &pushauthv1.GetRequestRequest{RequestId: id}); err != nil {
			t.Fatalf("GetRequest beside the full streams: %v", err)
		}
		_, key2 := l.ts.CreateAPIKey(t, l.rpID)
		other := openWait(t, l.ts.WithToken(ctx, key2), l.ts.RP, id)

		// When the request ends, its streams end and free their slots.
		if _, err := l.ts.RP.CancelRequest(kctx, &pushauthv1.CancelRequestRequest{RequestId: id}); err != nil {
			t.Fatalf("CancelRequest: %v", err)
		}
		drain(t, w1.Recv)
		drain(t, w2.Recv)
		drain(t, other.Recv)
		id2 := l.login(t)
		openWait(t, kctx, l.ts.RP, id2)
		openWait(t, kctx, l.ts.RP, id2)

		wantMetric(t, l.ts, `pushauth_limit_refused_total{limit="wait_streams"} 1`)
		wantMetric(t, l.ts, `grpc_server_handled_total{grpc_code="ResourceExhausted",grpc_method="WaitRequest",grpc_service="pushauth.v1.RelyingPartyService",grpc_type="server_stream"} 1`)
	})
}

func TestWatchStreamsPerDevice(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		l := newLimited(t, url, func(lim *server.Limits) { lim.WatchStreamsPerDevice = 2 })
		ctx := servertest.Context(t)
		dctx := l.ts.WithToken(ctx, l.phone.Credential)
		l.login(t) // a pending request: each watch sends it first

		openWatch := func(ctx context.Context) pushauthv1.DeviceService_WatchRequestsClient {
			t.Helper()
			w, err := l.ts.Device.WatchRequests(ctx, &pushauthv1.WatchRequestsRequest{})
			if err != nil {
				t.Fatalf("WatchRequests: %v", err)
			}
			if _, err := w.Recv(); err != nil {
				t.Fatalf("WatchRequests first event: %v", err)
			}
			return w
		}
		openWatch(dctx)
		openWatch(dctx)
		w3, err := l.ts.Device.WatchRequests(dctx, &pushauthv1.WatchRequestsRequest{})
		if err == nil {
			_, err = w3.Recv()
		}
		st := wantStatus(t, err, codes.ResourceExhausted, "WatchRequests streams", "at most 2")
		wantRetryInfo(t, st)

		// The device's other calls, and other devices' watches, go on.
		if _, err := l.ts.Device.ListPendingRequests(dctx, &pushauthv1.ListPendingRequestsRequest{}); err != nil {
			t.Fatalf("ListPendingRequests beside the full watches: %v", err)
		}
		p2 := servertest.NewPhone(t, true)
		l.ts.Register(t, p2, "+31612345679")
		l.ts.Pair(t, p2, l.key, "piet@example.nl", "Piet")
		if _, err := l.ts.RP.CreateApproval(l.ts.WithToken(ctx, l.key), &pushauthv1.CreateApprovalRequest{UserRef: "piet@example.nl"}); err != nil {
			t.Fatal(err)
		}
		openWatch(l.ts.WithToken(ctx, p2.Credential))

		wantMetric(t, l.ts, `pushauth_limit_refused_total{limit="watch_streams"} 1`)
		wantMetric(t, l.ts, `grpc_server_handled_total{grpc_code="ResourceExhausted",grpc_method="WatchRequests",grpc_service="pushauth.v1.DeviceService",grpc_type="server_stream"} 1`)
	})
}

func TestAPIKeyRate(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url, func(o *server.Options) { o.Limits.APIKeyRate = 2; o.Limits.APIKeyBurst = 3 })
		ctx := servertest.Context(t)
		rp := ts.CreateRelyingParty(t, "portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		_, key2 := ts.CreateAPIKey(t, rp.GetId())
		kctx := ts.WithToken(ctx, key)
		whoami := func(ctx context.Context) error {
			_, err := ts.RP.WhoAmI(ctx, &pushauthv1.WhoAmIRequest{})
			return err
		}

		// The burst passes; the next call is refused with when to retry.
		for i := range 3 {
			if err := whoami(kctx); err != nil {
				t.Fatalf("call %d of the burst: %v", i+1, err)
			}
		}
		st := wantStatus(t, whoami(kctx), codes.ResourceExhausted, "too many calls with this API key", "2 per second")
		if d := wantRetryInfo(t, st); d != 500*time.Millisecond {
			t.Errorf("RetryInfo delay %v, want 500ms (one token at 2/s)", d)
		}

		// Other keys and other callers are not held back.
		if err := whoami(ts.WithToken(ctx, key2)); err != nil {
			t.Fatalf("another key: %v", err)
		}
		if _, err := ts.Admin.ListRelyingParties(ts.AdminCtx(ctx), &pushauthv1.ListRelyingPartiesRequest{}); err != nil {
			t.Fatalf("admin call: %v", err)
		}

		// Streams count too.
		ws, err := ts.RP.WaitRequest(kctx, &pushauthv1.WaitRequestRequest{RequestId: "req_none"})
		if err == nil {
			_, err = ws.Recv()
		}
		wantStatus(t, err, codes.ResourceExhausted, "too many calls")

		// After the delay, one token is back, and only one.
		ts.Clock.Advance(500 * time.Millisecond)
		if err := whoami(kctx); err != nil {
			t.Fatalf("after the retry delay: %v", err)
		}
		wantStatus(t, whoami(kctx), codes.ResourceExhausted, "too many calls")
		wantMetric(t, ts, `pushauth_limit_refused_total{limit="api_key_rate"} 3`)
	})
}

// dialRaw opens a TCP connection to addr and reports whether the server
// serves it: gRPC's server speaks first (its HTTP/2 SETTINGS frame), while a
// connection over the cap is closed without a byte.
func dialRaw(t *testing.T, addr string) (net.Conn, bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if dl, ok := servertest.Context(t).Deadline(); ok {
		_ = c.SetReadDeadline(dl)
	}
	buf := make([]byte, 9) // an HTTP/2 frame header
	_, err = io.ReadFull(c, buf)
	if err == nil {
		return c, true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server neither served nor closed the connection: %v", err)
	}
	return c, false
}

func TestMaxConnections(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url, func(o *server.Options) { o.Limits.MaxConnections = 3 })
		ctx := servertest.Context(t)
		// ts.Conn is the first connection once used.
		if _, err := ts.Health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		conn2, err := grpc.NewClient(ts.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn2.Close()
		if _, err := healthpb.NewHealthClient(conn2).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		third, ok := dialRaw(t, ts.Addr)
		if !ok {
			t.Fatal("the third connection was refused; the cap is 3")
		}
		if _, ok := dialRaw(t, ts.Addr); ok {
			t.Fatal("a fourth connection was served; the cap is 3")
		}
		wantMetric(t, ts, `pushauth_limit_refused_total{limit="connections"} 1`)
		wantMetric(t, ts, `pushauth_grpc_connections_open 3`)

		// The connections within the cap go on being served.
		if _, err := ts.Health.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("first connection after a refusal: %v", err)
		}

		// A closed connection frees its place. The server notices the close
		// on its own time, so dial until it has.
		_ = third.Close()
		for {
			if _, ok := dialRaw(t, ts.Addr); ok {
				break
			}
			if ctx.Err() != nil {
				t.Fatal("no connection admitted after one closed")
			}
		}
		if !ts.Logs.Contains("max_connections reached") {
			t.Error("the refusal was not logged")
		}
	})
}
