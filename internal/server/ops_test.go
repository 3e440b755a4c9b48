package server_test

// Tests of the operational surface: health, readiness, metrics, request ids
// and panics.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

var allHealthServices = []string{"", "pushauth.v1.AdminService", "pushauth.v1.RelyingPartyService", "pushauth.v1.DeviceService"}

func wantHealth(t *testing.T, h healthpb.HealthClient, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	for _, svc := range allHealthServices {
		resp, err := h.Check(servertest.Context(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			t.Fatalf("health Check(%q): %v", svc, err)
		}
		if resp.GetStatus() != want {
			t.Errorf("health Check(%q) = %s, want %s", svc, resp.GetStatus(), want)
		}
	}
}

func wantOps(t *testing.T, ts *servertest.TestServer, path string, code int) string {
	t.Helper()
	got, body := ts.Ops(t, path)
	if got != code {
		t.Errorf("GET %s = %d %q, want %d", path, got, body, code)
	}
	return body
}

// flakyCheck is a dependency check the test turns on and off.
type flakyCheck struct{ up atomic.Bool }

func (f *flakyCheck) check(context.Context) error {
	if f.up.Load() {
		return nil
	}
	return errors.New("flaky dependency is down")
}

func TestHealthFollowsChecks(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		flaky := &flakyCheck{}
		ts := servertest.New(t, url, func(o *server.Options) {
			o.Checks = append(o.Checks, server.Check{Name: "flaky", Check: flaky.check})
		})
		ctx := servertest.Context(t)

		// servertest.New ran the checks once; "flaky" failed.
		wantHealth(t, ts.Health, healthpb.HealthCheckResponse_NOT_SERVING)
		wantOps(t, ts, "/readyz", http.StatusServiceUnavailable)
		wantOps(t, ts, "/healthz", http.StatusOK)
		if ts.Server.Health.Ready() {
			t.Error("Ready() with a failing check")
		}
		if !ts.Logs.Contains("dependency not ready") || !ts.Logs.Contains("dependency=flaky") {
			t.Errorf("log does not name the failing dependency:\n%s", ts.Logs)
		}

		watch, err := ts.Health.Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
		recv := func(want healthpb.HealthCheckResponse_ServingStatus) {
			t.Helper()
			resp, err := watch.Recv()
			if err != nil {
				t.Fatalf("Watch.Recv: %v", err)
			}
			if resp.GetStatus() != want {
				t.Fatalf("watched status %s, want %s", resp.GetStatus(), want)
			}
		}
		recv(healthpb.HealthCheckResponse_NOT_SERVING)

		flaky.up.Store(true)
		ts.Server.Health.CheckNow(ctx)
		recv(healthpb.HealthCheckResponse_SERVING)
		wantHealth(t, ts.Health, healthpb.HealthCheckResponse_SERVING)
		wantOps(t, ts, "/readyz", http.StatusOK)

		flaky.up.Store(false)
		ts.Server.Health.CheckNow(ctx)
		recv(healthpb.HealthCheckResponse_NOT_SERVING)
		wantHealth(t, ts.Health, healthpb.HealthCheckResponse_NOT_SERVING)
		wantOps(t, ts, "/readyz", http.StatusServiceUnavailable)

		// The real dependencies are checked too.
		flaky.up.Store(true)
		ts.Bus.Close()
		ts.Server.Health.CheckNow(ctx)
		wantHealth(t, ts.Health, healthpb.HealthCheckResponse_NOT_SERVING)
		if !ts.Logs.Contains("dependency=nats") {
			t.Errorf("log does not name nats as not ready:\n%s", ts.Logs)
		}
	})
}

