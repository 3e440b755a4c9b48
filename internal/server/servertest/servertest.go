// Package servertest runs a complete pushauth server for tests: a migrated
// database (SQLite or PostgreSQL), an embedded NATS server, the gRPC server
// from server.New on a loopback port, and typed clients connected to it. Time
// comes from a Clock the test moves by hand, so nothing waits on wall time.
//
// A typical test:
//
//	func TestSomething(t *testing.T) {
//		servertest.ForEachBackend(t, func(t *testing.T, url string) {
//			ts := servertest.New(t, url)
//			ctx := ts.AdminCtx(servertest.Context(t))
//			rp := ts.CreateRelyingParty(t, "portal", nil)
//			_, key := ts.CreateAPIKey(t, rp.GetId())
//			resp, err := ts.RP.WhoAmI(ts.WithToken(ctx, key), &pushauthv1.WhoAmIRequest{})
//			...
//		})
//	}
package servertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/registration"
	"github.com/pushauth/pushauth/internal/requestid"
	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/sms"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Epoch is where every test Clock starts: a fixed instant, so times in test
// output are reproducible.
var Epoch = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

// Clock is a manually moved clock, safe for concurrent use. Its zero value
// reads as Epoch.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time. It has the signature of time.Now, so
// c.Now can be passed wherever a func() time.Time is wanted.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		c.now = Epoch
	}
	return c.now
}

// Advance moves the clock forward by d and returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now.IsZero() {
		c.now = Epoch
	}
	c.now = c.now.Add(d)
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Backend is a database a test can run against.
type Backend struct {
	Name string
	// NewURL returns the URL of a new, empty database that lives as long as
	// the test. It skips the test when the backend is not available.
	NewURL func(t testing.TB) string
}

// Backends are the databases pushauth supports. PostgreSQL tests skip unless
// storetest.PostgresDSNEnv (PUSHAUTH_TEST_POSTGRES_DSN) is set.
var Backends = []Backend{
	{Name: "sqlite", NewURL: storetest.NewSQLiteURL},
	{Name: "postgres", NewURL: storetest.NewPostgresURL},
}

// ForEachBackend runs f as a subtest per backend, named after it, with the
// URL of a fresh database.
func ForEachBackend(t *testing.T, f func(t *testing.T, url string)) {
	t.Helper()
	for _, b := range Backends {
		t.Run(b.Name, func(t *testing.T) {
			f(t, b.NewURL(t))
		})
	}
}

