package server_test

// End-to-end tests of AdminService through the real server (interceptors,
// validation, domain code, database) on every backend. Authentication is in
// auth_test.go, health/metrics/request ids in ops_test.go.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

func TestCreateRelyingParty(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := ts.AdminCtx(servertest.Context(t))

		t.Run("defaults", func(t *testing.T) {
			resp, err := ts.Admin.CreateRelyingParty(ctx, &pushauthv1.CreateRelyingPartyRequest{
				Name: "portal", DisplayName: "Mijn Portal",
			})
			if err != nil {
				t.Fatalf("CreateRelyingParty: %v", err)
			}
			rp := resp.GetRelyingParty()
			if !strings.HasPrefix(rp.GetId(), "rp_") {
				t.Errorf("id = %q, want rp_…", rp.GetId())
			}
			if rp.GetName() != "portal" || rp.GetDisplayName() != "Mijn Portal" {
				t.Errorf("name, display name = %q, %q", rp.GetName(), rp.GetDisplayName())
			}
			want := &pushauthv1.RelyingPartyPolicy{
				NumberMatching: pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NONE,
				ApprovalTtl:    durationpb.New(120 * time.Second),
			}
			if !proto.Equal(rp.GetPolicy(), want) {
				t.Errorf("policy = %v, want %v", rp.GetPolicy(), want)
			}
			now := ts.Clock.Now()
			if !rp.GetCreateTime().AsTime().Equal(now) || !rp.GetUpdateTime().AsTime().Equal(now) {
				t.Errorf("create, update time = %v, %v; want the clock's %v", rp.GetCreateTime().AsTime(), rp.GetUpdateTime().AsTime(), now)
			}
			got, err := ts.Admin.GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: rp.GetId()})
			if err != nil {
				t.Fatalf("GetRelyingParty: %v", err)
			}
			if !proto.Equal(got.GetRelyingParty(), rp) {
				t.Errorf("stored %v, created %v", got.GetRelyingParty(), rp)
			}
		})

		t.Run("explicit policy", func(t *testing.T) {
			policy := &pushauthv1.RelyingPartyPolicy{
				NumberMatching:          pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE,
				ApprovalTtl:             durationpb.New(45 * time.Second),
				AllowLocationAutomation: true,
				AllowBackupRestore:      true,
			}
			rp := ts.CreateRelyingParty(t, "shop", policy)
			if !proto.Equal(rp.GetPolicy(), policy) {
				t.Errorf("policy = %v, want %v", rp.GetPolicy(), policy)
			}
		})

		t.Run("duplicate name", func(t *testing.T) {
			ts.CreateRelyingParty(t, "taken", nil)
			_, err := ts.Admin.CreateRelyingParty(ctx, &pushauthv1.CreateRelyingPartyRequest{Name: "taken", DisplayName: "Again"})
			wantStatus(t, err, codes.AlreadyExists, `"taken"`)
		})

		t.Run("invalid", func(t *testing.T) {
			tests := []struct {
				name  string
				req   *pushauthv1.CreateRelyingPartyRequest
				field string
			}{
				{"empty name", &pushauthv1.CreateRelyingPartyRequest{DisplayName: "X"}, "name"},
				{"upper case name", &pushauthv1.CreateRelyingPartyRequest{Name: "Portal", DisplayName: "X"}, "name"},
				{"name with space", &pushauthv1.CreateRelyingPartyRequest{Name: "my portal", DisplayName: "X"}, "name"},
				{"one letter name", &pushauthv1.CreateRelyingPartyRequest{Name: "p", DisplayName: "X"}, "name"},
				{"name starting with digit", &pushauthv1.CreateRelyingPartyRequest{Name: "1portal", DisplayName: "X"}, "name"},
				{"empty display name", &pushauthv1.CreateRelyingPartyRequest{Name: "ok-name"}, "display_name"},
				{"long display name", &pushauthv1.CreateRelyingPartyRequest{Name: "ok-name", DisplayName: strings.Repeat("x", 101)}, "display_name"},
				{"ttl too short", &pushauthv1.CreateRelyingPartyRequest{Name: "ok-name", DisplayName: "X",
					Policy: &pushauthv1.RelyingPartyPolicy{ApprovalTtl: durationpb.New(5 * time.Second)}}, "policy.approval_ttl"},
				{"ttl too long", &pushauthv1.CreateRelyingPartyRequest{Name: "ok-name", DisplayName: "X",
					Policy: &pushauthv1.RelyingPartyPolicy{ApprovalTtl: durationpb.New(11 * time.Minute)}}, "policy.approval_ttl"},
				{"unknown number matching", &pushauthv1.CreateRelyingPartyRequest{Name: "ok-name", DisplayName: "X",
					Policy: &pushauthv1.RelyingPartyPolicy{NumberMatching: 99}}, "policy.number_matching"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					_, err := ts.Admin.CreateRelyingParty(ctx, tt.req)
					wantInvalidField(t, err, tt.field)
				})
			}
			if _, err := ts.Admin.GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: "ok-name"}); codeOf(err) != codes.NotFound {
				t.Errorf("after invalid creates, GetRelyingParty(ok-name) = %v, want NotFound", err)
			}
		})
	})
}

