package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// errDraining ends calls that wait for news when the replica shuts down:
// the client re-attaches to another replica at once instead of holding on
// until shutdown_timeout cuts it.
var errDraining = status.Error(codes.Unavailable, "this server is shutting down; reconnect")

// drain ends waiting calls when shutdown begins: every server stream
// (WatchRequests, WaitRequest, health Watch) and the unary long poll
// AwaitRequest. Other unary calls are left to finish.
type drain struct {
	ctx   context.Context // cancelled when draining starts
	start context.CancelFunc
}

func newDrain() *drain {
	ctx, cancel := context.WithCancel(context.Background())
	return &drain{ctx: ctx, start: cancel}
}

// wrap returns a context that also ends when draining starts.
func (d *drain) wrap(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(d.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

func (d *drain) draining() bool { return d.ctx.Err() != nil }

func (d *drain) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if d.draining() {
		return errDraining
	}
	ctx, cancel := d.wrap(ss.Context())
	defer cancel()
	err := handler(srv, &drainStream{ServerStream: ss, ctx: ctx})
	if d.draining() && ss.Context().Err() == nil {
		return errDraining
	}
	return err
}

func (d *drain) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if info.FullMethod != pushauthv1.RelyingPartyService_AwaitRequest_FullMethodName {
		return handler(ctx, req)
	}
	if d.draining() {
		return nil, errDraining
	}
	wctx, cancel := d.wrap(ctx)
	defer cancel()
	resp, err := handler(wctx, req)
	if err != nil && d.draining() && ctx.Err() == nil {
		return nil, errDraining
	}
	return resp, err
}

type drainStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *drainStream) Context() context.Context { return s.ctx }

// Drain ends the calls that wait for news (server streams and
// AwaitRequest) with Unavailable, and refuses new ones, so their clients
// re-attach to another replica at once; call it when shutdown begins, before
// GracefulStop. Unary calls in flight are not touched.
func (s *Server) Drain() { s.drain.start() }
