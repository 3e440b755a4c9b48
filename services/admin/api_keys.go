package admin

import (
	"context"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// CreateApiKey issues a key and returns its secret once.
func (s *Server) CreateApiKey(ctx context.Context, req *pushauthv1.CreateApiKeyRequest) (*pushauthv1.CreateApiKeyResponse, error) {
	k, token, err := s.rps.CreateAPIKey(ctx, auth.ActorFrom(ctx), req.GetRelyingParty(), req.GetDescription())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.CreateApiKeyResponse{ApiKey: apiKeyProto(k), Secret: token}, nil
}

// ListApiKeys lists a relying party's keys without secrets.
func (s *Server) ListApiKeys(ctx context.Context, req *pushauthv1.ListApiKeysRequest) (*pushauthv1.ListApiKeysResponse, error) {
	keys, err := s.rps.ListAPIKeys(ctx, req.GetRelyingParty(), req.GetIncludeRevoked())
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListApiKeysResponse{}
	for _, k := range keys {
		resp.ApiKeys = append(resp.ApiKeys, apiKeyProto(k))
	}
	return resp, nil
}

// RevokeApiKey revokes a key by id or prefix.
func (s *Server) RevokeApiKey(ctx context.Context, req *pushauthv1.RevokeApiKeyRequest) (*pushauthv1.RevokeApiKeyResponse, error) {
	k, err := s.rps.RevokeAPIKey(ctx, auth.ActorFrom(ctx), req.GetApiKey())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.RevokeApiKeyResponse{ApiKey: apiKeyProto(k)}, nil
}

func apiKeyProto(k store.APIKey) *pushauthv1.ApiKey {
	return &pushauthv1.ApiKey{
		Id:             k.ID,
		RelyingPartyId: k.RelyingPartyID,
		Prefix:         k.Prefix,
		Description:    k.Description,
		CreateTime:     timestamppb.New(k.CreatedAt),
		LastUsedTime:   wire.OptionalTime(k.LastUsedAt),
		RevokeTime:     wire.OptionalTime(k.RevokedAt),
	}
}