func TestGetRelyingParty(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := ts.AdminCtx(servertest.Context(t))
		rp := ts.CreateRelyingParty(t, "portal", nil)

		for _, ref := range []string{rp.GetId(), rp.GetName()} {
			resp, err := ts.Admin.GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: ref})
			if err != nil {
				t.Fatalf("GetRelyingParty(%q): %v", ref, err)
			}
			if !proto.Equal(resp.GetRelyingParty(), rp) {
				t.Errorf("GetRelyingParty(%q) = %v, want %v", ref, resp.GetRelyingParty(), rp)
			}
		}
		for _, ref := range []string{"nobody", "rp_00000000000000000000000000"} {
			_, err := ts.Admin.GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: ref})
			wantStatus(t, err, codes.NotFound, ref)
		}
		_, err := ts.Admin.GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{})
		wantInvalidField(t, err, "relying_party")
	})
}

func TestListRelyingParties(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := ts.AdminCtx(servertest.Context(t))

		empty, err := ts.Admin.ListRelyingParties(ctx, &pushauthv1.ListRelyingPartiesRequest{})
		if err != nil {
			t.Fatalf("ListRelyingParties on empty: %v", err)
		}
		if len(empty.GetRelyingParties()) != 0 || empty.GetNextPageToken() != "" {
			t.Errorf("empty list = %v", empty)
		}

		var created []string
		for i := range 5 {
			// IDs start with the creation time; a later millisecond sorts later.
			ts.Clock.Advance(time.Second)
			created = append(created, ts.CreateRelyingParty(t, fmt.Sprintf("rp-%d", i), nil).GetId())
		}

		var got []string
		var pageSizes []int
		token := ""
		for page := 0; ; page++ {
			if page > 5 {
				t.Fatalf("more pages than relying parties; tokens do not advance")
			}
			resp, err := ts.Admin.ListRelyingParties(ctx, &pushauthv1.ListRelyingPartiesRequest{PageSize: 2, PageToken: token})
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			pageSizes = append(pageSizes, len(resp.GetRelyingParties()))
			for _, rp := range resp.GetRelyingParties() {
				got = append(got, rp.GetId())
			}
			token = resp.GetNextPageToken()
			if token == "" {
				break
			}
		}
		if !slices.Equal(pageSizes, []int{2, 2, 1}) {
			t.Errorf("page sizes = %v, want [2 2 1]", pageSizes)
		}
		if !slices.Equal(got, created) {
			t.Errorf("listed %v, want creation order %v (no duplicates, none missing)", got, created)
		}

		all, err := ts.Admin.ListRelyingParties(ctx, &pushauthv1.ListRelyingPartiesRequest{})
		if err != nil {
			t.Fatalf("ListRelyingParties default size: %v", err)
		}
		if len(all.GetRelyingParties()) != 5 || all.GetNextPageToken() != "" {
			t.Errorf("default page: %d relying parties, next token %q; want 5 and none", len(all.GetRelyingParties()), all.GetNextPageToken())
		}

		t.Run("bad page token", func(t *testing.T) {
			audit, err := ts.Admin.ListAuditEvents(ctx, &pushauthv1.ListAuditEventsRequest{PageSize: 1})
			if err != nil || audit.GetNextPageToken() == "" {
				t.Fatalf("ListAuditEvents for a foreign token: %v, token %q", err, audit.GetNextPageToken())
			}
			for _, tok := range []string{"garbage!", "bm90LWEtdG9rZW4", audit.GetNextPageToken()} {
				_, err := ts.Admin.ListRelyingParties(ctx, &pushauthv1.ListRelyingPartiesRequest{PageToken: tok})
				wantInvalidField(t, err, "page_token")
			}
		})
		t.Run("page size too big", func(t *testing.T) {
			_, err := ts.Admin.ListRelyingParties(ctx, &pushauthv1.ListRelyingPartiesRequest{PageSize: 501})
			wantInvalidField(t, err, "page_size")
		})
	})
}

