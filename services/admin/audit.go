package admin

import (
	"context"
	"strconv"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/paging"
	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// ListAuditEvents pages through the audit log, newest first.
func (s *Server) ListAuditEvents(ctx context.Context, req *pushauthv1.ListAuditEventsRequest) (*pushauthv1.ListAuditEventsResponse, error) {
	f := store.AuditFilter{Limit: paging.Size(req.GetPageSize(), 100, 1000) + 1}
	pos, err := paging.Decode("audit", req.GetPageToken())
	if err != nil {
		return nil, err
	}
	if pos != "" {
		if f.BeforeID, err = strconv.ParseInt(pos, 10, 64); err != nil {
			return nil, fault.Invalid("page_token", "not a page token of this list")
		}
	}
	if req.GetRelyingParty() != "" {
		rp, err := s.rps.Resolve(ctx, req.GetRelyingParty())
		if err != nil {
			return nil, err
		}
		f.RelyingPartyID = rp.ID
	}
	if req.GetStartTime() != nil {
		f.Since = req.GetStartTime().AsTime()
	}
	if req.GetEndTime() != nil {
		f.Until = req.GetEndTime().AsTime()
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return nil, fault.Invalid("end_time", "must be after start_time")
	}
	events, err := s.audit.ListAuditEvents(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListAuditEventsResponse{}
	if size := f.Limit - 1; len(events) > size {
		events = events[:size]
		resp.NextPageToken = paging.Encode("audit", strconv.FormatInt(events[size-1].ID, 10))
	}
	for _, e := range events {
		resp.Events = append(resp.Events, &pushauthv1.AuditEvent{
			Id:             strconv.FormatInt(e.ID, 10),
			Time:           timestamppb.New(e.Time),
			Actor:          e.Actor,
			Action:         e.Action,
			RelyingPartyId: e.RelyingPartyID,
			Target:         e.Target,
			Details:        e.Details,
			RequestId:      e.RequestID,
		})
	}
	return resp, nil
}