func TestHealthShutdown(t *testing.T) {
	ts := servertest.New(t, servertest.Backends[0].NewURL(t))
	ctx := servertest.Context(t)
	wantHealth(t, ts.Health, healthpb.HealthCheckResponse_SERVING)
	ts.Server.Health.Shutdown()
	wantHealth(t, ts.Health, healthpb.HealthCheckResponse_NOT_SERVING)
	wantOps(t, ts, "/readyz", http.StatusServiceUnavailable)
	// A check still running when shutdown starts must not make the server
	// look ready again.
	ts.Server.Health.CheckNow(ctx)
	wantHealth(t, ts.Health, healthpb.HealthCheckResponse_NOT_SERVING)
	wantOps(t, ts, "/readyz", http.StatusServiceUnavailable)
}

// serveBare serves srv on a loopback port without running any health check
// and returns a connection to it.
func serveBare(t *testing.T, srv *server.Server) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.GRPC.Serve(lis) }()
	t.Cleanup(func() { srv.GRPC.GracefulStop(); <-done })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestNotServingBeforeFirstCheck(t *testing.T) {
	srv, err := server.New(server.Options{Bus: testBus(t), Checks: []server.Check{{Name: "ok", Check: func(context.Context) error { return nil }}}})
	if err != nil {
		t.Fatal(err)
	}
	conn := serveBare(t, srv)
	h := healthpb.NewHealthClient(conn)
	wantHealth(t, h, healthpb.HealthCheckResponse_NOT_SERVING)
	if code, _ := opsGet(t, srv.OpsHandler(), "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before any check = %d, want 503", code)
	}
	srv.Health.CheckNow(servertest.Context(t))
	wantHealth(t, h, healthpb.HealthCheckResponse_SERVING)
	if code, _ := opsGet(t, srv.OpsHandler(), "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after a passing check = %d, want 200", code)
	}
}