func TestUpdateRelyingPartyPolicy(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := ts.AdminCtx(servertest.Context(t))
		start := &pushauthv1.RelyingPartyPolicy{
			NumberMatching:          pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER,
			ApprovalTtl:             durationpb.New(30 * time.Second),
			AllowLocationAutomation: true,
			AllowBackupRestore:      false,
		}
		// Every update sends this policy; the mask decides what is taken.
		change := &pushauthv1.RelyingPartyPolicy{
			NumberMatching:          pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE,
			ApprovalTtl:             durationpb.New(300 * time.Second),
			AllowLocationAutomation: false,
			AllowBackupRestore:      true,
		}
		policy := func(nm pushauthv1.NumberMatchingMode, ttl time.Duration, loc, backup bool) *pushauthv1.RelyingPartyPolicy {
			return &pushauthv1.RelyingPartyPolicy{NumberMatching: nm, ApprovalTtl: durationpb.New(ttl), AllowLocationAutomation: loc, AllowBackupRestore: backup}
		}
		const (
			none   = pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NONE
			number = pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER
			code   = pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE
		)
		tests := []struct {
			name   string
			paths  []string
			policy *pushauthv1.RelyingPartyPolicy
			want   *pushauthv1.RelyingPartyPolicy
		}{
			{"number_matching only", []string{"number_matching"}, change, policy(code, 30*time.Second, true, false)},
			{"approval_ttl only", []string{"approval_ttl"}, change, policy(number, 300*time.Second, true, false)},
			{"allow_location_automation only", []string{"allow_location_automation"}, change, policy(number, 30*time.Second, false, false)},
			{"allow_backup_restore only", []string{"allow_backup_restore"}, change, policy(number, 30*time.Second, true, true)},
			{"two fields", []string{"approval_ttl", "allow_backup_restore"}, change, policy(number, 300*time.Second, true, true)},
			{"empty mask replaces all", nil, change, change},
			{"masked but unset takes defaults", []string{"number_matching", "approval_ttl"}, &pushauthv1.RelyingPartyPolicy{}, policy(none, 120*time.Second, true, false)},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				rp := ts.CreateRelyingParty(t, fmt.Sprintf("update-%d", i), start)
				at := ts.Clock.Advance(time.Minute)
				req := &pushauthv1.UpdateRelyingPartyPolicyRequest{RelyingParty: rp.GetName(), Policy: tt.policy}
				if tt.paths != nil {
					req.UpdateMask = &fieldmaskpb.FieldMask{Paths: tt.paths}
				}
				resp, err := ts.Admin.UpdateRelyingPartyPolicy(ctx, req)
				if err != nil {
					t.Fatalf("UpdateRelyingPartyPolicy: %v", err)
				}
				got := resp.GetRelyingParty()
				if !proto.Equal(got.GetPolicy(), tt.want) {
					t.Errorf("policy = %v, want %v", got.GetPolicy(), tt.want)
				}
				if !got.GetUpdateTime().AsTime().Equal(at) || !got.GetCreateTime().AsTime().Equal(rp.GetCreateTime().AsTime()) {
					t.Errorf("update time %v (want %v), create time %v (want %v)",
						got.GetUpdateTime().AsTime(), at, got.GetCreateTime().AsTime(), rp.GetCreateTime().AsTime())
				}
				if got.GetName() != rp.GetName() || got.GetDisplayName() != rp.GetDisplayName() {
					t.Errorf("name, display name changed to %q, %q", got.GetName(), got.GetDisplayName())
				}
				stored, err := ts.Admin.GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: rp.GetId()})
				if err != nil {
					t.Fatalf("GetRelyingParty: %v", err)
				}
				if !proto.Equal(stored.GetRelyingParty(), got) {
					t.Errorf("stored %v, update returned %v", stored.GetRelyingParty(), got)
				}
			})
		}

		t.Run("errors leave the policy alone", func(t *testing.T) {
			rp := ts.CreateRelyingParty(t, "unchanged", start)
			errTests := []struct {
				name  string
				req   *pushauthv1.UpdateRelyingPartyPolicyRequest
				code  codes.Code
				field string
			}{
				{"unknown mask path", &pushauthv1.UpdateRelyingPartyPolicyRequest{RelyingParty: rp.GetId(), Policy: change,
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"approval_ttl", "display_name"}}}, codes.InvalidArgument, "update_mask"},
				{"prefixed mask path", &pushauthv1.UpdateRelyingPartyPolicyRequest{RelyingParty: rp.GetId(), Policy: change,
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"policy.approval_ttl"}}}, codes.InvalidArgument, "update_mask"},
				{"no policy", &pushauthv1.UpdateRelyingPartyPolicyRequest{RelyingParty: rp.GetId()}, codes.InvalidArgument, "policy"},
				{"ttl out of range", &pushauthv1.UpdateRelyingPartyPolicyRequest{RelyingParty: rp.GetId(),
					Policy: &pushauthv1.RelyingPartyPolicy{ApprovalTtl: durationpb.New(5 * time.Second)}}, codes.InvalidArgument, "policy.approval_ttl"},
				{"unknown relying party", &pushauthv1.UpdateRelyingPartyPolicyRequest{RelyingParty: "nobody", Policy: change}, codes.NotFound, ""},
			}
			for _, tt := range errTests {
				t.Run(tt.name, func(t *testing.T) {
					_, err := ts.Admin.UpdateRelyingPartyPolicy(ctx, tt.req)
					if tt.field != "" {
						wantInvalidField(t, err, tt.field)
					} else {
						wantStatus(t, err, tt.code)
					}
				})
			}
			stored, err := ts.Admin.GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: rp.GetId()})
			if err != nil {
				t.Fatalf("GetRelyingParty: %v", err)
			}
			if !proto.Equal(stored.GetRelyingParty(), rp) {
				t.Errorf("after failed updates: %v, want unchanged %v", stored.GetRelyingParty(), rp)
			}
			events := listAudit(t, ts, &pushauthv1.ListAuditEventsRequest{RelyingParty: rp.GetId()})
			if len(events) != 1 || events[0].GetAction() != "relying_party.created" {
				t.Errorf("audit events of %s = %v, want only its creation", rp.GetName(), actions(events))
			}
		})

		// Partial updates of different fields that run at the same time must
		// all take effect: none may write back a stale copy of another's field.
		t.Run("concurrent partial updates compose", func(t *testing.T) {
			const rounds = 8
			updates := []struct {
				path   string
				policy *pushauthv1.RelyingPartyPolicy
			}{
				{"number_matching", &pushauthv1.RelyingPartyPolicy{NumberMatching: code}},
				{"approval_ttl", &pushauthv1.RelyingPartyPolicy{ApprovalTtl: durationpb.New(42 * time.Second)}},
				{"allow_location_automation", &pushauthv1.RelyingPartyPolicy{AllowLocationAutomation: true}},
				{"allow_backup_restore", &pushauthv1.RelyingPartyPolicy{AllowBackupRestore: true}},
			}
			want := policy(code, 42*time.Second, true, true)
			var ids []string
			for i := range rounds {
				ids = append(ids, ts.CreateRelyingParty(t, fmt.Sprintf("concurrent-%d", i), nil).GetId())
			}
			startCh := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, rounds*len(updates))
			for _, id := range ids {
				for _, u := range updates {
					wg.Go(func() {
						<-startCh
						_, err := ts.Admin.UpdateRelyingPartyPolicy(ctx, &pushauthv1.UpdateRelyingPartyPolicyRequest{
							RelyingParty: id, Policy: u.policy, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{u.path}},
						})
						if err != nil {
							errs <- fmt.Errorf("update %s of %s: %w", u.path, id, err)
						}
					})
				}
			}
			close(startCh)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for _, id := range ids {
				resp, err := ts.Admin.GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: id})
				if err != nil {
					t.Fatalf("GetRelyingParty: %v", err)
				}
				if !proto.Equal(resp.GetRelyingParty().GetPolicy(), want) {
					t.Errorf("%s: policy = %v, want every update applied: %v", id, resp.GetRelyingParty().GetPolicy(), want)
				}
			}
		})
	})
}

