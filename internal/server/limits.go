package server

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/fault"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Limits bound what clients can hold or ask of one replica, so that one
// client (or a flood of them) cannot starve the others. Every limit is per
// replica: a deployment of n replicas admits up to n times as much.
//
// Zero fields take DefaultLimits' value. A negative count or rate switches
// that limit off, and a negative MaxConnectionIdle or MaxConnectionAge means
// connections are never closed for being idle or old.
type Limits struct {
	// MaxConnections caps open TCP connections. A connection over the cap is
	// closed as soon as it is accepted, before any TLS or HTTP/2.
	MaxConnections int
	// MaxConcurrentStreams caps the calls open at once on one HTTP/2
	// connection; gRPC clients queue further calls until one ends.
	MaxConcurrentStreams int
	// MaxRecvMsgSize and MaxSendMsgSize cap one message, in bytes.
	MaxRecvMsgSize int
	MaxSendMsgSize int
	// KeepaliveMinTime is the least time between client pings; a client
	// pinging more often is disconnected (GOAWAY "too_many_pings").
	KeepaliveMinTime time.Duration
	// KeepaliveTime is how long a connection may be silent before the server
	// pings it; KeepaliveTimeout how long it waits for the answer before
	// closing the connection.
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
	// MaxConnectionIdle closes a connection that has had no call for this
	// long.
	MaxConnectionIdle time.Duration
	// MaxConnectionAge asks a client to reconnect (GOAWAY) once its
	// connection is this old, so load spreads over new replicas; calls
	// already open get MaxConnectionAgeGrace to finish before the
	// connection is closed. The grace must outlast a WaitRequest (at most
	// the longest approval_ttl, 10 minutes).
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	// WaitStreamsPerAPIKey caps the WaitRequest streams one API key holds
	// open at once.
	WaitStreamsPerAPIKey int
	// WatchStreamsPerDevice caps the WatchRequests streams one device holds
	// open at once.
	WatchStreamsPerDevice int
	// APIKeyRate is the calls per second one API key may make on average,
	// APIKeyBurst how many it may make at once (a token bucket).
	APIKeyRate  float64
	APIKeyBurst int
}

// DefaultLimits are the limits when none are given.
func DefaultLimits() Limits {
	return Limits{
		MaxConnections:        1000,
		MaxConcurrentStreams:  100,
		MaxRecvMsgSize:        256 << 10,
		MaxSendMsgSize:        4 << 20,
		KeepaliveMinTime:      10 * time.Second,
		KeepaliveTime:         2 * time.Minute,
		KeepaliveTimeout:      20 * time.Second,
		MaxConnectionIdle:     15 * time.Minute,
		MaxConnectionAge:      30 * time.Minute,
		MaxConnectionAgeGrace: 11 * time.Minute,
		WaitStreamsPerAPIKey:  100,
		WatchStreamsPerDevice: 4,
		APIKeyRate:            50,
		APIKeyBurst:           100,
	}
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&l.MaxConnections, d.MaxConnections)
	setInt(&l.MaxConcurrentStreams, d.MaxConcurrentStreams)
	setInt(&l.MaxRecvMsgSize, d.MaxRecvMsgSize)
	setInt(&l.MaxSendMsgSize, d.MaxSendMsgSize)
	setDur(&l.KeepaliveMinTime, d.KeepaliveMinTime)
	setDur(&l.KeepaliveTime, d.KeepaliveTime)
	setDur(&l.KeepaliveTimeout, d.KeepaliveTimeout)
	setDur(&l.MaxConnectionIdle, d.MaxConnectionIdle)
	setDur(&l.MaxConnectionAge, d.MaxConnectionAge)
	setDur(&l.MaxConnectionAgeGrace, d.MaxConnectionAgeGrace)
	setInt(&l.WaitStreamsPerAPIKey, d.WaitStreamsPerAPIKey)
	setInt(&l.WatchStreamsPerDevice, d.WatchStreamsPerDevice)
	if l.APIKeyRate == 0 {
		l.APIKeyRate = d.APIKeyRate
	}
	setInt(&l.APIKeyBurst, d.APIKeyBurst)
	return l
}

