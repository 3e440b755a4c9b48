package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/test/bufconn"

	"github.com/pushauth/pushauth/internal/clientaddr"
	"github.com/pushauth/pushauth/internal/httpapi"
)

// gateway is the JSON-over-HTTP face of the server: internal/httpapi's
// handler, forwarding over an in-memory connection to a second gRPC server
// with the same interceptors and services. A server of its own, because
// the transport limits of the public one are per connection, and every
// HTTP client shares this one connection: a stream cap of 100 would queue
// the 101st HTTP waiter of all clients together. HTTP clients are bounded
// by the HTTP listener (connections) and the per-caller limits instead.
type gateway struct {
	grpc    *grpc.Server
	lis     *bufconn.Listener
	conn    *grpc.ClientConn
	handler http.Handler
	served  chan struct{}
	http    *http.Server
}

// inprocOptions lift the per-connection limits for the gateway's server
// (they come after, and so override, the public server's).
func inprocOptions() []grpc.ServerOption {
	never := time.Duration(math.MaxInt64)
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(math.MaxUint32),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: never, MaxConnectionAge: never, MaxConnectionAgeGrace: never, Time: never, Timeout: never}),
	}
}

// gatewayListener marks the in-memory connections as coming from the
// gateway, so clientaddr takes the client address from x-forwarded-for.
type gatewayListener struct{ *bufconn.Listener }

func (l gatewayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return gatewayConn{c}, nil
}

type gatewayConn struct{ net.Conn }

func (gatewayConn) RemoteAddr() net.Addr { return clientaddr.GatewayAddr{} }

func (s *Server) startGateway(inproc *grpc.Server, tlsCfg *tls.Config) error {
	gw := gateway{grpc: inproc, lis: bufconn.Listen(1 << 20), served: make(chan struct{})}
	go func() {
		defer close(gw.served)
		_ = inproc.Serve(gatewayListener{gw.lis})
	}()
	s.gateway = gw
	conn, err := grpc.NewClient("passthrough:///pushauth-gateway",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return gw.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
	)
	if err != nil {
		return fmt.Errorf("http gateway connection: %w", err)
	}
	s.gateway.conn = conn
	maxBody := int64(s.limits.MaxRecvMsgSize)
	// JSON is wordier than protobuf: allow it some room over the message cap,
	// which gRPC still enforces on the decoded message.
	if maxBody > 0 {
		maxBody *= 4
	}
	h, err := httpapi.New(context.Background(), conn, httpapi.Config{MaxBodyBytes: maxBody})
	if err != nil {
		return err
	}
	s.gateway.handler = h
	s.gateway.http = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    64 << 10,
		// Idle keep-alive connections are closed like idle gRPC ones.
		IdleTimeout: 2 * time.Minute,
		TLSConfig:   tlsCfg,
	}
	return nil
}

// HTTPHandler is the JSON-over-HTTP API (every service, as the google.api.http
// rules in the protos map it) and /openapi.json.
func (s *Server) HTTPHandler() http.Handler { return s.gateway.handler }

// ServeHTTP serves the HTTP API on lis, over TLS when the server has TLS,
// with at most Limits.MaxConnections connections open, until ShutdownHTTP.
func (s *Server) ServeHTTP(lis net.Listener) error {
	if s.limits.MaxConnections > 0 {
		lis = &capListener{Listener: lis, max: int64(s.limits.MaxConnections), metrics: s.lmet, log: s.log, now: s.now}
	}
	srv := s.gateway.http
	var err error
	if srv.TLSConfig != nil {
		err = srv.ServeTLS(lis, "", "")
	} else {
		err = srv.Serve(lis)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ShutdownHTTP stops the HTTP listener and waits, until ctx ends, for open
// calls (waits and streams included) to finish; then it closes them.
func (s *Server) ShutdownHTTP(ctx context.Context) error {
	err := s.gateway.http.Shutdown(ctx)
	if err != nil {
		_ = s.gateway.http.Close()
	}
	return err
}

func (g *gateway) close() {
	if g.conn != nil {
		_ = g.conn.Close()
	}
	if g.grpc != nil {
		g.grpc.Stop()
		<-g.served
	}
}
