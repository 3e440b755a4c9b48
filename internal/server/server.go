// Package server assembles pushauth's gRPC server: interceptors (request id,
// logs, metrics, errors, panics, auth, validation), the three services,
// health, reflection, and the ops HTTP handler. It is the composition root
// shared by cmd/pushauthd and the tests.
package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"buf.build/go/protovalidate"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/backup"
	"github.com/pushauth/pushauth/internal/clientaddr"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/feed"
	"github.com/pushauth/pushauth/internal/guess"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/pairing"
	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/registration"
	"github.com/pushauth/pushauth/internal/relyingparty"
	"github.com/pushauth/pushauth/internal/requestid"
	"github.com/pushauth/pushauth/internal/retention"
	"github.com/pushauth/pushauth/internal/sms"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/totp"
	"github.com/pushauth/pushauth/internal/webhook"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/admin"
	"github.com/pushauth/pushauth/services/device"
	rpservice "github.com/pushauth/pushauth/services/relyingparty"
)

// Options is what the server is built from.
type Options struct {
	Logger  *slog.Logger
	Now     func() time.Time // nil means time.Now
	Version string
	Store   store.Store
	// Checks must all pass before health says SERVING (database, NATS).
	Checks []Check
	Auth   auth.Config
	// TLS, when set, serves gRPC over TLS; nil serves plaintext.
	TLS *tls.Config
	// Keys derives the keyed-hash and sealing keys.
	Keys *keyring.Keyring
	// SMS sends verification messages; Outbox is set when it is the
	// development outbox, so operators can read it.
	SMS          sms.Sender
	Outbox       bool
	Registration registration.Config
	// Bus carries news between replicas; it must be set.
	Bus *events.Bus
	// TracerProvider traces calls, the push path (outbox, queue, FCM and
	// APNs sends), SMS sends and news over NATS; nil traces nothing and
	// costs nothing (see internal/tracing).
	TracerProvider trace.TracerProvider
	// PushSender sends pushes (FCM, APNs); nil logs instead of sending.
	PushSender push.Sender
	// PushQueue names the JetStream work queue; zero fields take defaults.
	PushQueue push.QueueConfig
	// Relay tunes the push outbox relay; zero fields take defaults.
	Relay      approval.RelayConfig
	Approval   approval.Config
	PairingTTL time.Duration  // zero means 10 minutes
	Pairing    pairing.Limits // zero means pairing.DefaultLimits()
	Recheck    time.Duration  // how often the replica rechecks what its waiters wait for (one batched read); zero means 2s
	Backup     backup.Config  // zero means backup.DefaultConfig()
	TOTP       totp.Config    // zero means totp.DefaultConfig()
	// SecretChecks is told of every secret compared, besides the metrics;
	// may be nil (tests count guesses with it).
	SecretChecks guess.Observer
	// Retention says how long old data is kept; zero fields take
	// retention.DefaultConfig().
	Retention retention.Config
	// Limits bound connections, streams, message sizes and call rates;
	// zero fields take DefaultLimits().
	Limits Limits
	// AuthCacheTTL is how long a replica trusts a credential it looked up
	// (zero means 2s, negative disables the cache); revocation notices drop
	// entries at once.
	AuthCacheTTL time.Duration
	// TrustedProxies are the CIDRs of proxies whose x-forwarded-for header
	// names the client address; empty trusts none.
	TrustedProxies []string
	// EventsRetention is how long the security event stream keeps events
	// (events_retention); zero means feed.DefaultRetention.
	EventsRetention time.Duration
	// EventRelay tunes the security event relay; zero fields take defaults.
	EventRelay feed.RelayConfig
	// Webhooks tunes webhook deliveries; zero fields take defaults.
	Webhooks webhook.Config
}

