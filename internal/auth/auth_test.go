package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/internal/registration"
	"github.com/pushauth/pushauth/internal/relyingparty"
	"github.com/pushauth/pushauth/internal/store"
)

const (
	adminToken = "operators-only-token"
	goodKey    = "pak_good.secret"
	revokedKey = "pak_revoked.secret"
	brokenKey  = "pak_broken.secret" // the lookup fails
	goodCred   = "pdc_good.secret"
	revokedDev = "pdc_revoked.secret"
	brokenCred = "pdc_broken.secret"
)

type fakeKeys struct{}

func (fakeKeys) Authenticate(_ context.Context, token string) (store.RelyingParty, store.APIKey, error) {
	switch token {
	case goodKey:
		return store.RelyingParty{ID: "rp_1", Name: "portal"}, store.APIKey{ID: "key_1", Prefix: "pak_good"}, nil
	case revokedKey:
		return store.RelyingParty{}, store.APIKey{}, relyingparty.ErrRevokedAPIKey
	case brokenKey:
		return store.RelyingParty{}, store.APIKey{}, errors.New("connection refused to db-host")
	}
	return store.RelyingParty{}, store.APIKey{}, relyingparty.ErrBadAPIKey
}

type fakeDevices struct{}

func (fakeDevices) Authenticate(_ context.Context, cred string) (store.Device, error) {
	switch cred {
	case goodCred:
		return store.Device{ID: "dev_1"}, nil
	case revokedDev:
		return store.Device{}, registration.ErrRevokedDevice
	case brokenCred:
		return store.Device{}, errors.New("connection refused to db-host")
	}
	return store.Device{}, registration.ErrBadCredential
}

const (
	adminMethod  = "/pushauth.v1.AdminService/ListRelyingParties"
	rpMethod     = "/pushauth.v1.RelyingPartyService/WhoAmI"
	deviceMethod = "/pushauth.v1.DeviceService/GetDevice"
	publicMethod = "/pushauth.v1.DeviceService/StartPhoneVerification"
	healthMethod = "/grpc.health.v1.Health/Check"
)

func newAuth(cfg Config) *Authenticator {
	return New(cfg, fakeKeys{}, fakeDevices{}, slog.New(slog.DiscardHandler))
}

// call runs the unary interceptor for method with the authorization header
// value auth ("" sends none) and returns the caller the handler saw.
func call(t *testing.T, a *Authenticator, ctx context.Context, method, auth string) (Caller, bool, error) {
	t.Helper()
	if auth != "" {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", auth))
	}
	var got Caller
	var ok, called bool
	_, err := a.Unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(ctx context.Context, _ any) (any, error) {
		called = true
		got, ok = CallerFrom(ctx)
		return nil, nil
	})
	if err == nil && !called {
		t.Fatal("no error but the handler was not called")
	}
	if err != nil && called {
		t.Fatal("error but the handler was called")
	}
	return got, ok, err
}