func TestAPIKeys(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := ts.AdminCtx(servertest.Context(t))
		rp := ts.CreateRelyingParty(t, "portal", nil)

		created, err := ts.Admin.CreateApiKey(ctx, &pushauthv1.CreateApiKeyRequest{RelyingParty: "portal", Description: "login server 1"})
		if err != nil {
			t.Fatalf("CreateApiKey: %v", err)
		}
		key, secret := created.GetApiKey(), created.GetSecret()
		if !strings.HasPrefix(key.GetId(), "key_") || !strings.HasPrefix(key.GetPrefix(), "pak_") {
			t.Errorf("id, prefix = %q, %q; want key_…, pak_…", key.GetId(), key.GetPrefix())
		}
		if !strings.HasPrefix(secret, key.GetPrefix()+".") || len(secret) < len(key.GetPrefix())+40 {
			t.Errorf("secret %q does not extend prefix %q with a long random part", secret, key.GetPrefix())
		}
		if key.GetRelyingPartyId() != rp.GetId() || key.GetDescription() != "login server 1" {
			t.Errorf("relying party, description = %q, %q", key.GetRelyingPartyId(), key.GetDescription())
		}
		if !key.GetCreateTime().AsTime().Equal(ts.Clock.Now()) || key.GetLastUsedTime() != nil || key.GetRevokeTime() != nil {
			t.Errorf("times: create %v, last used %v, revoke %v", key.GetCreateTime(), key.GetLastUsedTime(), key.GetRevokeTime())
		}
		_, random, _ := strings.Cut(secret, ".")

		listKeys := func(t *testing.T, includeRevoked bool) []*pushauthv1.ApiKey {
			t.Helper()
			resp, err := ts.Admin.ListApiKeys(ctx, &pushauthv1.ListApiKeysRequest{RelyingParty: rp.GetId(), IncludeRevoked: includeRevoked})
			if err != nil {
				t.Fatalf("ListApiKeys: %v", err)
			}
			if b, _ := proto.Marshal(resp); strings.Contains(string(b), random) {
				t.Errorf("ListApiKeys response contains the secret")
			}
			return resp.GetApiKeys()
		}

		keys := listKeys(t, false)
		if len(keys) != 1 || !proto.Equal(keys[0], key) {
			t.Fatalf("ListApiKeys = %v, want [%v]", keys, key)
		}

		// Using the key records its use.
		usedAt := ts.Clock.Advance(time.Minute)
		if _, err := ts.RP.WhoAmI(ts.WithToken(ctx, secret), &pushauthv1.WhoAmIRequest{}); err != nil {
			t.Fatalf("WhoAmI with the new key: %v", err)
		}
		if keys := listKeys(t, false); len(keys) != 1 || !keys[0].GetLastUsedTime().AsTime().Equal(usedAt) {
			t.Errorf("after use: %v, want last used %v", keys, usedAt)
		}

		second, secondSecret := ts.CreateAPIKey(t, rp.GetId())
		if len(listKeys(t, false)) != 2 {
			t.Errorf("want 2 keys after creating a second")
		}

		t.Run("revoke", func(t *testing.T) {
			for _, ref := range []string{key.GetId(), second.GetPrefix()} {
				revokedAt := ts.Clock.Advance(time.Minute)
				for range 2 { // twice is harmless
					resp, err := ts.Admin.RevokeApiKey(ctx, &pushauthv1.RevokeApiKeyRequest{ApiKey: ref})
					if err != nil {
						t.Fatalf("RevokeApiKey(%q): %v", ref, err)
					}
					if !resp.GetApiKey().GetRevokeTime().AsTime().Equal(revokedAt) {
						t.Errorf("RevokeApiKey(%q): revoke time %v, want %v", ref, resp.GetApiKey().GetRevokeTime(), revokedAt)
					}
					ts.Clock.Advance(time.Second) // a second revoke must not move the time
				}
			}
			if keys := listKeys(t, false); len(keys) != 0 {
				t.Errorf("ListApiKeys without revoked = %v, want none", keys)
			}
			if keys := listKeys(t, true); len(keys) != 2 || keys[0].GetRevokeTime() == nil || keys[1].GetRevokeTime() == nil {
				t.Errorf("ListApiKeys with revoked = %v, want both, revoked", keys)
			}
			for _, s := range []string{secret, secondSecret} {
				_, err := ts.RP.WhoAmI(ts.WithToken(ctx, s), &pushauthv1.WhoAmIRequest{})
				wantStatus(t, err, codes.PermissionDenied)
			}
			var revokes []*pushauthv1.AuditEvent
			for _, e := range listAudit(t, ts, &pushauthv1.ListAuditEventsRequest{RelyingParty: rp.GetId()}) {
				if e.GetAction() == "api_key.revoked" {
					revokes = append(revokes, e)
				}
			}
			if len(revokes) != 2 {
				t.Errorf("%d api_key.revoked events, want one per key: %v", len(revokes), revokes)
			}
		})

		t.Run("concurrent revokes audit once", func(t *testing.T) {
			k, _ := ts.CreateAPIKey(t, rp.GetId())
			const n = 6
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for range n {
				wg.Go(func() {
					if _, err := ts.Admin.RevokeApiKey(ctx, &pushauthv1.RevokeApiKeyRequest{ApiKey: k.GetId()}); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("concurrent RevokeApiKey: %v", err)
			}
			count := 0
			for _, e := range listAudit(t, ts, &pushauthv1.ListAuditEventsRequest{RelyingParty: rp.GetId()}) {
				if e.GetAction() == "api_key.revoked" && e.GetTarget() == k.GetId() {
					count++
				}
			}
			if count != 1 {
				t.Errorf("%d api_key.revoked events for %s, want 1", count, k.GetId())
			}
		})

		t.Run("errors", func(t *testing.T) {
			_, err := ts.Admin.CreateApiKey(ctx, &pushauthv1.CreateApiKeyRequest{RelyingParty: "nobody"})
			wantStatus(t, err, codes.NotFound, "nobody")
			_, err = ts.Admin.ListApiKeys(ctx, &pushauthv1.ListApiKeysRequest{RelyingParty: "nobody"})
			wantStatus(t, err, codes.NotFound, "nobody")
			for _, ref := range []string{"key_00000000000000000000000000", "pak_nothere"} {
				_, err = ts.Admin.RevokeApiKey(ctx, &pushauthv1.RevokeApiKeyRequest{ApiKey: ref})
				wantStatus(t, err, codes.NotFound, ref)
			}
			_, err = ts.Admin.RevokeApiKey(ctx, &pushauthv1.RevokeApiKeyRequest{})
			wantInvalidField(t, err, "api_key")
			_, err = ts.Admin.CreateApiKey(ctx, &pushauthv1.CreateApiKeyRequest{RelyingParty: rp.GetId(), Description: strings.Repeat("d", 201)})
			wantInvalidField(t, err, "description")
		})
	})
}