// Context returns a context for the calls of one test: cancelled when the
// test ends and bounded by a generous timeout, so a hung call fails the test
// instead of the whole package.
func Context(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestServer is a running pushauth server with clients connected to it.
type TestServer struct {
	// Addr is the host:port the gRPC server listens on.
	Addr string
	// HTTPURL is the base URL of the JSON-over-HTTP API, e.g.
	// "http://127.0.0.1:5678".
	HTTPURL string
	// Conn is a plaintext client connection to Addr, without credentials.
	Conn   *grpc.ClientConn
	Admin  pushauthv1.AdminServiceClient
	RP     pushauthv1.RelyingPartyServiceClient
	Device pushauthv1.DeviceServiceClient
	Health healthpb.HealthClient

	// Store is the server's database, for setting up state and checking it
	// behind the API's back.
	Store store.Store
	// Bus is the server's (embedded) NATS connection.
	Bus    *events.Bus
	Server *server.Server
	// Clock is the server's time; tests move it with Advance.
	Clock *Clock
	// AdminToken is accepted as the operators' bearer token.
	AdminToken string
	// Logs holds everything the server and NATS logged. It is printed when
	// the test fails.
	Logs *LogBuffer
}

// New starts a server on a new migrated database at url (see Backends) and an
// embedded NATS server. opts can change the server.Options before the server
// is built; they start with the database and NATS checks, the admin token, the
// test clock and a logger into Logs. Health is checked once before New
// returns, so a server with passing checks is SERVING. Everything is stopped
// when the test ends.
func New(t testing.TB, url string, opts ...func(*server.Options)) *TestServer {
	t.Helper()
	return newServer(t, url, shared{clock: NewClock(Epoch), token: "adm_" + randomHex(16), keys: testKeys(t)}, opts...)
}

// NewOnNATS is New with the server connected to the NATS server or
// cluster at natsURL (comma-separated) instead of an embedded one.
func NewOnNATS(t testing.TB, url, natsURL string, opts ...func(*server.Options)) *TestServer {
	t.Helper()
	return newServer(t, url, shared{natsURL: natsURL, clock: NewClock(Epoch), token: "adm_" + randomHex(16), keys: testKeys(t)}, opts...)
}

// shared is what the replicas of a cluster have in common.
type shared struct {
	natsURL string // "" embeds a NATS server per replica
	clock   *Clock
	token   string
	keys    *keyring.Keyring
}

// NewCluster starts n replicas on one database (url) and one NATS server
// (in-process, on a loopback port), with one clock, admin token and key, as
// a production deployment would run them: a login server may talk to one
// replica and the phone to another.
func NewCluster(t testing.TB, url string, n int, opts ...func(*server.Options)) []*TestServer {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	sh := shared{natsURL: ns.ClientURL(), clock: NewClock(Epoch), token: "adm_" + randomHex(16), keys: testKeys(t)}
	out := make([]*TestServer, n)
	for i := range out {
		out[i] = newServer(t, url, sh, opts...)
	}
	return out
}

func newServer(t testing.TB, url string, sh shared, opts ...func(*server.Options)) *TestServer {
	t.Helper()
	logs := &LogBuffer{}
	log := slog.New(requestid.Handler(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})

	st := storetest.OpenMigrated(t, url)

	startCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bus, err := events.Start(startCtx, events.Config{URL: sh.natsURL, StoreDir: t.TempDir(), ServerName: "servertest"}, log.With("component", "events"))
	if err != nil {
		t.Fatalf("start embedded NATS: %v", err)
	}
	t.Cleanup(bus.Close)

	clock, token := sh.clock, sh.token
	o := server.Options{
		Logger:  log,
		Now:     clock.Now,
		Version: "test",
		Store:   st,
		Checks: []server.Check{
			{Name: "database", Check: st.Ping},
			{Name: "nats", Check: bus.Ping},
		},
		Auth:   auth.Config{AdminToken: token},
		Keys:   sh.keys,
		Bus:    bus,
		SMS:    sms.NewOutbox(st, clock.Now, log),
		Outbox: true,
		Registration: registration.Config{
			AllowedRegions:  []string{"NL", "BE", "DE"},
			VerificationTTL: 10 * time.Minute,
			LinkBaseURL:     "https://auth.example.com",
			AppName:         "pushauth",
			Limits:          registration.DefaultLimits(),
		},
	}
	for _, opt := range opts {
		opt(&o)
	}
	srv, err := server.New(o)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(srv.Close)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.GRPC.GracefulStop()
		if err := <-served; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("grpc Serve: %v", err)
		}
	})

	hlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	httpServed := make(chan error, 1)
	go func() { httpServed <- srv.ServeHTTP(hlis) }()
	t.Cleanup(func() {
		// Open long polls and streams are cut at once, not waited for.
		cut, cancel := context.WithCancel(context.Background())
		cancel()
		_ = srv.ShutdownHTTP(cut)
		if err := <-httpServed; err != nil {
			t.Errorf("http Serve: %v", err)
		}
	})

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })

	srv.Health.CheckNow(startCtx)
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		// The sweeper's own timer is long: tests move the clock and call
		// Engine.Sweep when they mean it.
		_ = srv.Run(runCtx, time.Hour)
	}()
	t.Cleanup(func() { stopRun(); <-ran })

	return &TestServer{
		Addr:       lis.Addr().String(),
		HTTPURL:    "http://" + hlis.Addr().String(),
		Conn:       conn,
		Admin:      pushauthv1.NewAdminServiceClient(conn),
		RP:         pushauthv1.NewRelyingPartyServiceClient(conn),
		Device:     pushauthv1.NewDeviceServiceClient(conn),
		Health:     healthpb.NewHealthClient(conn),
		Store:      st,
		Bus:        bus,
		Server:     srv,
		Clock:      clock,
		AdminToken: token,
		Logs:       logs,
	}
}

// WithChecks replaces the server's dependency checks (by default the
// database and NATS).
func WithChecks(checks ...server.Check) func(*server.Options) {
	return func(o *server.Options) { o.Checks = checks }
}

// WithAuth changes the server's authentication settings; the admin token
// stays set unless f clears it.
func WithAuth(f func(*auth.Config)) func(*server.Options) {
	return func(o *server.Options) { f(&o.Auth) }
}

// WithToken returns ctx sending "authorization: Bearer <token>" instead of
// any authorization ctx had.
func WithToken(ctx context.Context, token string) context.Context {
	return WithAuthorization(ctx, "Bearer "+token)
}

// WithAuthorization returns ctx sending "authorization: <value>" verbatim
// (for malformed headers) instead of any authorization ctx had.
func WithAuthorization(ctx context.Context, value string) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set("authorization", value)
	return metadata.NewOutgoingContext(ctx, md)
}