func TestUnary(t *testing.T) {
	a := newAuth(Config{AdminToken: adminToken, PublicMethods: []string{publicMethod}})
	tests := []struct {
		name   string
		method string
		auth   string
		code   codes.Code
		kind   Kind   // caller on success; 0 for none
		actor  string // on success
	}{
		{"admin token", adminMethod, "Bearer " + adminToken, codes.OK, KindAdmin, "admin"},
		{"scheme is case-insensitive", adminMethod, "BEARER " + adminToken, codes.OK, KindAdmin, "admin"},
		{"surrounding spaces", adminMethod, "  Bearer   " + adminToken + "  ", codes.OK, KindAdmin, "admin"},
		{"admin: none", adminMethod, "", codes.Unauthenticated, 0, ""},
		{"admin: wrong", adminMethod, "Bearer nope", codes.Unauthenticated, 0, ""},
		{"admin: prefix of the token", adminMethod, "Bearer " + adminToken[:5], codes.Unauthenticated, 0, ""},
		{"admin: API key", adminMethod, "Bearer " + goodKey, codes.PermissionDenied, 0, ""},
		{"admin: device credential", adminMethod, "Bearer " + goodCred, codes.PermissionDenied, 0, ""},
		{"admin: basic", adminMethod, "Basic " + adminToken, codes.Unauthenticated, 0, ""},
		{"admin: bare token", adminMethod, adminToken, codes.Unauthenticated, 0, ""},
		{"admin: empty bearer", adminMethod, "Bearer   ", codes.Unauthenticated, 0, ""},

		{"rp: key", rpMethod, "Bearer " + goodKey, codes.OK, KindRelyingParty, "apikey:pak_good"},
		{"rp: revoked", rpMethod, "Bearer " + revokedKey, codes.PermissionDenied, 0, ""},
		{"rp: bad key", rpMethod, "Bearer pak_other.x", codes.Unauthenticated, 0, ""},
		{"rp: lookup fails", rpMethod, "Bearer " + brokenKey, codes.Unavailable, 0, ""},
		{"rp: device credential", rpMethod, "Bearer " + goodCred, codes.PermissionDenied, 0, ""},
		{"rp: admin token", rpMethod, "Bearer " + adminToken, codes.Unauthenticated, 0, ""},
		{"rp: none", rpMethod, "", codes.Unauthenticated, 0, ""},

		{"device: credential", deviceMethod, "Bearer " + goodCred, codes.OK, KindDevice, "device:dev_1"},
		{"device: revoked", deviceMethod, "Bearer " + revokedDev, codes.PermissionDenied, 0, ""},
		{"device: bad", deviceMethod, "Bearer pdc_other.x", codes.Unauthenticated, 0, ""},
		{"device: lookup fails", deviceMethod, "Bearer " + brokenCred, codes.Unavailable, 0, ""},
		{"device: API key", deviceMethod, "Bearer " + goodKey, codes.PermissionDenied, 0, ""},
		{"device: none", deviceMethod, "", codes.Unauthenticated, 0, ""},

		{"public method, none", publicMethod, "", codes.OK, 0, ""},
		{"public method ignores a bad header", publicMethod, "Basic x", codes.OK, 0, ""},
		{"health is open", healthMethod, "", codes.OK, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok, err := call(t, a, context.Background(), tt.method, tt.auth)
			if status.Code(err) != tt.code {
				t.Fatalf("got %v, want %s", err, tt.code)
			}
			if err != nil {
				if msg := status.Convert(err).Message(); strings.Contains(msg, "db-host") || strings.Contains(msg, "secret") {
					t.Errorf("message %q leaks internals", msg)
				}
				return
			}
			if tt.kind == 0 {
				if ok {
					t.Errorf("caller %+v, want none", c)
				}
				return
			}
			if !ok || c.Kind != tt.kind || c.Actor != tt.actor {
				t.Errorf("caller %+v, want kind %d actor %q", c, tt.kind, tt.actor)
			}
		})
	}
}

func TestMessages(t *testing.T) {
	a := newAuth(Config{AdminToken: adminToken})
	_, _, err := call(t, a, context.Background(), adminMethod, "")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, `"authorization: Bearer <token>"`) {
		t.Errorf("missing-credentials message %q does not say what to send", msg)
	}
	_, _, err = call(t, a, context.Background(), adminMethod, "Token abc")
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "malformed") || strings.Contains(msg, "abc") {
		t.Errorf("malformed-header message %q", msg)
	}
}

func TestNoAdminToken(t *testing.T) {
	a := newAuth(Config{})
	// With token login disabled, not even an empty-looking token matches the
	// (hash of the) empty configured token.
	for _, h := range []string{"Bearer x", "Bearer  ", "Bearer " + adminToken} {
		if _, _, err := call(t, a, context.Background(), adminMethod, h); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%q: got %v, want Unauthenticated", h, err)
		}
	}
}

