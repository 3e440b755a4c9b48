package admin

import (
	"context"
	"fmt"

	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/paging"
	"github.com/pushauth/pushauth/internal/relyingparty"
	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// CreateRelyingParty registers a relying party.
func (s *Server) CreateRelyingParty(ctx context.Context, req *pushauthv1.CreateRelyingPartyRequest) (*pushauthv1.CreateRelyingPartyResponse, error) {
	p := relyingparty.DefaultPolicy()
	if req.GetPolicy() != nil {
		applyPolicy(&p, req.GetPolicy(), nil)
	}
	rp, err := s.rps.Create(ctx, auth.ActorFrom(ctx), req.GetName(), req.GetDisplayName(), p)
	if err != nil {
		return nil, err
	}
	return &pushauthv1.CreateRelyingPartyResponse{RelyingParty: wire.RelyingParty(rp)}, nil
}

// GetRelyingParty returns one relying party.
func (s *Server) GetRelyingParty(ctx context.Context, req *pushauthv1.GetRelyingPartyRequest) (*pushauthv1.GetRelyingPartyResponse, error) {
	rp, err := s.rps.Resolve(ctx, req.GetRelyingParty())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.GetRelyingPartyResponse{RelyingParty: wire.RelyingParty(rp)}, nil
}

// ListRelyingParties pages through relying parties.
func (s *Server) ListRelyingParties(ctx context.Context, req *pushauthv1.ListRelyingPartiesRequest) (*pushauthv1.ListRelyingPartiesResponse, error) {
	after, err := paging.Decode("rp", req.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := paging.Size(req.GetPageSize(), 50, 500)
	rps, err := s.rps.List(ctx, after, size+1)
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListRelyingPartiesResponse{}
	if len(rps) > size {
		rps = rps[:size]
		resp.NextPageToken = paging.Encode("rp", rps[size-1].ID)
	}
	for _, rp := range rps {
		resp.RelyingParties = append(resp.RelyingParties, wire.RelyingParty(rp))
	}
	return resp, nil
}

// policyFields are the RelyingPartyPolicy paths an update mask may name.
var policyFields = []string{"number_matching", "approval_ttl", "allow_location_automation", "allow_backup_restore", "approvals_per_minute", "approvals_per_hour"}

// UpdateRelyingPartyPolicy changes the masked fields of a policy.
func (s *Server) UpdateRelyingPartyPolicy(ctx context.Context, req *pushauthv1.UpdateRelyingPartyPolicyRequest) (*pushauthv1.UpdateRelyingPartyPolicyResponse, error) {
	paths := req.GetUpdateMask().GetPaths()
	for _, p := range paths {
		if !contains(policyFields, p) {
			return nil, fault.Invalid("update_mask", fmt.Sprintf("unknown policy field %q; known: %v", p, policyFields))
		}
	}
	if len(paths) == 0 {
		paths = policyFields
	}
	// A replaced policy with an unset mode or TTL takes the defaults, not "unspecified".
	in := req.GetPolicy()
	rp, err := s.rps.UpdatePolicy(ctx, auth.ActorFrom(ctx), req.GetRelyingParty(), func(p *store.Policy) {
		applyPolicy(p, in, paths)
	})
	if err != nil {
		return nil, err
	}
	return &pushauthv1.UpdateRelyingPartyPolicyResponse{RelyingParty: wire.RelyingParty(rp)}, nil
}

// applyPolicy copies the fields of in named by paths (all when nil) into p.
// Unset mode and TTL mean the defaults.
func applyPolicy(p *store.Policy, in *pushauthv1.RelyingPartyPolicy, paths []string) {
	want := func(f string) bool { return paths == nil || contains(paths, f) }
	if want("number_matching") {
		p.NumberMatching = numberMatchingFromProto(in.GetNumberMatching())
	}
	if want("approval_ttl") {
		p.ApprovalTTL = relyingparty.DefaultApprovalTTL
		if in.GetApprovalTtl() != nil {
			p.ApprovalTTL = in.GetApprovalTtl().AsDuration()
		}
	}
	if want("allow_location_automation") {
		p.AllowLocationAutomation = in.GetAllowLocationAutomation()
	}
	if want("allow_backup_restore") {
		p.AllowBackupRestore = in.GetAllowBackupRestore()
	}
	if want("approvals_per_minute") {
		p.ApprovalsPerMinute = int(in.GetApprovalsPerMinute())
	}
	if want("approvals_per_hour") {
		p.ApprovalsPerHour = int(in.GetApprovalsPerHour())
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func numberMatchingFromProto(m pushauthv1.NumberMatchingMode) store.NumberMatching {
	switch m {
	case pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER:
		return store.NumberMatchingNumber
	case pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE:
		return store.NumberMatchingCode
	default:
		return store.NumberMatchingNone
	}
}
