package relyingparty

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/feed"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// WithEvents serves WatchEvents from the security event stream.
func (s *Server) WithEvents(stream *feed.Stream) *Server {
	s.events = stream
	return s
}

// WatchEvents streams the caller's security events after the cursor until
// the caller goes, or its key is revoked.
func (s *Server) WatchEvents(req *pushauthv1.WatchEventsRequest, stream pushauthv1.RelyingPartyService_WatchEventsServer) error {
	ctx, lease := s.guard.Stream(stream.Context())
	defer lease.Stop()
	rp, _, err := caller(ctx)
	if err != nil {
		return err
	}
	if s.events == nil {
		return fault.New(fault.FailedPrecondition, "this server keeps no event feed")
	}
	// The revocation notice ends the stream at once; the recheck is for a
	// notice that was lost (it cancels ctx itself).
	go func() {
		t := time.NewTicker(s.recheck)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = lease.Recheck(ctx)
			}
		}
	}()
	err = s.events.Watch(ctx, rp.ID, req.GetAfter(), func(e feed.Event) error {
		return stream.Send(&pushauthv1.WatchEventsResponse{Event: &pushauthv1.SecurityEvent{
			Cursor: e.Cursor, Id: e.ID, Type: e.Type, Time: timestamppb.New(e.Time), Data: e.Data,
		}})
	})
	return lease.Err(err)
}
