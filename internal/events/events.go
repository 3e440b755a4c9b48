// Package events carries pushauth's cross-replica notifications over NATS.
//
// The database is the source of truth: a phone's decision is written there
// first and only then announced on NATS (subject pushauth.request.<id>), so a
// login server waiting on any replica can stop waiting quickly. Core NATS is
// at-most-once; a lost message only costs latency because waiters also
// re-read the row periodically (see Wait). Device news goes on
// pushauth.device.<device_id>. JetStream is exposed for durable work queues
// (push jobs).
//
// A Bus is one NATS connection, either to an in-process server (single
// binary, no extra infrastructure, no open port) or to an external cluster.
// A Hub multiplexes one wildcard subscription per replica onto many local
// waiters.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushauth/pushauth/internal/tracing"
)

// Timeouts used by Start, Ping and Close. They bound start-up and shutdown so
// a broken NATS never hangs the process.
const (
	connectTimeout     = 5 * time.Second  // per-server dial timeout
	embeddedReadyLimit = 10 * time.Second // bound on in-process server start-up
	defaultPingTimeout = 5 * time.Second  // Ping bound when ctx has no deadline
	drainTimeout       = 10 * time.Second // flush + drain bound on Close
	reconnectWait      = 1 * time.Second
)

// Config selects where the Bus connects.
type Config struct {
	// URL of an external NATS server or cluster; a comma-separated list is
	// allowed. Empty starts an in-process server (no listening port).
	URL string
	// StoreDir is the JetStream storage directory of the in-process server.
	// Empty uses a fresh temporary directory removed on Close (streams then
	// do not survive a restart). Ignored when URL is set.
	StoreDir string
	// ServerName names the in-process server (JetStream needs stable, unique
	// names) and is reported as the client connection name, so it shows up
	// in server monitoring. Optional.
	ServerName string
}

// Bus is a NATS connection plus, when Config.URL is empty, the in-process
// server it talks to. It is safe for concurrent use.
type Bus struct {
	nc     *nats.Conn
	srv    *server.Server // nil when connected to an external server
	tmpDir string         // StoreDir we created and must remove, if any
	logger *slog.Logger

	closed    chan struct{} // closed by the nats ClosedHandler
	closeOnce sync.Once
}

// Start connects to NATS as described by cfg. With an empty cfg.URL it first
// starts an in-process nats-server with JetStream enabled that opens no
// network port; otherwise it dials cfg.URL, reconnecting forever once
// connected. Connection state changes are logged to logger (nil means
// slog.Default()). ctx bounds the start-up only.
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (*Bus, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b := &Bus{logger: logger, closed: make(chan struct{})}
	if cfg.URL == "" {
		if err := b.startEmbedded(cfg); err != nil {
			return nil, err
		}
	}

	var closedOnce sync.Once
	opts := []nats.Option{
		nats.Name(clientName(cfg.ServerName)),
		nats.Timeout(connectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.DrainTimeout(drainTimeout),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "error", err)
			} else {
				logger.Info("nats disconnected")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			logger.Info("nats connection closed")
			closedOnce.Do(func() { close(b.closed) })
		}),
		nats.LameDuckModeHandler(func(nc *nats.Conn) {
			logger.Warn("nats server entering lame duck mode", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			logger.Error("nats async error", "subject", subject, "error", err)
		}),
	}
	connURL := cfg.URL
	target := redactURLs(cfg.URL)
	if b.srv != nil {
		connURL = b.srv.ClientURL() // ignored by the in-process dialer
		target = "in-process server"
		opts = append(opts, nats.InProcessServer(b.srv))
	}

	nc, err := connect(ctx, connURL, opts)
	if err != nil {
		b.shutdownEmbedded()
		return nil, fmt.Errorf("events: connect to NATS at %s: %w", target, err)
	}
	b.nc = nc
	attrs := []any{"target", target, "embedded", b.srv != nil}
	if b.srv == nil {
		// The embedded server listens on no port: its client URL would name
		// one it does not listen on.
		attrs = append(attrs, "url", nc.ConnectedUrlRedacted())
	}
	logger.Info("nats connected", attrs...)
	return b, nil
}

// connect runs nats.Connect but gives up when ctx ends; a connection that
// completes after that is closed in the background.
func connect(ctx context.Context, url string, opts []nats.Option) (*nats.Conn, error) {
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(url, opts...)
		ch <- result{nc, err}
	}()
	select {
	case r := <-ch:
		return r.nc, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

func (b *Bus) startEmbedded(cfg Config) error {
	dir := cfg.StoreDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "pushauth-nats-")
		if err != nil {
			return fmt.Errorf("events: embedded NATS store dir: %w", err)
		}
		dir, b.tmpDir = tmp, tmp
	}
	opts := &server.Options{
		ServerName: cfg.ServerName,
		DontListen: true, // in-process connections only: no TCP port
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true, // the application owns signal handling
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		b.removeTmp()
		return fmt.Errorf("events: create embedded NATS server: %w", err)
	}
	fatal := &fatalRecorder{}
	srv.SetLoggerV2(serverLogger{l: b.logger.With("component", "nats-server"), fatal: fatal}, false, false, false)
	b.srv = srv
	// Start is synchronous up to the (skipped) accept loop. A start-up
	// failure such as an unusable StoreDir is only reported through Fatalf
	// (the server then stops starting), so check for one before waiting.
	srv.Start()
	if err := fatal.get(); err != nil {
		b.shutdownEmbedded()
		return fmt.Errorf("events: start embedded NATS server (store dir %q): %w", dir, err)
	}
	if !srv.ReadyForConnections(embeddedReadyLimit) {
		b.shutdownEmbedded()
		if err := fatal.get(); err != nil {
			return fmt.Errorf("events: start embedded NATS server (store dir %q): %w", dir, err)
		}
		return fmt.Errorf("events: embedded NATS server not ready after %s", embeddedReadyLimit)
	}
	if !srv.JetStreamEnabled() {
		b.shutdownEmbedded()
		return fmt.Errorf("events: embedded NATS server started without JetStream (store dir %q)", dir)
	}
	return nil
}

