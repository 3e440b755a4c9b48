// Package relyingparty manages the login servers that use pushauth: their
// policy and their API keys. Every change is audited in the same transaction.
package relyingparty

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/store"
)

// Defaults and bounds of a policy.
const (
	DefaultApprovalTTL = 120 * time.Second
	MinApprovalTTL     = 10 * time.Second
	MaxApprovalTTL     = 10 * time.Minute
)

// APIKeyKind starts every API key ("pak_…").
const APIKeyKind = "pak"

// touchEvery bounds how often an API key's last use is written.
const touchEvery = time.Minute

// Service manages relying parties and their keys.
type Service struct {
	store store.Store
	now   func() time.Time
	pub   events.Publisher // nil: revocations are not announced
}

// New returns a Service on st, reading time from now. pub announces revoked
// keys to every replica (see events.Revocations); nil announces nothing.
func New(st store.Store, now func() time.Time, pub events.Publisher) *Service {
	return &Service{store: st, now: now, pub: pub}
}

// DefaultPolicy is the policy of a relying party that asked for nothing.
func DefaultPolicy() store.Policy {
	return store.Policy{NumberMatching: store.NumberMatchingNone, ApprovalTTL: DefaultApprovalTTL}
}

// CheckPolicy reports the first problem of p, naming the field.
func CheckPolicy(p store.Policy) error {
	switch p.NumberMatching {
	case store.NumberMatchingNone, store.NumberMatchingNumber, store.NumberMatchingCode:
	default:
		return fault.Invalid("policy.number_matching", fmt.Sprintf("unknown mode %q", p.NumberMatching))
	}
	if p.ApprovalTTL < MinApprovalTTL || p.ApprovalTTL > MaxApprovalTTL {
		return fault.Invalid("policy.approval_ttl", fmt.Sprintf("must be between %s and %s", MinApprovalTTL, MaxApprovalTTL))
	}
	return nil
}

// Create registers a relying party. A taken name is AlreadyExists.
func (s *Service) Create(ctx context.Context, actor, name, displayName string, p store.Policy) (store.RelyingParty, error) {
	if err := CheckPolicy(p); err != nil {
		return store.RelyingParty{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	rp := store.RelyingParty{
		ID:          secret.NewID("rp", now.UnixMilli()),
		Name:        name,
		DisplayName: displayName,
		Policy:      p,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	err := s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.CreateRelyingParty(ctx, rp); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{
			Actor: actor, Action: "relying_party.created", RelyingPartyID: rp.ID, Target: rp.ID,
			Details: policyDetails(map[string]string{"name": name}, p),
		})
	})
	if errors.Is(err, store.ErrConflict) {
		return store.RelyingParty{}, fault.Newf(fault.AlreadyExists, "a relying party named %q already exists", name)
	}
	if err != nil {
		return store.RelyingParty{}, fmt.Errorf("create relying party: %w", err)
	}
	return rp, nil
}

// Resolve finds a relying party by id ("rp_…") or by name.
func (s *Service) Resolve(ctx context.Context, idOrName string) (store.RelyingParty, error) {
	var rp store.RelyingParty
	var err error
	if strings.HasPrefix(idOrName, "rp_") {
		rp, err = s.store.GetRelyingParty(ctx, idOrName)
	} else {
		rp, err = s.store.GetRelyingPartyByName(ctx, idOrName)
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.RelyingParty{}, fault.Newf(fault.NotFound, "relying party %q not found", idOrName)
	}
	return rp, err
}

// List returns up to limit relying parties after afterID, in creation order.
func (s *Service) List(ctx context.Context, afterID string, limit int) ([]store.RelyingParty, error) {
	return s.store.ListRelyingParties(ctx, afterID, limit)
}

// UpdatePolicy applies change to the policy of the relying party idOrName.
func (s *Service) UpdatePolicy(ctx context.Context, actor, idOrName string, change func(*store.Policy)) (store.RelyingParty, error) {
	rp, err := s.Resolve(ctx, idOrName)
	if err != nil {
		return store.RelyingParty{}, err
	}
	err = s.store.InTx(ctx, func(tx store.Store) error {
		// Re-read inside the transaction so concurrent partial updates compose.
		cur, err := tx.GetRelyingParty(ctx, rp.ID)
		if err != nil {
			return err
		}
		change(&cur.Policy)
		if err := CheckPolicy(cur.Policy); err != nil {
			return err
		}
		cur.UpdatedAt = s.now().UTC().Truncate(time.Microsecond)
		if err := tx.UpdateRelyingParty(ctx, cur); err != nil {
			return err
		}
		rp = cur
		return audit.Write(ctx, tx, cur.UpdatedAt, audit.Entry{
			Actor: actor, Action: "relying_party.policy_updated", RelyingPartyID: cur.ID, Target: cur.ID,
			Details: policyDetails(map[string]string{}, cur.Policy),
		})
	})
	if err != nil {
		return store.RelyingParty{}, fmt.Errorf("update policy: %w", err)
	}
	if s.pub != nil {
		// Replicas cache the relying party with its API keys for a few
		// seconds; this drops it at once.
		if err := events.AnnounceRevocation(ctx, s.pub, events.Revocation{Kind: events.ChangedRelyingParty, ID: rp.ID}); err != nil {
			slog.WarnContext(ctx, "announce policy change", "relying_party_id", rp.ID, "err", err)
		}
	}
	return rp, nil
}

func policyDetails(d map[string]string, p store.Policy) map[string]string {
	d["number_matching"] = string(p.NumberMatching)
	d["approval_ttl"] = p.ApprovalTTL.String()
	d["allow_location_automation"] = strconv.FormatBool(p.AllowLocationAutomation)
	d["allow_backup_restore"] = strconv.FormatBool(p.AllowBackupRestore)
	d["approvals_per_minute"] = strconv.Itoa(p.ApprovalsPerMinute)
	d["approvals_per_hour"] = strconv.Itoa(p.ApprovalsPerHour)
	return d
}
