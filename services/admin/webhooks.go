package admin

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/paging"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/webhook"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// WithWebhooks serves the webhook calls.
func (s *Server) WithWebhooks(w *webhook.Service) *Server {
	s.webhooks = w
	return s
}

func (s *Server) hooks() (*webhook.Service, error) {
	if s.webhooks == nil {
		return nil, fault.New(fault.FailedPrecondition, "webhooks are not configured on this server")
	}
	return s.webhooks, nil
}

// CreateWebhook registers an endpoint and returns its secret once.
func (s *Server) CreateWebhook(ctx context.Context, req *pushauthv1.CreateWebhookRequest) (*pushauthv1.CreateWebhookResponse, error) {
	w, err := s.hooks()
	if err != nil {
		return nil, err
	}
	rp, err := s.rps.Resolve(ctx, req.GetRelyingParty())
	if err != nil {
		return nil, err
	}
	e, sec, err := w.Create(ctx, auth.ActorFrom(ctx), rp, req.GetUrl(), req.GetDescription())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.CreateWebhookResponse{Webhook: webhookProto(e), Secret: sec}, nil
}

// ListWebhooks lists endpoints.
func (s *Server) ListWebhooks(ctx context.Context, req *pushauthv1.ListWebhooksRequest) (*pushauthv1.ListWebhooksResponse, error) {
	w, err := s.hooks()
	if err != nil {
		return nil, err
	}
	var rp store.RelyingParty
	if req.GetRelyingParty() != "" {
		if rp, err = s.rps.Resolve(ctx, req.GetRelyingParty()); err != nil {
			return nil, err
		}
	}
	es, err := w.List(ctx, rp, req.GetIncludeDisabled())
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListWebhooksResponse{}
	for _, e := range es {
		resp.Webhooks = append(resp.Webhooks, webhookProto(e))
	}
	return resp, nil
}

// RotateWebhookSecret issues a new secret and returns it once.
func (s *Server) RotateWebhookSecret(ctx context.Context, req *pushauthv1.RotateWebhookSecretRequest) (*pushauthv1.RotateWebhookSecretResponse, error) {
	w, err := s.hooks()
	if err != nil {
		return nil, err
	}
	e, sec, err := w.RotateSecret(ctx, auth.ActorFrom(ctx), req.GetWebhook())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.RotateWebhookSecretResponse{Webhook: webhookProto(e), Secret: sec}, nil
}

// DisableWebhook stops deliveries to an endpoint.
func (s *Server) DisableWebhook(ctx context.Context, req *pushauthv1.DisableWebhookRequest) (*pushauthv1.DisableWebhookResponse, error) {
	w, err := s.hooks()
	if err != nil {
		return nil, err
	}
	reason := req.GetReason()
	if reason == "" {
		reason = "disabled by an operator"
	}
	e, err := w.Disable(ctx, auth.ActorFrom(ctx), req.GetWebhook(), reason)
	if err != nil {
		return nil, err
	}
	return &pushauthv1.DisableWebhookResponse{Webhook: webhookProto(e)}, nil
}

// ListWebhookDeliveries lists an endpoint's deliveries, newest first.
func (s *Server) ListWebhookDeliveries(ctx context.Context, req *pushauthv1.ListWebhookDeliveriesRequest) (*pushauthv1.ListWebhookDeliveriesResponse, error) {
	w, err := s.hooks()
	if err != nil {
		return nil, err
	}
	limit := paging.Size(req.GetLimit(), 50, 500)
	var before time.Time // zero: from the newest
	if req.GetBefore() != nil {
		before = req.GetBefore().AsTime()
	}
	ds, err := w.Deliveries(ctx, req.GetWebhook(), before, limit)
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListWebhookDeliveriesResponse{}
	for _, d := range ds {
		resp.Deliveries = append(resp.Deliveries, &pushauthv1.WebhookDelivery{
			Id: d.ID, WebhookId: d.EndpointID, EventId: d.EventID, EventType: d.EventType, State: d.State,
			Attempts: int32(d.Attempts), NextAttemptTime: nextAttempt(d), LastStatus: int32(d.LastStatus), LastError: d.LastError,
			CreateTime: timestamppb.New(d.CreatedAt), FinishTime: wire.OptionalTime(d.FinishedAt),
		})
	}
	return resp, nil
}

func nextAttempt(d store.WebhookDelivery) *timestamppb.Timestamp {
	if d.State != store.WebhookPending {
		return nil
	}
	return timestamppb.New(d.NextAttemptAt)
}

func webhookProto(e store.WebhookEndpoint) *pushauthv1.Webhook {
	return &pushauthv1.Webhook{
		Id: e.ID, RelyingPartyId: e.RelyingPartyID, Url: e.URL, Description: e.Description,
		CreateTime: timestamppb.New(e.CreatedAt), UpdateTime: timestamppb.New(e.UpdatedAt),
		DisableTime: wire.OptionalTime(e.DisabledAt), DisabledReason: e.DisabledReason, FailingSince: wire.OptionalTime(e.FailingSince),
	}
}