func TestAdminCertificate(t *testing.T) {
	a := newAuth(Config{AdminToken: adminToken, AdminCertNames: []string{"ops.example.com", "alice"}})
	withCert := func(cn string, dns ...string) context.Context {
		cert := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: dns}
		return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{
			State: tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}},
		}})
	}
	tests := []struct {
		name  string
		ctx   context.Context
		auth  string
		code  codes.Code
		actor string
	}{
		{"common name", withCert("alice"), "", codes.OK, "admin:cert:alice"},
		{"DNS name", withCert("host-7", "ops.example.com"), "", codes.OK, "admin:cert:ops.example.com"},
		{"certificate wins over a bad token", withCert("alice"), "Bearer wrong", codes.OK, "admin:cert:alice"},
		{"other certificate, no token", withCert("mallory"), "", codes.Unauthenticated, ""},
		{"other certificate, admin token", withCert("mallory"), "Bearer " + adminToken, codes.OK, "admin"},
		{"unverified certificate", peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{
			State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "alice"}}}},
		}}), "", codes.Unauthenticated, ""},
		{"no TLS", context.Background(), "", codes.Unauthenticated, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := call(t, a, tt.ctx, adminMethod, tt.auth)
			if status.Code(err) != tt.code {
				t.Fatalf("got %v, want %s", err, tt.code)
			}
			if err == nil && (c.Kind != KindAdmin || c.Actor != tt.actor) {
				t.Errorf("caller %+v, want admin %q", c, tt.actor)
			}
		})
	}
	// A certificate only counts for AdminService.
	if _, _, err := call(t, a, withCert("alice"), rpMethod, ""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("admin certificate on RelyingPartyService: %v, want Unauthenticated", err)
	}
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (f *fakeStream) Context() context.Context { return f.ctx }

func TestStream(t *testing.T) {
	a := newAuth(Config{AdminToken: adminToken})
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+goodCred))
	var got Caller
	err := a.Stream(nil, &fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: deviceMethod}, func(_ any, ss grpc.ServerStream) error {
		got, _ = CallerFrom(ss.Context())
		return nil
	})
	if err != nil || got.Kind != KindDevice || got.Device.ID != "dev_1" {
		t.Errorf("stream: err %v, caller %+v", err, got)
	}
	err = a.Stream(nil, &fakeStream{ctx: context.Background()}, &grpc.StreamServerInfo{FullMethod: deviceMethod}, func(any, grpc.ServerStream) error {
		t.Error("handler called without credentials")
		return nil
	})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("stream without credentials: %v", err)
	}
}

func TestAccessors(t *testing.T) {
	ctx := context.Background()
	if ActorFrom(ctx) != "anonymous" {
		t.Errorf("ActorFrom(empty) = %q", ActorFrom(ctx))
	}
	if _, _, ok := RelyingPartyFrom(ctx); ok {
		t.Error("RelyingPartyFrom(empty) ok")
	}
	rpCtx := WithCaller(ctx, Caller{Kind: KindRelyingParty, Actor: "apikey:pak_x", RelyingParty: store.RelyingParty{ID: "rp_1"}, APIKey: store.APIKey{Prefix: "pak_x"}})
	if rp, key, ok := RelyingPartyFrom(rpCtx); !ok || rp.ID != "rp_1" || key.Prefix != "pak_x" {
		t.Errorf("RelyingPartyFrom = %v %v %v", rp, key, ok)
	}
	if _, ok := DeviceFrom(rpCtx); ok {
		t.Error("DeviceFrom a relying party's context ok")
	}
	devCtx := WithCaller(ctx, Caller{Kind: KindDevice, Actor: "device:dev_1", Device: store.Device{ID: "dev_1"}})
	if d, ok := DeviceFrom(devCtx); !ok || d.ID != "dev_1" {
		t.Errorf("DeviceFrom = %v %v", d, ok)
	}
	if _, _, ok := RelyingPartyFrom(devCtx); ok {
		t.Error("RelyingPartyFrom a device's context ok")
	}
	if ActorFrom(devCtx) != "device:dev_1" {
		t.Errorf("ActorFrom = %q", ActorFrom(devCtx))
	}
}
