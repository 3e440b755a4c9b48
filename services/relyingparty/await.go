package relyingparty

import (
	"context"
	"errors"
	"time"

	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// MaxAwait is the longest an AwaitRequest call is held: short enough for
// PHP's and proxies' default timeouts, long enough that a client polls
// a few times per login at most.
const MaxAwait = 30 * time.Second

// AwaitRequest is WaitRequest as a long poll, for clients that cannot read
// a stream: it returns the request once it is final, or as it stands when
// the timeout runs out.
func (s *Server) AwaitRequest(ctx context.Context, req *pushauthv1.AwaitRequestRequest) (*pushauthv1.AwaitRequestResponse, error) {
	ctx, lease := s.guard.Stream(ctx)
	defer lease.Stop()
	rp, _, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	timeout := MaxAwait
	if req.GetTimeout() != nil {
		timeout = min(req.GetTimeout().AsDuration(), MaxAwait)
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := s.engine.Wait(wctx, s.hub, rp.ID, req.GetRequestId(), nil, func([]store.RequestTarget) error {
		return lease.Recheck(ctx)
	})
	if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// Our own timeout, not the caller's: answer with the state as it is.
		r, err = s.engine.Get(ctx, rp.ID, req.GetRequestId())
	}
	if err != nil {
		return nil, lease.Err(err)
	}
	return &pushauthv1.AwaitRequestResponse{Request: wire.Request(r)}, nil
}
