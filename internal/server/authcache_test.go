package server_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestRevocationDropsCachedCredentials: both replicas cache an API key and
// a device credential for an hour; revoking either on replica A refuses it
// on A as soon as the call returns and on B as soon as the notice arrives,
// not an hour later. A policy change is seen at once the same way.
func TestRevocationDropsCachedCredentials(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		cl := servertest.NewCluster(t, url, 2, func(o *server.Options) { o.AuthCacheTTL = time.Hour })
		a, b := cl[0], cl[1]
		// noticed is told every notice replica B has acted on; its hook
		// runs after the cache's, which was added first.
		noticed := make(chan events.Revocation, 10)
		b.Server.Revocations.OnRevoke(func(n events.Revocation) { noticed <- n })
		waitNotice := func(kind, id string) {
			t.Helper()
			for {
				select {
				case n := <-noticed:
					if n.Kind == kind && n.ID == id {
						return
					}
				case <-time.After(time.Minute):
					t.Fatalf("replica B got no %s notice for %s", kind, id)
				}
			}
		}

		rp := a.CreateRelyingParty(t, "portal", nil)
		key, secret := a.CreateAPIKey(t, rp.GetId())
		phone := servertest.NewPhone(t, false)
		a.Register(t, phone, "+31612345678")
		for _, ts := range cl {
			if _, err := ts.RP.WhoAmI(ts.WithToken(servertest.Context(t), secret), &pushauthv1.WhoAmIRequest{}); err != nil {
				t.Fatal(err)
			}
			if _, err := ts.Device.ListPendingRequests(ts.WithToken(servertest.Context(t), phone.Credential), &pushauthv1.ListPendingRequestsRequest{}); err != nil {
				t.Fatal(err)
			}
		}

		// A policy change reaches the cached relying party on both.
		if _, err := a.Admin.UpdateRelyingPartyPolicy(a.AdminCtx(servertest.Context(t)), &pushauthv1.UpdateRelyingPartyPolicyRequest{
			RelyingParty: rp.GetId(), Policy: &pushauthv1.RelyingPartyPolicy{ApprovalsPerMinute: 2},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"approvals_per_minute"}},
		}); err != nil {
			t.Fatal(err)
		}
		waitNotice(events.ChangedRelyingParty, rp.GetId())
		for i, ts := range cl {
			who, err := ts.RP.WhoAmI(ts.WithToken(servertest.Context(t), secret), &pushauthv1.WhoAmIRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if got := who.GetRelyingParty().GetPolicy().GetApprovalsPerMinute(); got != 2 {
				t.Errorf("replica %d sees approvals_per_minute %d after the change, want 2", i, got)
			}
		}

		if _, err := a.Admin.RevokeApiKey(a.AdminCtx(servertest.Context(t)), &pushauthv1.RevokeApiKeyRequest{ApiKey: key.GetId()}); err != nil {
			t.Fatal(err)
		}
		waitNotice(events.RevokedAPIKey, key.GetId())
		for i, ts := range cl {
			_, err := ts.RP.WhoAmI(ts.WithToken(servertest.Context(t), secret), &pushauthv1.WhoAmIRequest{})
			if code := status.Code(err); code != codes.PermissionDenied {
				t.Errorf("replica %d: revoked API key: %v, want PermissionDenied", i, err)
			}
		}

		if _, err := a.Device.DeregisterDevice(a.WithToken(servertest.Context(t), phone.Credential), &pushauthv1.DeregisterDeviceRequest{}); err != nil {
			t.Fatal(err)
		}
		waitNotice(events.RevokedDevice, phone.DeviceID)
		for i, ts := range cl {
			_, err := ts.Device.ListPendingRequests(ts.WithToken(servertest.Context(t), phone.Credential), &pushauthv1.ListPendingRequestsRequest{})
			if code := status.Code(err); code != codes.PermissionDenied {
				t.Errorf("replica %d: deregistered device: %v, want PermissionDenied", i, err)
			}
		}
	})
}