// Server is an assembled, not yet listening, pushauth server.
type Server struct {
	GRPC    *grpc.Server
	Health  *Health
	Metrics *Metrics
	// Engine runs requests; Run runs its background work.
	Engine *approval.Engine
	// Revocations ends this replica's streams of revoked credentials; a
	// credential cache can hook into it (OnRevoke).
	Revocations *events.Revocations
	hub         *events.Hub
	guard       *auth.Guard
	recheck     time.Duration // how often the hub rechecks waited requests

	// Retention deletes old data; Run starts it.
	Retention *retention.Sweeper
	limits    Limits
	lmet      *limitMetrics
	drain     *drain
	log       *slog.Logger
	now       func() time.Time

	// gateway serves JSON over HTTP (see http.go).
	gateway gateway

	// EventRelay moves security events from the outbox to their stream
	// and the webhook queue; Webhooks delivers them. Run runs both.
	EventRelay *feed.Relay
	Webhooks   *webhook.Service
}

// Serve accepts connections on lis, up to Limits.MaxConnections open at
// once, and serves gRPC on them until GRPC stops.
func (s *Server) Serve(lis net.Listener) error {
	if s.limits.MaxConnections > 0 {
		lis = &capListener{Listener: lis, max: int64(s.limits.MaxConnections), metrics: s.lmet, log: s.log, now: s.now}
	}
	return s.GRPC.Serve(lis)
}

// Run does the server's background work until ctx ends, and returns once
// all of it has stopped: the push outbox relay, the push queue's workers,
// the sweeper of expired requests, the retention sweeper, the hub's
// batched recheck of waited requests and the guard's recheck of API keys
// with open streams. The first
// worker to fail stops the others.
func (s *Server) Run(ctx context.Context, sweepEvery time.Duration) error {
	g, ctx := errgroup.WithContext(store.Background(ctx))
	g.Go(func() error { s.Engine.RunSweeper(ctx, sweepEvery); return nil })
	g.Go(func() error { s.Retention.Run(ctx); return nil })
	g.Go(func() error { return s.Engine.RunRelay(ctx) })
	g.Go(func() error { return s.Engine.RunPushQueue(ctx) })
	g.Go(func() error { return s.Engine.RunMarks(ctx) })
	g.Go(func() error { return s.EventRelay.Run(ctx) })
	g.Go(func() error { return s.Webhooks.Run(ctx) })
	g.Go(func() error {
		return s.hub.RunRecheck(ctx, s.recheck, events.Rechecker{Check: s.Engine.Settled, Since: s.Engine.SettledSince, Now: s.now})
	})
	g.Go(func() error { return s.guard.Run(ctx) })
	return g.Wait()
}

// Close releases what New started besides the gRPC server.
func (s *Server) Close() {
	s.gateway.close()
	s.hub.Close()
	s.Revocations.Close()
}

// streamWorkers is how many goroutines serve calls from a pool: about the
// unary calls in flight on a busy 2-core replica.
const streamWorkers = 64

