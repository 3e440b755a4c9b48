package server_test

// End-to-end tests of who may call what: admin token, API keys and device
// credentials against the three services, and the open health and
// reflection services.

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

func TestAuthentication(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		base := servertest.Context(t)
		rp := ts.CreateRelyingParty(t, "portal", nil)
		key, apiKey := ts.CreateAPIKey(t, rp.GetId())
		revokedKeyRef, revokedSecret := ts.CreateAPIKey(t, rp.GetId())
		if _, err := ts.Admin.RevokeApiKey(ts.AdminCtx(base), &pushauthv1.RevokeApiKeyRequest{ApiKey: revokedKeyRef.GetId()}); err != nil {
			t.Fatalf("RevokeApiKey: %v", err)
		}
		dev, deviceCred := ts.CreateDevice(t, store.Device{PhoneNumber: "+31612345678", Name: "Pixel van Jan", AppVersion: "1.2.3"})
		_, revokedDeviceCred := ts.CreateDevice(t, store.Device{RevokedAt: ts.Clock.Now().UTC()})
		// A well-formed key whose prefix exists but whose random part is wrong.
		wrongRandom := key.GetPrefix() + "." + strings.Repeat("A", 43)
		garbageKey := "pak_garbage"
		otherKind, _ := secret.New("xyz")

		whoAmI := func(ctx context.Context) error {
			_, err := ts.RP.WhoAmI(ctx, &pushauthv1.WhoAmIRequest{})
			return err
		}
		getDevice := func(ctx context.Context) error {
			_, err := ts.Device.GetDevice(ctx, &pushauthv1.GetDeviceRequest{})
			return err
		}
		adminCall := func(ctx context.Context) error {
			_, err := ts.Admin.ListRelyingParties(ctx, &pushauthv1.ListRelyingPartiesRequest{})
			return err
		}
		bearer := func(tok string) func(context.Context) context.Context {
			return func(ctx context.Context) context.Context { return servertest.WithToken(ctx, tok) }
		}
		header := func(v string) func(context.Context) context.Context {
			return func(ctx context.Context) context.Context { return servertest.WithAuthorization(ctx, v) }
		}
		none := func(ctx context.Context) context.Context { return ctx }

		tests := []struct {
			name string
			call func(context.Context) error
			auth func(context.Context) context.Context
			code codes.Code
			msg  string // in the message, when set
		}{
			{"admin: no credentials", adminCall, none, codes.Unauthenticated, `authorization: Bearer <token>`},
			{"admin: admin token", adminCall, bearer(ts.AdminToken), codes.OK, ""},
			{"admin: admin token, lower-case scheme", adminCall, header("bearer " + ts.AdminToken), codes.OK, ""},
			{"admin: wrong token", adminCall, bearer("not-the-admin-token"), codes.Unauthenticated, "invalid credentials"},
			{"admin: admin token with a suffix", adminCall, bearer(ts.AdminToken + "x"), codes.Unauthenticated, "invalid credentials"},
			{"admin: API key", adminCall, bearer(apiKey), codes.PermissionDenied, ""},
			{"admin: device credential", adminCall, bearer(deviceCred), codes.PermissionDenied, ""},
			{"admin: basic auth", adminCall, header("Basic " + ts.AdminToken), codes.Unauthenticated, "malformed authorization header"},
			{"admin: no scheme", adminCall, header(ts.AdminToken), codes.Unauthenticated, "malformed authorization header"},
			{"admin: empty bearer", adminCall, header("Bearer "), codes.Unauthenticated, "malformed authorization header"},

			{"rp: no credentials", whoAmI, none, codes.Unauthenticated, `authorization: Bearer <token>`},
			{"rp: API key", whoAmI, bearer(apiKey), codes.OK, ""},
			{"rp: revoked API key", whoAmI, bearer(revokedSecret), codes.PermissionDenied, "this API key was revoked"},
			{"rp: garbage pak_ token", whoAmI, bearer(garbageKey), codes.Unauthenticated, "invalid credentials"},
			{"rp: wrong random part", whoAmI, bearer(wrongRandom), codes.Unauthenticated, "invalid credentials"},
			{"rp: unknown prefix", whoAmI, bearer("pak_unknown." + strings.Repeat("B", 43)), codes.Unauthenticated, "invalid credentials"},
			{"rp: other kind of secret", whoAmI, bearer(otherKind.Token), codes.Unauthenticated, "invalid credentials"},
			{"rp: admin token", whoAmI, bearer(ts.AdminToken), codes.Unauthenticated, "invalid credentials"},
			{"rp: device credential", whoAmI, bearer(deviceCred), codes.PermissionDenied, ""},
			{"rp: malformed header", whoAmI, header("Token " + apiKey), codes.Unauthenticated, "malformed authorization header"},

			{"device: no credentials", getDevice, none, codes.Unauthenticated, `authorization: Bearer <token>`},
			{"device: credential", getDevice, bearer(deviceCred), codes.OK, ""},
			{"device: revoked device", getDevice, bearer(revokedDeviceCred), codes.PermissionDenied, "this device is no longer registered"},
			{"device: API key", getDevice, bearer(apiKey), codes.PermissionDenied, ""},
			{"device: admin token", getDevice, bearer(ts.AdminToken), codes.Unauthenticated, "invalid credentials"},
			{"device: garbage pdc_ token", getDevice, bearer("pdc_garbage.x"), codes.Unauthenticated, "invalid credentials"},
			{"device: wrong random part", getDevice, bearer(dev.CredentialPrefix + "." + strings.Repeat("C", 43)), codes.Unauthenticated, "invalid credentials"},
			{"device: malformed header", getDevice, header("Bearer"), codes.Unauthenticated, "malformed authorization header"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := tt.call(tt.auth(base))
				if tt.code == codes.OK {
					if err != nil {
						t.Fatalf("got %v, want success", err)
					}
					return
				}
				st := wantStatus(t, err, tt.code, tt.msg)
				for _, s := range []string{apiKey, deviceCred, ts.AdminToken, revokedSecret} {
					if strings.Contains(st.Message(), s) {
						t.Errorf("message %q repeats a credential", st.Message())
					}
				}
			})
		}

		t.Run("WhoAmI", func(t *testing.T) {
			resp, err := ts.RP.WhoAmI(servertest.WithToken(base, apiKey), &pushauthv1.WhoAmIRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetRelyingParty().GetId() != rp.GetId() || resp.GetRelyingParty().GetName() != "portal" {
				t.Errorf("relying party = %v, want %v", resp.GetRelyingParty(), rp)
			}
			if resp.GetApiKeyPrefix() != key.GetPrefix() {
				t.Errorf("api key prefix = %q, want %q", resp.GetApiKeyPrefix(), key.GetPrefix())
			}
		})

		t.Run("revocation takes effect at once", func(t *testing.T) {
			k, s := ts.CreateAPIKey(t, rp.GetId())
			ctx := servertest.WithToken(base, s)
			if _, err := ts.RP.WhoAmI(ctx, &pushauthv1.WhoAmIRequest{}); err != nil {
				t.Fatalf("before revoke: %v", err)
			}
			if _, err := ts.Admin.RevokeApiKey(ts.AdminCtx(base), &pushauthv1.RevokeApiKeyRequest{ApiKey: k.GetPrefix()}); err != nil {
				t.Fatal(err)
			}
			_, err := ts.RP.WhoAmI(ctx, &pushauthv1.WhoAmIRequest{})
			wantStatus(t, err, codes.PermissionDenied)
		})

		t.Run("GetDevice", func(t *testing.T) {
			seen := ts.Clock.Advance(time.Hour)
			resp, err := ts.Device.GetDevice(servertest.WithToken(base, deviceCred), &pushauthv1.GetDeviceRequest{})
			if err != nil {
				t.Fatal(err)
			}
			d := resp.GetDevice()
			if d.GetId() != dev.ID || d.GetName() != "Pixel van Jan" || d.GetAppVersion() != "1.2.3" || d.GetPlatform() != pushauthv1.Platform_PLATFORM_ANDROID {
				t.Errorf("device = %v, want %+v", d, dev)
			}
			if d.GetMaskedPhoneNumber() != "+31*******78" {
				t.Errorf("masked phone number = %q, want +31*******78", d.GetMaskedPhoneNumber())
			}
			if !d.GetCreateTime().AsTime().Equal(dev.CreatedAt) || !d.GetLastSeenTime().AsTime().Equal(seen) {
				t.Errorf("create %v (want %v), last seen %v (want %v)", d.GetCreateTime().AsTime(), dev.CreatedAt, d.GetLastSeenTime().AsTime(), seen)
			}
			stored, err := ts.Store.GetDevice(base, dev.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !stored.LastSeenAt.Equal(seen) {
				t.Errorf("stored last seen %v, want %v", stored.LastSeenAt, seen)
			}
		})

		t.Run("health needs no credentials", func(t *testing.T) {
			for _, svc := range []string{"", "pushauth.v1.AdminService", "pushauth.v1.RelyingPartyService", "pushauth.v1.DeviceService"} {
				resp, err := ts.Health.Check(base, &healthpb.HealthCheckRequest{Service: svc})
				if err != nil {
					t.Fatalf("Check(%q): %v", svc, err)
				}
				if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Errorf("Check(%q) = %s, want SERVING", svc, resp.GetStatus())
				}
			}
		})

		t.Run("reflection needs no credentials", func(t *testing.T) {
			services := listServices(t, ts.Conn)
			for _, want := range []string{"pushauth.v1.AdminService", "pushauth.v1.RelyingPartyService", "pushauth.v1.DeviceService", "grpc.health.v1.Health"} {
				if !slices.Contains(services, want) {
					t.Errorf("reflection lists %v, missing %s", services, want)
				}
			}
		})
	})
}

// listServices asks the reflection service for the served services.
func listServices(t *testing.T, conn *grpc.ClientConn) []string {
	t.Helper()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(servertest.Context(t))
	if err != nil {
		t.Fatalf("ServerReflectionInfo: %v", err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatalf("send: %v", err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	if e := resp.GetErrorResponse(); e != nil {
		t.Fatalf("reflection error: %v", e)
	}
	_ = stream.CloseSend()
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names
}
