package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/internal/store/storetest"
	"github.com/pushauth/pushauth/migrations"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// syncBuffer is a bytes.Buffer safe for the server's log writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type running struct {
	addr   string
	stop   context.CancelFunc
	exit   chan int
	stderr *syncBuffer
	once   sync.Once
}

// start runs pushauthd in-process on free ports and waits until it listens.
func start(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stop: cancel, exit: make(chan int, 1), stderr: &syncBuffer{}}
	addrs := make(chan string, 1)
	getenv, environ := env(nil)
	args = append([]string{"--grpc-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--health-interval", "100ms"}, args...)
	go func() {
		r.exit <- run(ctx, args, getenv, environ, &bytes.Buffer{}, r.stderr, func(g, _ string) { addrs <- g })
	}()
	select {
	case r.addr = <-addrs:
	case code := <-r.exit:
		t.Fatalf("pushauthd exited with %d before serving:\n%s", code, r.stderr)
	case <-time.After(time.Minute):
		t.Fatalf("pushauthd did not start:\n%s", r.stderr)
	}
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

func (r *running) shutdown(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.stop()
		select {
		case code := <-r.exit:
			if code != 0 {
				t.Errorf("pushauthd exited with %d:\n%s", code, r.stderr)
			}
		case <-time.After(time.Minute):
			t.Fatalf("pushauthd did not stop:\n%s", r.stderr)
		}
	})
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitServing blocks on the health Watch stream until SERVING.
func waitServing(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{Service: "pushauth.v1.AdminService"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("health watch: %v", err)
		}
		if resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
	}
}

func TestServeDefaultsEndToEnd(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			args := []string{"--data-dir", dataDir}
			if backend == "postgres" {
				args = append(args, "--database-url", storetest.NewPostgresURL(t), "--secret-key", testKey(9))
			}
			r := start(t, args...)
			conn := dial(t, r.addr)
			waitServing(t, conn)

			tokenFile := filepath.Join(dataDir, "admin-token")
			fi, err := os.Stat(tokenFile)
			if err != nil {
				t.Fatalf("admin token not generated: %v", err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("admin token file mode %v, want 0600", fi.Mode().Perm())
			}
			tok, _ := os.ReadFile(tokenFile)
			if strings.Contains(r.stderr.String(), strings.TrimSpace(string(tok))) {
				t.Error("the admin token was logged")
			}
			ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+strings.TrimSpace(string(tok)))
			admin := pushauthv1.NewAdminServiceClient(conn)
			if _, err := admin.CreateRelyingParty(ctx, &pushauthv1.CreateRelyingPartyRequest{Name: "mijn-portal", DisplayName: "Mijn Portal"}); err != nil {
				t.Fatal(err)
			}
			if _, err := admin.CreateRelyingParty(ctx, &pushauthv1.CreateRelyingPartyRequest{Name: "mijn-portal", DisplayName: "Again"}); status.Code(err) != codes.AlreadyExists {
				t.Fatalf("duplicate name: %v", err)
			}
			key, err := admin.CreateApiKey(ctx, &pushauthv1.CreateApiKeyRequest{RelyingParty: "mijn-portal"})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(r.stderr.String(), key.GetSecret()) {
				t.Error("the API key secret was logged")
			}

			// A restart keeps the token and the data.
			r.shutdown(t)
			if !strings.Contains(r.stderr.String(), `"msg":"stopped"`) {
				t.Errorf("no orderly stop in the log:\n%s", r.stderr)
			}
			r2 := start(t, args...)
			conn2 := dial(t, r2.addr)
			waitServing(t, conn2)
			got, err := pushauthv1.NewAdminServiceClient(conn2).GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: "mijn-portal"})
			if err != nil {
				t.Fatalf("after restart: %v", err)
			}
			if got.GetRelyingParty().GetDisplayName() != "Mijn Portal" {
				t.Fatalf("after restart: %v", got)
			}
		})
	}
}

func TestRunFailsClearly(t *testing.T) {
	getenv, environ := env(nil)
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"bad config", []string{"--log-format", "xml", "--grpc-addr", "nope"}, 2,
			[]string{"pushauthd: config: grpc_addr:", "pushauthd: config: log_format:"}},
		{"unreachable database", []string{"--data-dir", t.TempDir(), "--database-url", "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2", "--secret-key", testKey(9), "--grpc-addr", "127.0.0.1:0", "--ops-addr", "", "--http-addr", ""}, 1,
			[]string{"pushauthd: database:"}},
		{"migrate usage", []string{"migrate", "sideways"}, 2, []string{"usage: pushauthd migrate"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tt.args, getenv, environ, &bytes.Buffer{}, &stderr, nil)
			if code != tt.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tt.code, stderr.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
				}
			}
			if strings.Contains(stderr.String(), "hunter2") {
				t.Error("password leaked")
			}
		})
	}
}

func TestMigrateSubcommand(t *testing.T) {
	getenv, environ := env(nil)
	dir := t.TempDir()
	// The newest migration embedded, so adding one does not break this test.
	entries, err := fs.ReadDir(migrations.SQLite, "sqlite")
	if err != nil {
		t.Fatal(err)
	}
	latest := 0
	for _, e := range entries {
		n, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			t.Fatalf("migration %s: %v", e.Name(), err)
		}
		latest = max(latest, n)
	}
	v := fmt.Sprintf("schema version %d", latest)
	for _, step := range []struct {
		verb, want string
	}{{"up", v + " (sqlite)"}, {"version", v}, {"down", "schema version 0"}, {"up", v}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"migrate", step.verb, "--data-dir", dir}, getenv, environ, &stdout, &stderr, nil); code != 0 {
			t.Fatalf("migrate %s: exit %d: %s", step.verb, code, stderr.String())
		}
		if !strings.Contains(stdout.String(), step.want) {
			t.Fatalf("migrate %s printed %q, want %q", step.verb, stdout.String(), step.want)
		}
	}
}

func TestServeSendsSMSThroughConfiguredProvider(t *testing.T) {
	got := make(chan url.Values, 1)
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/2010-04-01/Accounts/AC123/Messages.json" {
			http.NotFound(w, r)
			return
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		got <- r.PostForm
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"sid":"SM1"}`))
	}))
	defer fake.Close()
	dataDir := t.TempDir()
	r := start(t, "--data-dir", dataDir, "--sms-provider", "twilio", "--twilio-account-sid", "AC123",
		"--twilio-auth-token", "tok-secret", "--twilio-from", "+3197000000001", "--twilio-base-url", fake.URL)
	conn := dial(t, r.addr)
	waitServing(t, conn)
	ctx := context.Background()
	if _, err := pushauthv1.NewDeviceServiceClient(conn).StartPhoneVerification(ctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: "+31 6 12345678", Locale: "nl"}); err != nil {
		t.Fatal(err)
	}
	form := <-got
	if form.Get("To") != "+31612345678" || form.Get("From") != "+3197000000001" || !strings.Contains(form.Get("Body"), "verificatiecode") {
		t.Fatalf("Twilio got %v", form)
	}
	tok, _ := os.ReadFile(filepath.Join(dataDir, "admin-token"))
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(tok)))
	_, err := pushauthv1.NewAdminServiceClient(conn).ListOutboxMessages(actx, &pushauthv1.ListOutboxMessagesRequest{})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("outbox with a real provider: %v", err)
	}
	if strings.Contains(r.stderr.String(), "tok-secret") || strings.Contains(r.stderr.String(), "612345678") {
		t.Error("a secret or full number was logged")
	}
}
