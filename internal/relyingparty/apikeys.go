package relyingparty

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/store"
)

// ErrBadAPIKey is returned by Authenticate for any key that does not work; it
// deliberately does not say why.
var ErrBadAPIKey = errors.New("relyingparty: invalid API key")

// ErrRevokedAPIKey is returned by Authenticate for a revoked key.
var ErrRevokedAPIKey = errors.New("relyingparty: API key revoked")

// CreateAPIKey issues a key for the relying party idOrName. The returned token
// is the only copy of the secret.
func (s *Service) CreateAPIKey(ctx context.Context, actor, idOrName, description string) (store.APIKey, string, error) {
	rp, err := s.Resolve(ctx, idOrName)
	if err != nil {
		return store.APIKey{}, "", err
	}
	sec, err := secret.New(APIKeyKind)
	if err != nil {
		return store.APIKey{}, "", fmt.Errorf("make api key: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	k := store.APIKey{
		ID:             secret.NewID("key", now.UnixMilli()),
		RelyingPartyID: rp.ID,
		Prefix:         sec.Prefix,
		Hash:           sec.Hash,
		Description:    description,
		CreatedAt:      now,
	}
	err = s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.CreateAPIKey(ctx, k); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{
			Actor: actor, Action: "api_key.created", RelyingPartyID: rp.ID, Target: k.ID,
			Details: map[string]string{"prefix": k.Prefix},
		})
	})
	if err != nil {
		return store.APIKey{}, "", fmt.Errorf("create api key: %w", err)
	}
	return k, sec.Token, nil
}

// ListAPIKeys lists the keys of the relying party idOrName.
func (s *Service) ListAPIKeys(ctx context.Context, idOrName string, includeRevoked bool) ([]store.APIKey, error) {
	rp, err := s.Resolve(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	return s.store.ListAPIKeys(ctx, rp.ID, includeRevoked)
}

// RevokeAPIKey revokes a key by id ("key_…") or prefix ("pak_…"). Revoking a
// revoked key returns it unchanged and writes no second audit event.
func (s *Service) RevokeAPIKey(ctx context.Context, actor, idOrPrefix string) (store.APIKey, error) {
	var k store.APIKey
	var err error
	if strings.HasPrefix(idOrPrefix, APIKeyKind+"_") {
		k, err = s.store.GetAPIKeyByPrefix(ctx, idOrPrefix)
	} else {
		k, err = s.store.GetAPIKey(ctx, idOrPrefix)
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.APIKey{}, fault.Newf(fault.NotFound, "API key %q not found", idOrPrefix)
	}
	if err != nil {
		return store.APIKey{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	err = s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.RevokeAPIKey(ctx, k.ID, now); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{
			Actor: actor, Action: "api_key.revoked", RelyingPartyID: k.RelyingPartyID, Target: k.ID,
			Details: map[string]string{"prefix": k.Prefix},
		})
	})
	if err != nil && !errors.Is(err, store.ErrConflict) {
		return store.APIKey{}, fmt.Errorf("revoke api key: %w", err)
	}
	// Also when it was revoked already: a repeat re-sends a lost notice.
	if s.pub != nil {
		if err := events.AnnounceRevocation(ctx, s.pub, events.Revocation{Kind: events.RevokedAPIKey, ID: k.ID}); err != nil {
			// Open streams still end at their next recheck.
			slog.WarnContext(ctx, "announce api key revocation", "api_key_id", k.ID, "err", err)
		}
	}
	return s.store.GetAPIKey(ctx, k.ID)
}

// Authenticate finds the relying party that owns token. Any failure is
// ErrBadAPIKey or ErrRevokedAPIKey, never more detail.
func (s *Service) Authenticate(ctx context.Context, token string) (store.RelyingParty, store.APIKey, error) {
	prefix, random, err := secret.Parse(APIKeyKind, token)
	if err != nil {
		return store.RelyingParty{}, store.APIKey{}, ErrBadAPIKey
	}
	k, err := s.store.GetAPIKeyByPrefix(ctx, prefix)
	if errors.Is(err, store.ErrNotFound) {
		return store.RelyingParty{}, store.APIKey{}, ErrBadAPIKey
	}
	if err != nil {
		return store.RelyingParty{}, store.APIKey{}, err
	}
	if !secret.Matches(random, k.Hash) {
		return store.RelyingParty{}, store.APIKey{}, ErrBadAPIKey
	}
	if !k.RevokedAt.IsZero() {
		return store.RelyingParty{}, store.APIKey{}, ErrRevokedAPIKey
	}
	rp, err := s.store.GetRelyingParty(ctx, k.RelyingPartyID)
	if err != nil {
		return store.RelyingParty{}, store.APIKey{}, err
	}
	if now := s.now(); now.Sub(k.LastUsedAt) >= touchEvery {
		if err := s.store.TouchAPIKey(ctx, k.ID, now.UTC().Truncate(time.Microsecond)); err != nil {
			return store.RelyingParty{}, store.APIKey{}, fmt.Errorf("touch api key: %w", err)
		}
	}
	return rp, k, nil
}