// opsGet sends a GET for path to an ops handler and returns the status and body.
func opsGet(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(servertest.Context(t), http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// testBus is an embedded NATS for servers built without servertest.
func testBus(t *testing.T) *events.Bus {
	t.Helper()
	bus, err := events.Start(context.Background(), events.Config{StoreDir: t.TempDir()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	return bus
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func TestMetrics(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := servertest.Context(t)
		for range 2 {
			if _, err := ts.Admin.ListRelyingParties(ts.AdminCtx(ctx), &pushauthv1.ListRelyingPartiesRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ts.Admin.ListRelyingParties(ctx, &pushauthv1.ListRelyingPartiesRequest{}); codeOf(err) != codes.Unauthenticated {
			t.Fatalf("without credentials: %v", err)
		}
		if _, err := ts.Admin.GetRelyingParty(ts.AdminCtx(ctx), &pushauthv1.GetRelyingPartyRequest{RelyingParty: "nobody"}); codeOf(err) != codes.NotFound {
			t.Fatalf("unknown relying party: %v", err)
		}

		body := wantOps(t, ts, "/metrics", http.StatusOK)
		for _, want := range []string{
			`grpc_server_handled_total{grpc_code="OK",grpc_method="ListRelyingParties",grpc_service="pushauth.v1.AdminService",grpc_type="unary"} 2`,
			`grpc_server_handled_total{grpc_code="Unauthenticated",grpc_method="ListRelyingParties",grpc_service="pushauth.v1.AdminService",grpc_type="unary"} 1`,
			`grpc_server_handled_total{grpc_code="NotFound",grpc_method="GetRelyingParty",grpc_service="pushauth.v1.AdminService",grpc_type="unary"} 1`,
			`grpc_server_handling_seconds_count{grpc_method="ListRelyingParties",grpc_service="pushauth.v1.AdminService",grpc_type="unary"} 3`,
			fmt.Sprintf(`pushauth_build_info{go_version=%q,version="test"} 1`, runtime.Version()),
			"go_goroutines ",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

func TestRequestIDHeader(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		base := servertest.Context(t)
		tests := []struct {
			name  string
			sent  string // "" sends none
			adopt bool
		}{
			{"none sent", "", false},
			{"well-formed", "client-req_1.A", true},
			{"64 characters", strings.Repeat("a", 64), true},
			{"65 characters", strings.Repeat("a", 65), false},
			{"space", "has space", false},
			{"slash", "a/b", false},
			{"semicolon", "a;b", false},
			{"markup", "<script>", false},
			{"quote", `a"b`, false},
		}
		calls := []struct {
			name string
			call func(ctx context.Context, opts ...grpc.CallOption) error
		}{
			{"success", func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := ts.Admin.ListRelyingParties(ts.AdminCtx(ctx), &pushauthv1.ListRelyingPartiesRequest{}, opts...)
				return err
			}},
			{"auth failure", func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := ts.Admin.ListRelyingParties(ctx, &pushauthv1.ListRelyingPartiesRequest{}, opts...)
				if codeOf(err) != codes.Unauthenticated {
					return fmt.Errorf("got %v, want Unauthenticated", err)
				}
				return nil
			}},
		}
		for _, tt := range tests {
			for _, c := range calls {
				t.Run(tt.name+"/"+c.name, func(t *testing.T) {
					ctx := base
					if tt.sent != "" {
						ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", tt.sent)
					}
					var header, trailer metadata.MD
					err := c.call(ctx, grpc.Header(&header), grpc.Trailer(&trailer))
					if err != nil {
						t.Fatal(err)
					}
					got := requestIDOf(header, trailer)
					switch {
					case tt.adopt && got != tt.sent:
						t.Errorf("x-request-id = %q, want the client's %q", got, tt.sent)
					case !tt.adopt && !isGeneratedRequestID(got):
						t.Errorf("x-request-id = %q, want a fresh id instead of %q", got, tt.sent)
					}
				})
			}
		}
	})
}

// panicService is a service whose only method panics, registered next to
// the real ones to see the real interceptor chain handle it.
var panicService = grpc.ServiceDesc{
	ServiceName: "pushauth.test.Panic",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Boom",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			handler := func(context.Context, any) (any, error) {
				panic("boom: db password is hunter2")
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/pushauth.test.Panic/Boom"}, handler)
		},
	}},
}

func TestPanicBecomesInternal(t *testing.T) {
	logs := &servertest.LogBuffer{}
	srv, err := server.New(server.Options{Bus: testBus(t), Logger: newTextLogger(logs), Version: "test", Auth: auth.Config{PublicMethods: []string{"/pushauth.test.Panic/Boom"}}})
	if err != nil {
		t.Fatal(err)
	}
	srv.GRPC.RegisterService(&panicService, struct{}{})
	conn := serveBare(t, srv)
	ctx := metadata.AppendToOutgoingContext(servertest.Context(t), "x-request-id", "panic-req-1")

	for range 2 { // the server survives the first
		var trailer, header metadata.MD
		err := conn.Invoke(ctx, "/pushauth.test.Panic/Boom", &emptypb.Empty{}, &emptypb.Empty{}, grpc.Header(&header), grpc.Trailer(&trailer))
		st := wantStatus(t, err, codes.Internal, "internal error")
		if strings.Contains(st.Message(), "hunter2") || strings.Contains(st.Message(), "boom") || strings.Contains(st.Message(), "goroutine") {
			t.Errorf("message %q leaks the panic", st.Message())
		}
		if id := requestIDOf(header, trailer); id != "panic-req-1" {
			t.Errorf("request id %q, want panic-req-1", id)
		}
	}
	log := logs.String()
	for _, want := range []string{"hunter2", "goroutine", "request_id=panic-req-1", "code=Internal"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	want := `grpc_server_handled_total{grpc_code="Internal",grpc_method="Boom",grpc_service="pushauth.test.Panic",grpc_type="unary"} 2`
	if code, body := opsGet(t, srv.OpsHandler(), "/metrics"); code != http.StatusOK || !strings.Contains(body, want) {
		t.Errorf("/metrics = %d without %s", code, want)
	}
}