// serverOptions are the gRPC server options that enforce the transport
// limits.
func (l Limits) serverOptions() []grpc.ServerOption {
	never := func(d time.Duration) time.Duration {
		if d < 0 {
			return time.Duration(math.MaxInt64) // gRPC's "infinity"
		}
		return d
	}
	streams := uint32(math.MaxUint32)
	if l.MaxConcurrentStreams > 0 {
		streams = uint32(min(l.MaxConcurrentStreams, math.MaxUint32))
	}
	recv, send := l.MaxRecvMsgSize, l.MaxSendMsgSize
	if recv < 0 {
		recv = math.MaxInt32
	}
	if send < 0 {
		send = math.MaxInt32
	}
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(streams),
		grpc.MaxRecvMsgSize(recv),
		grpc.MaxSendMsgSize(send),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: max(l.KeepaliveMinTime, 0), PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     never(l.MaxConnectionIdle),
			MaxConnectionAge:      never(l.MaxConnectionAge),
			MaxConnectionAgeGrace: never(l.MaxConnectionAgeGrace),
			Time:                  never(l.KeepaliveTime),
			Timeout:               never(l.KeepaliveTimeout),
		}),
	}
}

// limitMetrics count what the limits turned away, so an operator sees a
// limit biting before users report it.
type limitMetrics struct {
	refused *prometheus.CounterVec
	open    prometheus.Gauge
}

func newLimitMetrics(reg prometheus.Registerer) *limitMetrics {
	m := &limitMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushauth_limit_refused_total",
			Help: "Connections and calls refused by a transport limit, by limit (connections, wait_streams, watch_streams, api_key_rate).",
		}, []string{"limit"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pushauth_grpc_connections_open",
			Help: "gRPC TCP connections open on this replica (counted against max_connections).",
		}),
	}
	reg.MustRegister(m.refused, m.open)
	return m
}

// capListener closes connections over its cap as soon as it accepts them.
// Closing (rather than leaving them in the kernel's backlog) tells the client
// at once to try elsewhere, and keeps a flood from holding file descriptors.
type capListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	metrics *limitMetrics
	log     *slog.Logger
	now     func() time.Time
	lastLog atomic.Int64 // unix seconds of the last "refused" log line
}

// Accept returns the next connection within the cap.
func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			// Counted and logged before the close, so whoever sees the
			// close also sees the count.
			l.metrics.refused.WithLabelValues("connections").Inc()
			// One line a minute at most: a flood must not flood the log too.
			if now := l.now().Unix(); l.lastLog.Load() <= now-60 {
				l.lastLog.Store(now)
				l.log.Warn("connection refused: max_connections reached", "max_connections", l.max, "remote", c.RemoteAddr().String())
			}
			_ = c.Close()
			continue
		}
		l.metrics.open.Inc()
		return &capConn{Conn: c, l: l}, nil
	}
}

type capConn struct {
	net.Conn
	once sync.Once
	l    *capListener
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.open.Add(-1)
		c.l.metrics.open.Dec()
	})
	return err
}

// streamCaps counts the open streams per holder (an API key or a device).
type streamCaps struct {
	mu   sync.Mutex
	open map[string]int
}

// acquire takes a slot for holder unless it already holds max; release
// gives it back.
func (s *streamCaps) acquire(holder string, max int) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open == nil {
		s.open = map[string]int{}
	}
	if s.open[holder] >= max {
		return nil, false
	}
	s.open[holder]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.open[holder]--; s.open[holder] <= 0 {
				delete(s.open, holder)
			}
		})
	}, true
}

// buckets are token buckets, one per holder: each holds up to burst
// tokens, refills at rate per second, and a call takes one.
type buckets struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu   sync.Mutex
	byID map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// take takes a token for holder, or says how long until one is there.
func (b *buckets) take(holder string) (wait time.Duration, ok bool) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byID == nil {
		b.byID = map[string]*bucket{}
	}
	k, found := b.byID[holder]
	if !found {
		if len(b.byID) >= 10000 {
			b.prune(now)
		}
		k = &bucket{tokens: b.burst, at: now}
		b.byID[holder] = k
	}
	if elapsed := now.Sub(k.at); elapsed > 0 {
		k.tokens = min(b.burst, k.tokens+elapsed.Seconds()*b.rate)
	}
	k.at = now
	if k.tokens >= 1 {
		k.tokens--
		return 0, true
	}
	wait = time.Duration((1 - k.tokens) / b.rate * float64(time.Second))
	return max(wait, time.Millisecond), false
}