// New wires the services onto a gRPC server.
func New(o Options) (*Server, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	// Lines logged while serving an RPC carry its request_id.
	o.Logger = slog.New(requestid.Handler(o.Logger.Handler()))
	pv, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("request validator: %w", err)
	}
	addrs, err := clientaddr.New(o.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	metrics := NewMetrics(o.Version)
	metrics.also = o.SecretChecks
	devices := registration.NewDevices(o.Store, o.Now)
	if o.SMS != nil {
		o.SMS = countingSMS{sms.Traced(o.SMS, o.TracerProvider), metrics}
	}
	reg := registration.New(o.Registration, o.Store, o.SMS, o.Keys, o.Now, o.Logger, metrics.smsRefused, metrics)
	if o.PairingTTL == 0 {
		o.PairingTTL = 10 * time.Minute
	}
	if o.Pairing == (pairing.Limits{}) {
		o.Pairing = pairing.DefaultLimits()
	}
	if o.Approval == (approval.Config{}) {
		o.Approval = approval.DefaultConfig()
	}
	if o.Recheck == 0 {
		o.Recheck = 2 * time.Second
	}
	if o.Bus == nil {
		return nil, fmt.Errorf("server: Options.Bus is required")
	}
	sweeper, err := retention.New(o.Retention, o.Store, o.Now, o.Logger)
	if err != nil {
		return nil, err
	}
	hub, err := events.NewHub(o.Bus.Conn(), events.RequestPrefix, o.Logger)
	if err != nil {
		return nil, fmt.Errorf("request hub: %w", err)
	}
	revocations, err := events.NewRevocations(o.Bus.Conn(), o.Logger)
	if err != nil {
		hub.Close()
		return nil, fmt.Errorf("revocations: %w", err)
	}
	// Revocations announced here take effect on this replica before the
	// call that made them returns.
	pub := revocations.LocalFirst(o.Bus)
	rps := relyingparty.New(o.Store, o.Now, pub)
	guard := auth.NewGuard(revocations, o.Store, o.Recheck)
	phrases := pairing.New(o.Store, o.Keys, o.Now, o.PairingTTL, o.Pairing, metrics)
	if o.PushSender == nil {
		o.PushSender = push.NewLogSender(o.Logger)
	}
	js, err := o.Bus.JetStream()
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	qctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	o.PushQueue.TracerProvider, o.Relay.TracerProvider = o.TracerProvider, o.TracerProvider
	queue, err := push.NewQueue(qctx, js, o.PushQueue, countingPushes{push.Traced(o.PushSender, o.TracerProvider), metrics}, o.Now, o.Logger)
	if err != nil {
		return nil, fmt.Errorf("push queue: %w", err)
	}
	stream, err := feed.NewStream(qctx, js, o.EventsRetention, o.PushQueue.Replicas)
	if err != nil {
		return nil, err
	}
	if err := o.Webhooks.Validate(); err != nil {
		return nil, err
	}
	o.Webhooks.TracerProvider = o.TracerProvider
	hooks := webhook.New(o.Webhooks, o.Store, o.Keys, o.Now, o.Logger, metrics.webhookResult)
	relay := feed.NewRelay(o.Store, stream, hooks.Enqueue, o.EventRelay, o.Now, o.Logger)
	engine := approval.New(o.Approval, o.Store, o.Keys, phrases, pub, queue, o.Now, o.Logger, approval.WithRelay(o.Relay))
	engine.OnDecided(metrics.decided)
	conns := pairing.NewConnections(o.Store, engine, pub, o.Now, o.Logger)
	queue.SkipUnless(metrics.countSkipped(engine.PushWanted))
	o.Auth.PublicMethods = append(o.Auth.PublicMethods, device.PublicMethods...)
	var keyAuth auth.APIKeyAuthenticator = rps
	var devAuth auth.DeviceAuthenticator = devices
	var rpReads store.RelyingParties = o.Store
	if o.AuthCacheTTL == 0 {
		o.AuthCacheTTL = 2 * time.Second
	}
	if o.AuthCacheTTL > 0 {
		cache := auth.NewCache(rps, devices, o.AuthCacheTTL, o.Now, revocations)
		keyAuth, devAuth, rpReads = cache.APIKeys(), cache.Devices(), cache.RelyingParties(o.Store)
	}
	authn := auth.New(o.Auth, keyAuth, devAuth, o.Logger)
	cdc := newCodec()
	obs := &observe{log: o.Logger, metrics: metrics, now: o.Now, codec: cdc}
	val := validator{v: pv}
	o.Limits = o.Limits.withDefaults()
	lmet := newLimitMetrics(metrics.Registry)
	lim := newLimiter(o.Limits, o.Now, lmet)
	drn := newDrain()

	opts := []grpc.ServerOption{
		// Order matters: observe sees the final status of everything inside it,
		// including auth refusals and recovered panics; the limiter needs the
		// caller that auth finds.
		// The standard metrics come first, so they count the status observe
		// made of the error.
		grpc.ChainUnaryInterceptor(metrics.grpc.UnaryServerInterceptor(), obs.unary, drn.unary, recoverUnary, addrs.Unary, authn.Unary, lim.unary, val.unary, metrics.openUnary),
		grpc.ChainStreamInterceptor(metrics.grpc.StreamServerInterceptor(), obs.stream, drn.stream, recoverStream, addrs.Stream, authn.Stream, lim.stream, val.stream, metrics.openStream),
		// Requests that do not decode are InvalidArgument (see codec), and
		// calls refused before the interceptors are still logged and counted.
		grpc.ForceServerCodecV2(cdc),
		grpc.StatsHandler(refusedCalls{obs: obs}),
		// Calls run on reused goroutines whose stacks have already grown to
		// what the SQLite driver needs, instead of a new goroutine that grows
		// (copies) its stack several times per call; when all are busy (long
		// streams hold theirs), a call gets a new goroutine as before.
		grpc.NumStreamWorkers(streamWorkers),
	}
	opts = append(opts, o.Limits.serverOptions()...)
	opts = append(opts, tracingOptions(o.TracerProvider)...)
	// The HTTP gateway's gRPC server: the same interceptors, in process.
	inproc := grpc.NewServer(append(slices.Clone(opts), inprocOptions()...)...)
	if o.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(o.TLS)))
	}
	g := grpc.NewServer(opts...)
	var outbox store.Outbox
	if o.Outbox {
		outbox = o.Store
	}
	adminSrv := admin.New(rps, o.Store, outbox).WithWebhooks(hooks)
	if o.Backup.MaxAttempts == 0 {
		o.Backup = backup.DefaultConfig()
	}
	if o.TOTP == (totp.Config{}) {
		o.TOTP = totp.DefaultConfig()
	}
	backups := backup.New(o.Backup, o.Store, o.Keys, pub, o.Now, o.Logger, metrics)
	codes := totp.New(o.TOTP, o.Store, o.Keys, o.Now, metrics)
	rpSrv := rpservice.New(engine, conns, codes, hub, o.Recheck, guard).WithEvents(stream)
	deviceSrv := device.New(reg, devices, engine, phrases, conns, rpReads, o.Bus, backups, codes, guard)
	for _, gs := range []*grpc.Server{g, inproc} {
		pushauthv1.RegisterAdminServiceServer(gs, adminSrv)
		pushauthv1.RegisterRelyingPartyServiceServer(gs, rpSrv)
		pushauthv1.RegisterDeviceServiceServer(gs, deviceSrv)
	}

	// The push queue is a dependency too: with its stream unreachable or
	// without quorum, logins are created but their pushes cannot be queued.
	checks := append(slices.Clone(o.Checks), Check{Name: "push_queue", Check: queue.Check})
	h := newHealth(checks, []string{
		pushauthv1.AdminService_ServiceDesc.ServiceName,
		pushauthv1.RelyingPartyService_ServiceDesc.ServiceName,
		pushauthv1.DeviceService_ServiceDesc.ServiceName,
	}, o.Logger)
	healthpb.RegisterHealthServer(g, h.srv)
	reflection.Register(g)
	metrics.grpc.InitializeMetrics(g)
	metrics.registerDomain(o, queue)
	s := &Server{GRPC: g, Health: h, Metrics: metrics, Engine: engine, Revocations: revocations, Retention: sweeper, hub: hub,
		guard: guard, recheck: o.Recheck, limits: o.Limits, lmet: lmet, drain: drn, log: o.Logger, now: o.Now, EventRelay: relay, Webhooks: hooks}
	if err := s.startGateway(inproc, o.TLS); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// OpsHandler serves /metrics, /healthz (the process is alive) and /readyz
// (the database and NATS answer).
func (s *Server) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.Health.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