func TestListAuditEvents(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		base := servertest.Context(t)
		admin := func(requestID string) context.Context {
			return servertest.WithRequestID(ts.AdminCtx(base), requestID)
		}

		// A history spread over hours of the test clock, each step with its
		// own request id.
		t0 := ts.Clock.Now()
		alpha, err := ts.Admin.CreateRelyingParty(admin("req-create-alpha"), &pushauthv1.CreateRelyingPartyRequest{Name: "alpha", DisplayName: "Alpha"})
		if err != nil {
			t.Fatal(err)
		}
		t1 := ts.Clock.Advance(time.Hour)
		beta, err := ts.Admin.CreateRelyingParty(admin("req-create-beta"), &pushauthv1.CreateRelyingPartyRequest{Name: "beta", DisplayName: "Beta"})
		if err != nil {
			t.Fatal(err)
		}
		t2 := ts.Clock.Advance(time.Hour)
		key, err := ts.Admin.CreateApiKey(admin("req-key-alpha"), &pushauthv1.CreateApiKeyRequest{RelyingParty: "alpha"})
		if err != nil {
			t.Fatal(err)
		}
		t3 := ts.Clock.Advance(time.Hour)
		if _, err := ts.Admin.UpdateRelyingPartyPolicy(admin("req-update-beta"), &pushauthv1.UpdateRelyingPartyPolicyRequest{
			RelyingParty: "beta", Policy: &pushauthv1.RelyingPartyPolicy{AllowBackupRestore: true},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"allow_backup_restore"}},
		}); err != nil {
			t.Fatal(err)
		}
		t4 := ts.Clock.Advance(time.Hour)
		if _, err := ts.Admin.RevokeApiKey(admin("req-revoke-alpha"), &pushauthv1.RevokeApiKeyRequest{ApiKey: key.GetApiKey().GetPrefix()}); err != nil {
			t.Fatal(err)
		}

		type want struct {
			action, rp, target, requestID string
			at                            time.Time
		}
		history := []want{ // newest first
			{"api_key.revoked", alpha.GetRelyingParty().GetId(), key.GetApiKey().GetId(), "req-revoke-alpha", t4},
			{"relying_party.policy_updated", beta.GetRelyingParty().GetId(), beta.GetRelyingParty().GetId(), "req-update-beta", t3},
			{"api_key.created", alpha.GetRelyingParty().GetId(), key.GetApiKey().GetId(), "req-key-alpha", t2},
			{"relying_party.created", beta.GetRelyingParty().GetId(), beta.GetRelyingParty().GetId(), "req-create-beta", t1},
			{"relying_party.created", alpha.GetRelyingParty().GetId(), alpha.GetRelyingParty().GetId(), "req-create-alpha", t0},
		}
		check := func(t *testing.T, got []*pushauthv1.AuditEvent, want []want) {
			t.Helper()
			if len(got) != len(want) {
				t.Fatalf("got %d events %v, want %d", len(got), actions(got), len(want))
			}
			for i, e := range got {
				w := want[i]
				if e.GetAction() != w.action || e.GetRelyingPartyId() != w.rp || e.GetTarget() != w.target ||
					e.GetRequestId() != w.requestID || !e.GetTime().AsTime().Equal(w.at) || e.GetActor() != "admin" {
					t.Errorf("event %d = %v, want %+v by admin", i, e, w)
				}
			}
		}

		t.Run("all, newest first", func(t *testing.T) {
			events := listAudit(t, ts, &pushauthv1.ListAuditEventsRequest{})
			check(t, events, history)
			if e := events[3]; e.GetDetails()["name"] != "beta" || e.GetDetails()["approval_ttl"] != "2m0s" || e.GetDetails()["number_matching"] != "NONE" {
				t.Errorf("creation details = %v", e.GetDetails())
			}
			if e := events[2]; e.GetDetails()["prefix"] != key.GetApiKey().GetPrefix() {
				t.Errorf("api_key.created details = %v, want the prefix", e.GetDetails())
			}
		})

		t.Run("no secrets", func(t *testing.T) {
			secret := key.GetSecret()
			_, random, _ := strings.Cut(secret, ".")
			for _, e := range listAudit(t, ts, &pushauthv1.ListAuditEventsRequest{}) {
				b, err := proto.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(b), random) {
					t.Errorf("event %v contains the API key secret", e)
				}
			}
		})

		t.Run("by relying party", func(t *testing.T) {
			for _, ref := range []string{"alpha", alpha.GetRelyingParty().GetId()} {
				events := listAudit(t, ts, &pushauthv1.ListAuditEventsRequest{RelyingParty: ref})
				check(t, events, []want{history[0], history[2], history[4]})
			}
			_, err := ts.Admin.ListAuditEvents(ts.AdminCtx(base), &pushauthv1.ListAuditEventsRequest{RelyingParty: "nobody"})
			wantStatus(t, err, codes.NotFound, "nobody")
		})

		t.Run("by time window", func(t *testing.T) {
			events := listAudit(t, ts, &pushauthv1.ListAuditEventsRequest{StartTime: timestamppb.New(t1), EndTime: timestamppb.New(t3)})
			check(t, events, []want{history[2], history[3]}) // start inclusive, end exclusive
			events = listAudit(t, ts, &pushauthv1.ListAuditEventsRequest{StartTime: timestamppb.New(t3)})
			check(t, events, history[:2])
			events = listAudit(t, ts, &pushauthv1.ListAuditEventsRequest{EndTime: timestamppb.New(t1)})
			check(t, events, history[4:])
			events = listAudit(t, ts, &pushauthv1.ListAuditEventsRequest{RelyingParty: "beta", StartTime: timestamppb.New(t2)})
			check(t, events, history[1:2])

			_, err := ts.Admin.ListAuditEvents(ts.AdminCtx(base), &pushauthv1.ListAuditEventsRequest{StartTime: timestamppb.New(t2), EndTime: timestamppb.New(t1)})
			wantInvalidField(t, err, "end_time")
		})

		t.Run("paging", func(t *testing.T) {
			var got []*pushauthv1.AuditEvent
			var sizes []int
			token := ""
			for page := 0; ; page++ {
				if page > len(history) {
					t.Fatal("more pages than events; tokens do not advance")
				}
				resp, err := ts.Admin.ListAuditEvents(ts.AdminCtx(base), &pushauthv1.ListAuditEventsRequest{PageSize: 2, PageToken: token})
				if err != nil {
					t.Fatalf("page %d: %v", page, err)
				}
				sizes = append(sizes, len(resp.GetEvents()))
				got = append(got, resp.GetEvents()...)
				if token = resp.GetNextPageToken(); token == "" {
					break
				}
			}
			if !slices.Equal(sizes, []int{2, 2, 1}) {
				t.Errorf("page sizes %v, want [2 2 1]", sizes)
			}
			check(t, got, history)

			// Paging composes with a filter.
			resp, err := ts.Admin.ListAuditEvents(ts.AdminCtx(base), &pushauthv1.ListAuditEventsRequest{RelyingParty: "alpha", PageSize: 2})
			if err != nil {
				t.Fatal(err)
			}
			next, err := ts.Admin.ListAuditEvents(ts.AdminCtx(base), &pushauthv1.ListAuditEventsRequest{RelyingParty: "alpha", PageSize: 2, PageToken: resp.GetNextPageToken()})
			if err != nil {
				t.Fatal(err)
			}
			check(t, append(resp.GetEvents(), next.GetEvents()...), []want{history[0], history[2], history[4]})
			if next.GetNextPageToken() != "" {
				t.Errorf("last page has a next token")
			}

			rps, err := ts.Admin.ListRelyingParties(ts.AdminCtx(base), &pushauthv1.ListRelyingPartiesRequest{PageSize: 1})
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range []string{"garbage!", rps.GetNextPageToken()} {
				_, err := ts.Admin.ListAuditEvents(ts.AdminCtx(base), &pushauthv1.ListAuditEventsRequest{PageToken: tok})
				wantInvalidField(t, err, "page_token")
			}
		})

		t.Run("request id without x-request-id", func(t *testing.T) {
			var header metadata.MD
			resp, err := ts.Admin.CreateRelyingParty(ts.AdminCtx(base), &pushauthv1.CreateRelyingPartyRequest{Name: "gamma", DisplayName: "Gamma"}, grpc.Header(&header))
			if err != nil {
				t.Fatal(err)
			}
			id := requestIDOf(header, nil)
			if !isGeneratedRequestID(id) {
				t.Fatalf("response header x-request-id = %q, want a generated id", id)
			}
			events := listAudit(t, ts, &pushauthv1.ListAuditEventsRequest{RelyingParty: resp.GetRelyingParty().GetId()})
			if len(events) != 1 || events[0].GetRequestId() != id {
				t.Errorf("events %v, want one with request id %q", events, id)
			}
		})
	})
}

// listAudit returns all audit events matching req (one big page).
func listAudit(t *testing.T, ts *servertest.TestServer, req *pushauthv1.ListAuditEventsRequest) []*pushauthv1.AuditEvent {
	t.Helper()
	req = proto.CloneOf(req)
	req.PageSize = 1000
	resp, err := ts.Admin.ListAuditEvents(ts.AdminCtx(servertest.Context(t)), req)
	if err != nil {
		t.Fatalf("ListAuditEvents(%v): %v", req, err)
	}
	if resp.GetNextPageToken() != "" {
		t.Fatalf("more than 1000 audit events")
	}
	return resp.GetEvents()
}

func actions(events []*pushauthv1.AuditEvent) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.GetAction())
	}
	return out
}