// WithoutAuthorization returns ctx sending no authorization header.
func WithoutAuthorization(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Delete("authorization")
	return metadata.NewOutgoingContext(ctx, md)
}

// WithToken returns ctx sending "authorization: Bearer <token>" instead of
// any authorization ctx had.
func (ts *TestServer) WithToken(ctx context.Context, token string) context.Context {
	return WithToken(ctx, token)
}

// AdminCtx returns ctx sending the admin token.
func (ts *TestServer) AdminCtx(ctx context.Context) context.Context {
	return WithToken(ctx, ts.AdminToken)
}

// WithRequestID returns ctx sending "x-request-id: <id>".
func WithRequestID(ctx context.Context, id string) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set("x-request-id", id)
	return metadata.NewOutgoingContext(ctx, md)
}

// CreateRelyingParty creates a relying party through the AdminService, with
// display name "Display <name>" and policy (nil for the defaults). It fails
// the test on error.
func (ts *TestServer) CreateRelyingParty(t testing.TB, name string, policy *pushauthv1.RelyingPartyPolicy) *pushauthv1.RelyingParty {
	t.Helper()
	resp, err := ts.Admin.CreateRelyingParty(ts.AdminCtx(Context(t)), &pushauthv1.CreateRelyingPartyRequest{
		Name: name, DisplayName: "Display " + name, Policy: policy,
	})
	if err != nil {
		t.Fatalf("CreateRelyingParty(%q): %v", name, err)
	}
	return resp.GetRelyingParty()
}

// CreateAPIKey issues an API key for the relying party rp (id or name)
// through the AdminService and returns it with its secret.
func (ts *TestServer) CreateAPIKey(t testing.TB, rp string) (*pushauthv1.ApiKey, string) {
	t.Helper()
	resp, err := ts.Admin.CreateApiKey(ts.AdminCtx(Context(t)), &pushauthv1.CreateApiKeyRequest{RelyingParty: rp, Description: "test key"})
	if err != nil {
		t.Fatalf("CreateApiKey(%q): %v", rp, err)
	}
	return resp.GetApiKey(), resp.GetSecret()
}

// CreateDevice stores a registered device directly, skipping the SMS flow
// (see Register for the real one), and returns it with its credential. Unset
// fields of d get defaults: a new ID, a fresh credential, phone number
// +31612345678, platform ANDROID and the clock's time as creation time.
func (ts *TestServer) CreateDevice(t testing.TB, d store.Device) (store.Device, string) {
	t.Helper()
	cred, err := secret.New(registration.CredentialKind)
	if err != nil {
		t.Fatalf("make device credential: %v", err)
	}
	now := ts.Clock.Now().UTC().Truncate(time.Microsecond)
	if d.ID == "" {
		d.ID = secret.NewID("dev", now.UnixMilli())
	}
	d.CredentialPrefix, d.CredentialHash = cred.Prefix, cred.Hash
	if d.PhoneNumber == "" {
		d.PhoneNumber = "+31612345678"
	}
	if d.Platform == "" {
		d.Platform = "ANDROID"
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = now
	}
	if err := ts.Store.CreateDevice(Context(t), d); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	return d, cred.Token
}

// Ops sends a GET for path to the server's ops HTTP handler (/metrics,
// /healthz, /readyz) and returns the status code and body.
func (ts *TestServer) Ops(t testing.TB, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	ts.Server.OpsHandler().ServeHTTP(rec, httptest.NewRequestWithContext(Context(t), http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

// LogBuffer collects log output; it is safe for concurrent use.
type LogBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // closed and replaced on every Write
}

var _ io.Writer = (*LogBuffer)(nil)

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written != nil {
		close(l.written)
		l.written = nil
	}
	return l.buf.Write(p)
}

// Wait blocks until the log contains s, or ctx ends (false): tests wait on
// what the server says it did instead of sleeping.
func (l *LogBuffer) Wait(ctx context.Context, s string) bool {
	for {
		l.mu.Lock()
		if strings.Contains(l.buf.String(), s) {
			l.mu.Unlock()
			return true
		}
		if l.written == nil {
			l.written = make(chan struct{})
		}
		ch := l.written
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Contains reports whether the log so far contains s.
func (l *LogBuffer) Contains(s string) bool { return strings.Contains(l.String(), s) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails: crypto/rand aborts the program instead
	return hex.EncodeToString(b)
}

// testKeys is a fresh random keyring.
func testKeys(t testing.TB) *keyring.Keyring {
	t.Helper()
	master := make([]byte, keyring.MasterSize)
	_, _ = rand.Read(master)
	k, err := keyring.New(master)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
