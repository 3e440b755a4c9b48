package device

import (
	"context"
	"encoding/json"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/totp"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// CreatePairingPhrase makes the two words for "add an account".
func (s *Server) CreatePairingPhrase(ctx context.Context, _ *pushauthv1.CreatePairingPhraseRequest) (*pushauthv1.CreatePairingPhraseResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	phrase, exp, err := s.phrases.Create(ctx, id)
	if err != nil {
		return nil, err
	}
	return &pushauthv1.CreatePairingPhraseResponse{Phrase: phrase, ExpireTime: timestamppb.New(exp)}, nil
}

// ListConnections lists the device's accounts.
func (s *Server) ListConnections(ctx context.Context, _ *pushauthv1.ListConnectionsRequest) (*pushauthv1.ListConnectionsResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	conns, err := s.conns.OfDevice(ctx, id)
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListConnectionsResponse{}
	for _, c := range conns {
		rp, err := s.rps.GetRelyingParty(ctx, c.RelyingPartyID)
		if err != nil {
			return nil, err
		}
		resp.Connections = append(resp.Connections, &pushauthv1.Connection{
			Id: c.ID, RelyingPartyId: rp.ID, RelyingPartyName: rp.DisplayName, AccountLabel: c.AccountLabel,
			ConnectTime: wire.OptionalTime(c.ActivatedAt),
		})
	}
	return resp, nil
}

// RemoveConnection disconnects one of the device's accounts.
func (s *Server) RemoveConnection(ctx context.Context, req *pushauthv1.RemoveConnectionRequest) (*pushauthv1.RemoveConnectionResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.conns.RemoveOfDevice(ctx, id, req.GetConnectionId()); err != nil {
		return nil, err
	}
	return &pushauthv1.RemoveConnectionResponse{}, nil
}

// ListPendingRequests lists what waits for this device.
func (s *Server) ListPendingRequests(ctx context.Context, _ *pushauthv1.ListPendingRequestsRequest) (*pushauthv1.ListPendingRequestsResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	rs, err := s.engine.ListPending(ctx, id)
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListPendingRequestsResponse{}
	for _, r := range rs {
		dr, err := s.deviceRequest(ctx, r)
		if err != nil {
			return nil, err
		}
		resp.Requests = append(resp.Requests, dr)
	}
	return resp, nil
}

// GetRequest returns a request's details and marks it seen.
func (s *Server) GetRequest(ctx context.Context, req *pushauthv1.DeviceServiceGetRequestRequest) (*pushauthv1.DeviceServiceGetRequestResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.engine.GetForDevice(ctx, id, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	dr, err := s.deviceRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	return &pushauthv1.DeviceServiceGetRequestResponse{Request: dr}, nil
}

// RespondToRequest applies the device's signed decision.
func (s *Server) RespondToRequest(ctx context.Context, req *pushauthv1.RespondToRequestRequest) (*pushauthv1.RespondToRequestResponse, error) {
	dev, ok := auth.DeviceFrom(ctx)
	if !ok {
		return nil, fault.New(fault.Unauthenticated, "no device credentials")
	}
	decision := map[pushauthv1.Decision]string{
		pushauthv1.Decision_DECISION_APPROVE: approval.DecisionApprove, pushauthv1.Decision_DECISION_DENY: approval.DecisionDeny,
		pushauthv1.Decision_DECISION_REPORT_FRAUD: approval.DecisionReportFraud,
	}[req.GetDecision()]
	r, err := s.engine.Respond(ctx, dev, approval.Response{
		RequestID:      req.GetRequestId(),
		Decision:       decision,
		NumberAnswer:   req.GetNumberAnswer(),
		AutoApproved:   req.GetAutoApproved(),
		LocationRuleID: req.GetLocationRuleId(),
		SignedAt:       req.GetSignedTime().AsTime(),
		Signature:      req.GetSignature(),
	})
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.RespondToRequestResponse{Request: wire.Request(r)}
	if r.Kind == store.KindPairing && r.Status == store.StatusApproved && r.DecidedBy == dev.ID {
		// The connection's TOTP seed, handed over once.
		seed, err := s.connectionSeed(ctx, r)
		if err != nil {
			return nil, err
		}
		resp.TotpSeed = seed
	}
	return resp, nil
}

func (s *Server) connectionSeed(ctx context.Context, r store.Request) (*pushauthv1.TotpSeed, error) {
	c, err := s.conns.Get(ctx, r.ConnectionID)
	if err != nil {
		return nil, err
	}
	rp, err := s.rps.GetRelyingParty(ctx, r.RelyingPartyID)
	if err != nil {
		return nil, err
	}
	seed, err := s.totp.ConnectionSeed(ctx, c, rp)
	if err != nil || seed == nil {
		return nil, err
	}
	return &pushauthv1.TotpSeed{Secret: seed.Secret, OtpauthUri: seed.URI, Digits: totp.Digits,
		PeriodSeconds: int32(totp.Period / time.Second), Algorithm: totp.Algorithm}, nil
}

// WatchRequests streams news for the device: first every pending request,
// then new ones, closures and notices as they happen on any replica. It
// re-lists the pending requests on every recheck tick, so a lost message
// only costs latency, and ends with Unauthenticated when the device is
// revoked (see auth.Guard).
func (s *Server) WatchRequests(_ *pushauthv1.WatchRequestsRequest, stream pushauthv1.DeviceService_WatchRequestsServer) error {
	ctx, lease := s.guard.Stream(stream.Context())
	defer lease.Stop()
	id, err := caller(ctx)
	if err != nil {
		return err
	}
	subject, err := events.DeviceSubject(id)
	if err != nil {
		return err
	}
	news, cancel, err := s.bus.Subscribe(subject, 256)
	if err != nil {
		return fault.Wrap(fault.Unavailable, err, "cannot watch right now; try again")
	}
	defer cancel()
	var tick <-chan time.Time
	if d := s.guard.Interval(); d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		tick = t.C
	}
	shown := map[string]bool{}
	closed := func(requestID string) error {
		delete(shown, requestID)
		return stream.Send(&pushauthv1.WatchRequestsResponse{Event: &pushauthv1.WatchRequestsResponse_ClosedRequestId{ClosedRequestId: requestID}})
	}
	// resync sends the pending requests not shown yet, and closes the shown
	// ones no longer pending for this device (decided, expired, or its
	// target removed).
	resync := func() error {
		rs, err := s.engine.ListPending(ctx, id)
		if err != nil {
			return err
		}
		pending := make(map[string]bool, len(rs))
		for _, r := range rs {
			pending[r.ID] = true
			if shown[r.ID] {
				continue
			}
			dr, err := s.deviceRequest(ctx, r)
			if err != nil {
				return err
			}
			if err := stream.Send(&pushauthv1.WatchRequestsResponse{Event: &pushauthv1.WatchRequestsResponse_Request{Request: dr}}); err != nil {
				return err
			}
			shown[r.ID] = true
		}
		for rid := range shown {
			if !pending[rid] {
				if err := closed(rid); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// Subscribed first, then listed: nothing created in between is missed.
	if err := resync(); err != nil {
		return lease.Err(err)
	}
	for {
		select {
		case <-ctx.Done():
			return lease.Err(nil)
		case <-tick:
			if err := lease.Recheck(ctx); err != nil {
				return err
			}
			if err := resync(); err != nil {
				return lease.Err(err)
			}
		case b := <-news:
			var n events.DeviceNews
			if json.Unmarshal(b, &n) != nil {
				continue
			}
			var err error
			switch n.Type {
			case events.NewsRequest:
				err = resync()
			case events.NewsClosed:
				if shown[n.RequestID] {
					err = closed(n.RequestID)
				}
			case events.NewsNotice:
				err = stream.Send(&pushauthv1.WatchRequestsResponse{Event: &pushauthv1.WatchRequestsResponse_Notice{Notice: n.Notice}})
			}
			if err != nil {
				return lease.Err(err)
			}
		}
	}
}

func (s *Server) deviceRequest(ctx context.Context, r store.Request) (*pushauthv1.DeviceRequest, error) {
	rp, err := s.rps.GetRelyingParty(ctx, r.RelyingPartyID)
	if err != nil {
		return nil, err
	}
	return wire.DeviceRequest(r, rp), nil
}