func (b *Bus) shutdownEmbedded() {
	if b.srv != nil {
		b.srv.Shutdown()
		b.srv.WaitForShutdown()
	}
	b.removeTmp()
}

func (b *Bus) removeTmp() {
	if b.tmpDir != "" {
		if err := os.RemoveAll(b.tmpDir); err != nil {
			b.logger.Warn("remove embedded NATS store dir", "dir", b.tmpDir, "error", err)
		}
		b.tmpDir = ""
	}
}

// Conn returns the underlying connection, for subscriptions (see NewHub) and
// APIs this package does not wrap.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// Embedded reports whether the Bus runs its own in-process server.
func (b *Bus) Embedded() bool { return b.srv != nil }

// JetStream returns a JetStream handle on the Bus connection, for durable
// streams such as the push-job work queue.
func (b *Bus) JetStream() (jetstream.JetStream, error) {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return nil, fmt.Errorf("events: jetstream: %w", err)
	}
	return js, nil
}

// Publish sends data on subject with core NATS (at-most-once, buffered, not
// flushed): announcements are hints, the database stays the source of truth.
// ctx is only checked before sending, since a core publish does not wait.
func (b *Bus) Publish(ctx context.Context, subject string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// With a span in ctx the news carries its trace context as headers
	// (W3C traceparent), so the receiver's span joins the trace.
	var err error
	if h := tracing.InjectNATS(ctx, nil); h != nil {
		err = b.nc.PublishMsg(&nats.Msg{Subject: subject, Data: data, Header: h})
	} else {
		err = b.nc.Publish(subject, data)
	}
	if err != nil {
		return fmt.Errorf("events: publish %s: %w", subject, err)
	}
	return nil
}

// Ping does a round trip to the server, for readiness checks. It fails fast
// while disconnected instead of waiting for a reconnect. Without a ctx
// deadline it is bounded by a default timeout.
func (b *Bus) Ping(ctx context.Context) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("events: NATS not connected (status %s)", b.nc.Status())
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPingTimeout)
		defer cancel()
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("events: NATS ping: %w", err)
	}
	return nil
}

// Close drains the connection (pending publishes are flushed, subscription
// handlers finish), then shuts the in-process server down and waits for it.
// It is bounded, idempotent and safe for concurrent use.
func (b *Bus) Close() {
	b.closeOnce.Do(func() {
		if err := b.nc.Drain(); err == nil {
			select {
			case <-b.closed:
			case <-time.After(drainTimeout + 2*time.Second):
				b.logger.Warn("nats drain did not finish in time; closing")
			}
		}
		// Close is a no-op when already closed; it guarantees the state
		// whatever path Drain took.
		b.nc.Close()
		b.shutdownEmbedded()
	})
}

func clientName(serverName string) string {
	if serverName == "" {
		return "pushauth"
	}
	return "pushauth/" + serverName
}

// redactURLs renders a comma-separated NATS URL list for logs and errors
// with any user info (user, password or token) removed.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		s := p
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			if at := strings.LastIndex(p, "@"); at >= 0 {
				p = "REDACTED@" + p[at+1:]
			}
			parts[i] = p
			continue
		}
		if u.User != nil {
			u.User = url.User("REDACTED")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// serverLogger routes nats-server logs to slog. Notices (start-up banner and
// the like) go to Debug so they do not drown the application's own logs.
// Fatalf calls are also recorded: the server uses them for start-up
// failures it cannot recover from.
type serverLogger struct {
	l     *slog.Logger
	fatal *fatalRecorder
}

// fatalRecorder keeps the first fatal message logged by the server.
type fatalRecorder struct {
	mu  sync.Mutex
	err error
}

func (f *fatalRecorder) set(msg string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = errors.New(msg)
	}
}

func (f *fatalRecorder) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (s serverLogger) log(level slog.Level, format string, v []any) {
	if !s.l.Enabled(context.Background(), level) {
		return
	}
	s.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

func (s serverLogger) Noticef(format string, v ...any) { s.log(slog.LevelDebug, format, v) }
func (s serverLogger) Warnf(format string, v ...any)   { s.log(slog.LevelWarn, format, v) }
func (s serverLogger) Fatalf(format string, v ...any) {
	s.fatal.set(fmt.Sprintf(format, v...))
	s.log(slog.LevelError, format, v)
}
func (s serverLogger) Errorf(format string, v ...any) { s.log(slog.LevelError, format, v) }
func (s serverLogger) Debugf(format string, v ...any) { s.log(slog.LevelDebug, format, v) }
func (s serverLogger) Tracef(format string, v ...any) { s.log(slog.LevelDebug, format, v) }
