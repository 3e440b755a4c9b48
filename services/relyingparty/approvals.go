package relyingparty

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// CreateApproval asks the user's phones to confirm a login.
func (s *Server) CreateApproval(ctx context.Context, req *pushauthv1.CreateApprovalRequest) (*pushauthv1.CreateApprovalResponse, error) {
	rp, actor, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.engine.CreateApproval(ctx, actor, rp, req.GetUserRef(), wire.ContextFromProto(req.GetContext()))
	if err != nil {
		return nil, err
	}
	return &pushauthv1.CreateApprovalResponse{
		RequestId:      c.Request.ID,
		ExpireTime:     timestamppb.New(c.Request.ExpiresAt),
		NumberMatching: wire.NumberMatching(c.Request.NumberMatching),
		Number:         c.Number,
	}, nil
}

// GetRequest returns one of the caller's requests.
func (s *Server) GetRequest(ctx context.Context, req *pushauthv1.GetRequestRequest) (*pushauthv1.GetRequestResponse, error) {
	rp, _, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.engine.Get(ctx, rp.ID, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.GetRequestResponse{Request: wire.Request(r)}, nil
}

// CancelRequest cancels a pending request.
func (s *Server) CancelRequest(ctx context.Context, req *pushauthv1.CancelRequestRequest) (*pushauthv1.CancelRequestResponse, error) {
	rp, actor, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.engine.Cancel(ctx, actor, rp.ID, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.CancelRequestResponse{Request: wire.Request(r)}, nil
}

// WaitRequest streams progress, then the final request. It ends with
// Unauthenticated if the API key is revoked meanwhile (see auth.Guard).
func (s *Server) WaitRequest(req *pushauthv1.WaitRequestRequest, stream pushauthv1.RelyingPartyService_WaitRequestServer) error {
	ctx, lease := s.guard.Stream(stream.Context())
	defer lease.Stop()
	rp, _, err := caller(ctx)
	if err != nil {
		return err
	}
	sent := map[string]string{} // device id + kind -> detail sent
	queued := false
	progress := func(targets []store.RequestTarget) error {
		// Called on every read.
		if err := lease.Recheck(ctx); err != nil {
			return err
		}
		for _, t := range targets {
			for _, p := range progressOf(t) {
				key := t.DeviceID + "/" + p.GetKind().String()
				if p.GetKind() == pushauthv1.Progress_KIND_QUEUED {
					if queued {
						continue
					}
					queued = true
				} else if d, ok := sent[key]; ok && d == p.GetDetail() {
					continue
				}
				sent[key] = p.GetDetail()
				if err := stream.Send(&pushauthv1.WaitRequestResponse{Event: &pushauthv1.WaitRequestResponse_Progress{Progress: p}}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// No timer of its own: the replica's hub rechecks every waited request
	// (server.Run) and the guard every open API key (auth.Guard.Run).
	r, err := s.engine.Wait(ctx, s.hub, rp.ID, req.GetRequestId(), nil, progress)
	if err != nil {
		return lease.Err(err)
	}
	return stream.Send(&pushauthv1.WaitRequestResponse{Event: &pushauthv1.WaitRequestResponse_Result{Result: wire.Request(r)}})
}

// progressOf is what one target says about delivery.
func progressOf(t store.RequestTarget) []*pushauthv1.Progress {
	at := timestamppb.New(t.UpdatedAt)
	var out []*pushauthv1.Progress
	switch t.Delivery {
	case store.DeliveryQueued:
		out = append(out, &pushauthv1.Progress{Kind: pushauthv1.Progress_KIND_QUEUED, Time: at})
	case store.DeliverySent:
		out = append(out, &pushauthv1.Progress{Kind: pushauthv1.Progress_KIND_QUEUED, Time: at},
			&pushauthv1.Progress{Kind: pushauthv1.Progress_KIND_SENT, DeviceId: t.DeviceID, Time: at})
	case store.DeliveryFailed, store.DeliveryDead, store.DeliveryMuted, store.DeliveryRemoved:
		reason, detail := wire.DeliveryFailure(t)
		if t.Delivery == store.DeliveryRemoved {
			detail = t.Detail // the service's own words, never a provider's
		}
		out = append(out, &pushauthv1.Progress{Kind: pushauthv1.Progress_KIND_DELIVERY_FAILED, DeviceId: t.DeviceID, Time: at,
			Detail: detail, FailureReason: reason})
	}
	if !t.SeenAt.IsZero() {
		out = append(out, &pushauthv1.Progress{Kind: pushauthv1.Progress_KIND_SEEN, DeviceId: t.DeviceID, Time: timestamppb.New(t.SeenAt)})
	}
	return out
}