// prune forgets full buckets: they behave like new ones.
func (b *buckets) prune(now time.Time) {
	for id, k := range b.byID {
		if k.tokens+now.Sub(k.at).Seconds()*b.rate >= b.burst {
			delete(b.byID, id)
		}
	}
}

// limiter enforces the per-caller limits; it runs after authentication,
// which says who the caller is.
type limiter struct {
	limits  Limits
	waits   streamCaps
	watches streamCaps
	rate    *buckets // nil: no rate limit
	metrics *limitMetrics
}

func newLimiter(l Limits, now func() time.Time, m *limitMetrics) *limiter {
	lim := &limiter{limits: l, metrics: m}
	if l.APIKeyRate > 0 {
		lim.rate = &buckets{rate: l.APIKeyRate, burst: float64(max(l.APIKeyBurst, 1)), now: now}
	}
	return lim
}

// checkRate takes a token for an API-key caller.
func (l *limiter) checkRate(ctx context.Context) error {
	if l.rate == nil {
		return nil
	}
	_, key, ok := auth.RelyingPartyFrom(ctx)
	if !ok {
		return nil
	}
	if wait, ok := l.rate.take(key.ID); !ok {
		l.metrics.refused.WithLabelValues("api_key_rate").Inc()
		return fault.Exhausted(fmt.Sprintf("too many calls with this API key: at most %g per second (bursts of %d) on each server; slow down and retry after the delay in RetryInfo",
			l.limits.APIKeyRate, l.limits.APIKeyBurst), wait)
	}
	return nil
}

func (l *limiter) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := l.checkRate(ctx); err != nil {
		return nil, err
	}
	if info.FullMethod == pushauthv1.RelyingPartyService_AwaitRequest_FullMethodName {
		// A long poll holds the server like a WaitRequest stream does.
		release, err := l.acquireWait(ctx)
		if err != nil {
			return nil, err
		}
		defer release()
	}
	return handler(ctx, req)
}

// acquireWait takes one of the caller's WaitRequest/AwaitRequest slots.
func (l *limiter) acquireWait(ctx context.Context) (release func(), err error) {
	_, key, ok := auth.RelyingPartyFrom(ctx)
	if !ok || l.limits.WaitStreamsPerAPIKey <= 0 {
		return func() {}, nil
	}
	release, ok = l.waits.acquire(key.ID, l.limits.WaitStreamsPerAPIKey)
	if !ok {
		l.metrics.refused.WithLabelValues("wait_streams").Inc()
		return nil, fault.Exhausted(fmt.Sprintf("too many WaitRequest streams and AwaitRequest calls open with this API key: at most %d at once on each server; end one (or wait for a request to finish) before opening another",
			l.limits.WaitStreamsPerAPIKey), streamRetry)
	}
	return release, nil
}

// streamRetry is the RetryInfo delay of a refused stream: one of the
// caller's streams must end first, which a short pause leaves time for.
const streamRetry = time.Second

func (l *limiter) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	if err := l.checkRate(ctx); err != nil {
		return err
	}
	switch info.FullMethod {
	case pushauthv1.RelyingPartyService_WaitRequest_FullMethodName,
		// A WatchEvents stream holds a JetStream consumer: it counts too.
		pushauthv1.RelyingPartyService_WatchEvents_FullMethodName:
		release, err := l.acquireWait(ctx)
		if err != nil {
			return err
		}
		defer release()
	case pushauthv1.DeviceService_WatchRequests_FullMethodName:
		if dev, ok := auth.DeviceFrom(ctx); ok && l.limits.WatchStreamsPerDevice > 0 {
			release, ok := l.watches.acquire(dev.ID, l.limits.WatchStreamsPerDevice)
			if !ok {
				l.metrics.refused.WithLabelValues("watch_streams").Inc()
				return fault.Exhausted(fmt.Sprintf("too many WatchRequests streams open for this device: at most %d at once on each server; close the old stream before opening a new one",
					l.limits.WatchStreamsPerDevice), streamRetry)
			}
			defer release()
		}
	}
	return handler(srv, ss)
}
