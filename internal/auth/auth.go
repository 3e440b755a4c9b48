// Package auth decides who is calling: an operator (admin token or admin
// client certificate), a relying party (API key) or a device (device
// credential). Interceptors put the caller in the context under private keys;
// handlers read it back with the typed accessors here.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"log/slog"
	"slices"
	"strings"

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

// Service name prefixes of full method names.
const (
	adminPrefix  = "/pushauth.v1.AdminService/"
	rpPrefix     = "/pushauth.v1.RelyingPartyService/"
	devicePrefix = "/pushauth.v1.DeviceService/"
)

// APIKeyAuthenticator checks relying-party API keys.
type APIKeyAuthenticator interface {
	Authenticate(ctx context.Context, token string) (store.RelyingParty, store.APIKey, error)
}

// DeviceAuthenticator checks device credentials.
type DeviceAuthenticator interface {
	Authenticate(ctx context.Context, credential string) (store.Device, error)
}

// Config is what the interceptor needs besides the authenticators.
type Config struct {
	// AdminToken is the operators' bearer token. Empty disables token login.
	AdminToken string
	// AdminCertNames are client-certificate subject common names or DNS SANs
	// that count as operators (needs TLS with client certificates).
	AdminCertNames []string
	// PublicMethods need no credential (e.g. device registration).
	PublicMethods []string
}

// Authenticator is the gRPC interceptor pair.
type Authenticator struct {
	adminHash  [32]byte
	adminToken bool
	certNames  []string
	public     map[string]bool
	apiKeys    APIKeyAuthenticator
	devices    DeviceAuthenticator
	log        *slog.Logger
}

// New returns an Authenticator.
func New(cfg Config, apiKeys APIKeyAuthenticator, devices DeviceAuthenticator, log *slog.Logger) *Authenticator {
	a := &Authenticator{
		adminToken: cfg.AdminToken != "",
		adminHash:  sha256.Sum256([]byte(cfg.AdminToken)),
		certNames:  cfg.AdminCertNames,
		public:     map[string]bool{},
		apiKeys:    apiKeys,
		devices:    devices,
		log:        log,
	}
	for _, m := range cfg.PublicMethods {
		a.public[m] = true
	}
	return a
}

var (
	errMissing   = status.Error(codes.Unauthenticated, "missing credentials: send the metadata header \"authorization: Bearer <token>\"")
	errInvalid   = status.Error(codes.Unauthenticated, "invalid credentials")
	errForbidden = status.Error(codes.PermissionDenied, "these credentials are not accepted here")
	// A revoked credential is PermissionDenied on a new call (the stream it
	// had open ends Unauthenticated, see guard.go), saying what to do.
	errKeyRevoked    = status.Error(codes.PermissionDenied, "this API key was revoked; use another key or ask the operator for a new one")
	errDeviceRevoked = status.Error(codes.PermissionDenied, "this device is no longer registered; register the app again")
)

// Unary is the unary server interceptor.
func (a *Authenticator) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is the stream server interceptor.
func (a *Authenticator) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

func (a *Authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	if a.public[method] {
		return ctx, nil
	}
	switch {
	case strings.HasPrefix(method, adminPrefix):
		return a.admin(ctx)
	case strings.HasPrefix(method, rpPrefix):
		return a.relyingParty(ctx)
	case strings.HasPrefix(method, devicePrefix):
		return a.device(ctx)
	case strings.HasPrefix(method, "/grpc.health.v1.Health/"), strings.HasPrefix(method, "/grpc.reflection."):
		// Open, as orchestrators and grpcurl expect.
		return ctx, nil
	default:
		// A service added without an auth rule is closed, not open.
		return ctx, status.Error(codes.PermissionDenied, "no access rule for this method")
	}
}

func (a *Authenticator) admin(ctx context.Context) (context.Context, error) {
	if name, ok := a.adminCert(ctx); ok {
		return withCaller(ctx, Caller{Kind: KindAdmin, Actor: "admin:cert:" + name}), nil
	}
	token, err := bearer(ctx)
	if err != nil {
		return ctx, err
	}
	got := sha256.Sum256([]byte(token))
	if !a.adminToken || subtle.ConstantTimeCompare(got[:], a.adminHash[:]) != 1 {
		if strings.HasPrefix(token, relyingparty.APIKeyKind+"_") || strings.HasPrefix(token, registration.CredentialKind+"_") {
			return ctx, errForbidden
		}
		return ctx, errInvalid
	}
	return withCaller(ctx, Caller{Kind: KindAdmin, Actor: "admin"}), nil
}

func (a *Authenticator) adminCert(ctx context.Context) (string, bool) {
	if len(a.certNames) == 0 {
		return "", false
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 {
		return "", false
	}
	cert := ti.State.VerifiedChains[0][0]
	for _, name := range certNames(cert) {
		if slices.Contains(a.certNames, name) {
			return name, true
		}
	}
	return "", false
}

func certNames(c *x509.Certificate) []string {
	return append([]string{c.Subject.CommonName}, c.DNSNames...)
}

func (a *Authenticator) relyingParty(ctx context.Context) (context.Context, error) {
	token, err := bearer(ctx)
	if err != nil {
		return ctx, err
	}
	if !strings.HasPrefix(token, relyingparty.APIKeyKind+"_") {
		if strings.HasPrefix(token, registration.CredentialKind+"_") {
			return ctx, errForbidden
		}
		return ctx, errInvalid
	}
	rp, key, err := a.apiKeys.Authenticate(ctx, token)
	switch {
	case errors.Is(err, relyingparty.ErrBadAPIKey):
		return ctx, errInvalid
	case errors.Is(err, relyingparty.ErrRevokedAPIKey):
		return ctx, errKeyRevoked
	case err != nil:
		a.log.ErrorContext(ctx, "api key lookup failed", "err", err)
		return ctx, status.Error(codes.Unavailable, "cannot check credentials right now; try again")
	}
	return withCaller(ctx, Caller{Kind: KindRelyingParty, Actor: "apikey:" + key.Prefix, RelyingParty: rp, APIKey: key}), nil
}

func (a *Authenticator) device(ctx context.Context) (context.Context, error) {
	token, err := bearer(ctx)
	if err != nil {
		return ctx, err
	}
	if !strings.HasPrefix(token, registration.CredentialKind+"_") {
		if strings.HasPrefix(token, relyingparty.APIKeyKind+"_") {
			return ctx, errForbidden
		}
		return ctx, errInvalid
	}
	dev, err := a.devices.Authenticate(ctx, token)
	switch {
	case errors.Is(err, registration.ErrBadCredential):
		return ctx, errInvalid
	case errors.Is(err, registration.ErrRevokedDevice):
		return ctx, errDeviceRevoked
	case err != nil:
		a.log.ErrorContext(ctx, "device credential lookup failed", "err", err)
		return ctx, status.Error(codes.Unavailable, "cannot check credentials right now; try again")
	}
	return withCaller(ctx, Caller{Kind: KindDevice, Actor: "device:" + dev.ID, Device: dev}), nil
}

// bearer returns the token of the "authorization: Bearer …" header.
func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", errMissing
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", status.Error(codes.Unauthenticated, "malformed authorization header: expected \"Bearer <token>\"")
	}
	return token, nil
}
