// Package client is what a Go login server needs of pushauth: dial the
// server with an API key, pair a phone by its two words, ask for a login
// approval, wait for the answer (with progress, re-attaching to another
// replica when a stream breaks), check the signed decision against the
// device's key, and offer codes from authenticator apps (TOTP).
//
// A login page's flow (cmd/pushauth-portal is a complete one):
//
//	c, err := client.Dial(client.Config{Addrs: []string{"127.0.0.1:8470"}, APIKey: key})
//	p, err := c.CreateApproval(ctx, "jan", &pushauthv1.RequestContext{IpAddress: ip})
//	// show p.Number when p.NumberMatching asks for it
//	out, err := c.Wait(ctx, p, client.OnProgress(func(pr *pushauthv1.Progress) { ... }))
//	if err == nil && out.Approved() { /* signed in */ }
//
// Wait returns only outcomes whose signed decision verified with the
// deciding device's public key and says what was asked: a login server can
// trust Outcome.Approved without further checks.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Config says how to reach pushauth.
type Config struct {
	// Addrs are the server's replicas, host:port each (or one gRPC target,
	// e.g. "dns:///pushauth.internal:8470"). Calls are spread over them
	// (round robin), and a Wait whose stream breaks goes on at another.
	Addrs []string
	// APIKey is the relying party's API key, sent on every call.
	APIKey string
	// TLS, if set, secures the connection. Without it the API key is sent
	// only to loopback addresses, unless Insecure says the network is
	// trusted.
	TLS      *tls.Config
	Insecure bool
	// DialOptions are added to the client connection's (e.g. a user agent).
	DialOptions []grpc.DialOption
}

// Client is a login server's connection to pushauth. It is safe for
// concurrent use.
type Client struct {
	api    pushauthv1.RelyingPartyServiceClient
	apiKey string
	cc     *grpc.ClientConn // nil when the caller owns the connection

	mu   sync.Mutex
	keys map[string][]byte // device id -> public key (SPKI DER)
	rpID string            // the relying party of the key, once known
}

// serviceConfig spreads calls over every address instead of sticking to the
// first.
const serviceConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// Dial connects to pushauth. The connection is lazy: a server that cannot be
// reached shows as an error of the first call.
func Dial(cfg Config) (*Client, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("client: no API key (\"pushauth admin key create RP\" issues one)")
	}
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("client: no server address")
	}
	if cfg.TLS == nil && !cfg.Insecure {
		for _, a := range cfg.Addrs {
			if !loopback(a) {
				return nil, fmt.Errorf("client: refusing to send the API key unencrypted to %s, which is not a loopback address: set Config.TLS, or Insecure if the network is trusted", a)
			}
		}
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(serviceConfig),
	}, cfg.DialOptions...)
	target := cfg.Addrs[0]
	if len(cfg.Addrs) > 1 {
		r := manual.NewBuilderWithScheme("pushauth-replicas")
		addrs := make([]resolver.Address, len(cfg.Addrs))
		for i, a := range cfg.Addrs {
			addrs[i] = resolver.Address{Addr: a}
		}
		r.InitialState(resolver.State{Addresses: addrs})
		opts = append(opts, grpc.WithResolvers(r))
		target = r.Scheme() + ":///replicas"
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := New(cc, cfg.APIKey)
	c.cc = cc
	return c, nil
}

// New makes a Client on a connection the caller made and closes; apiKey is
// sent on every call.
func New(cc grpc.ClientConnInterface, apiKey string) *Client {
	return &Client{api: pushauthv1.NewRelyingPartyServiceClient(cc), apiKey: apiKey, keys: map[string][]byte{}}
}

// Close closes a connection Dial made.
func (c *Client) Close() error {
	if c.cc == nil {
		return nil
	}
	return c.cc.Close()
}

// API is the RelyingPartyService, for what this package does not wrap:
// call it with Context(ctx), which sends the API key.
func (c *Client) API() pushauthv1.RelyingPartyServiceClient { return c.api }

// Context returns ctx sending the API key, for calls on API.
func (c *Client) Context(ctx context.Context) context.Context { return c.ctx(ctx) }

// loopback reports whether a host:port (or target) names this machine.
func loopback(addr string) bool {
	if strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "unix-abstract:") {
		return true
	}
	if i := strings.Index(addr, "://"); i >= 0 {
		addr = addr[i+3:]
		addr = addr[strings.LastIndex(addr, "/")+1:]
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ctx returns ctx sending the API key (and no other authorization).
func (c *Client) ctx(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set("authorization", "Bearer "+c.apiKey)
	return metadata.NewOutgoingContext(ctx, md)
}

// WhoAmI returns the relying party the API key belongs to.
func (c *Client) WhoAmI(ctx context.Context) (*pushauthv1.RelyingParty, error) {
	resp, err := c.api.WhoAmI(c.ctx(ctx), &pushauthv1.WhoAmIRequest{})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.rpID = resp.GetRelyingParty().GetId()
	c.mu.Unlock()
	return resp.GetRelyingParty(), nil
}

// relyingPartyID is the id of the key's relying party, asked once.
func (c *Client) relyingPartyID(ctx context.Context) (string, error) {
	c.mu.Lock()
	id := c.rpID
	c.mu.Unlock()
	if id != "" {
		return id, nil
	}
	rp, err := c.WhoAmI(ctx)
	return rp.GetId(), err
}

// Pending is a request sent to a user's phones, as the login page keeps it
// while it waits.
type Pending struct {
	RequestID string
	Kind      pushauthv1.RequestKind
	UserRef   string
	Expires   time.Time
	// NumberMatching says whether the page must show Number for the user
	// to type on the phone: 2 digits for NUMBER, 6 for CODE.
	NumberMatching pushauthv1.NumberMatchingMode
	Number         string
}

// ShowNumber reports whether the login page must show Number.
func (p *Pending) ShowNumber() bool {
	return p.Number != "" && p.NumberMatching != pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NONE
}

// ClaimPairingPhrase sends a pairing request to the phone showing phrase
// (the two words), to connect it to userRef, labelled label on the phone.
// rc is what the phone shows of the browser (may be nil). An unknown or
// expired phrase is codes.NotFound; too many of them codes.ResourceExhausted
// (see RetryAfter).
func (c *Client) ClaimPairingPhrase(ctx context.Context, phrase, userRef, label string, rc *pushauthv1.RequestContext) (*Pending, error) {
	resp, err := c.api.ClaimPairingPhrase(c.ctx(ctx), &pushauthv1.ClaimPairingPhraseRequest{
		Phrase: phrase, UserRef: userRef, AccountLabel: label, Context: rc,
	})
	if err != nil {
		return nil, err
	}
	return &Pending{RequestID: resp.GetRequestId(), Kind: pushauthv1.RequestKind_REQUEST_KIND_PAIRING, UserRef: userRef,
		Expires: resp.GetExpireTime().AsTime()}, nil
}

// CreateApproval asks userRef's phones to approve a login; rc is what they
// show of it (may be nil). No connected phone is codes.FailedPrecondition (offer
// another method); a back-off or rate limit codes.ResourceExhausted (see
// RetryAfter).
func (c *Client) CreateApproval(ctx context.Context, userRef string, rc *pushauthv1.RequestContext) (*Pending, error) {
	resp, err := c.api.CreateApproval(c.ctx(ctx), &pushauthv1.CreateApprovalRequest{UserRef: userRef, Context: rc})
	if err != nil {
		return nil, err
	}
	return &Pending{RequestID: resp.GetRequestId(), Kind: pushauthv1.RequestKind_REQUEST_KIND_LOGIN, UserRef: userRef,
		Expires: resp.GetExpireTime().AsTime(), NumberMatching: resp.GetNumberMatching(), Number: resp.GetNumber()}, nil
}

// Cancel cancels a pending request, e.g. when the user leaves the page.
func (c *Client) Cancel(ctx context.Context, requestID string) (*pushauthv1.Request, error) {
	resp, err := c.api.CancelRequest(c.ctx(ctx), &pushauthv1.CancelRequestRequest{RequestId: requestID})
	return resp.GetRequest(), err
}

// Get returns a request's current state.
func (c *Client) Get(ctx context.Context, requestID string) (*pushauthv1.Request, error) {
	resp, err := c.api.GetRequest(c.ctx(ctx), &pushauthv1.GetRequestRequest{RequestId: requestID})
	return resp.GetRequest(), err
}

// Devices lists the phones connected to userRef.
func (c *Client) Devices(ctx context.Context, userRef string) ([]*pushauthv1.UserDevice, error) {
	resp, err := c.api.ListUserDevices(c.ctx(ctx), &pushauthv1.ListUserDevicesRequest{UserRef: userRef})
	return resp.GetDevices(), err
}

// RemoveDevice disconnects a phone from userRef.
func (c *Client) RemoveDevice(ctx context.Context, userRef, deviceID string) error {
	_, err := c.api.RemoveUserDevice(c.ctx(ctx), &pushauthv1.RemoveUserDeviceRequest{UserRef: userRef, DeviceId: deviceID})
	return err
}

// Factors says what the login page can offer userRef: connected phones,
// TOTP factors, and the back-off, mute and TOTP lock as of now.
func (c *Client) Factors(ctx context.Context, userRef string) (*pushauthv1.ListUserFactorsResponse, error) {
	return c.api.ListUserFactors(c.ctx(ctx), &pushauthv1.ListUserFactorsRequest{UserRef: userRef})
}

// VerifyTOTP checks a 6-digit code against userRef's TOTP factors and
// returns the factor it belongs to. A wrong or reused code is
// codes.PermissionDenied; too many codes.ResourceExhausted (see RetryAfter).
func (c *Client) VerifyTOTP(ctx context.Context, userRef, code string) (*pushauthv1.VerifyTotpResponse, error) {
	return c.api.VerifyTotp(c.ctx(ctx), &pushauthv1.VerifyTotpRequest{UserRef: userRef, Code: code})
}

// EnrollTOTP starts enrolling an authenticator app: show resp.QrPng (or
// resp.Secret), then ConfirmTOTP with a first code.
func (c *Client) EnrollTOTP(ctx context.Context, userRef, label string) (*pushauthv1.EnrollTotpResponse, error) {
	return c.api.EnrollTotp(c.ctx(ctx), &pushauthv1.EnrollTotpRequest{UserRef: userRef, AccountLabel: label})
}

// ConfirmTOTP activates an enrolled app with a code it shows.
func (c *Client) ConfirmTOTP(ctx context.Context, userRef, factorID, code string) error {
	_, err := c.api.ConfirmTotp(c.ctx(ctx), &pushauthv1.ConfirmTotpRequest{UserRef: userRef, FactorId: factorID, Code: code})
	return err
}

// RemoveTOTP removes a TOTP factor.
func (c *Client) RemoveTOTP(ctx context.Context, userRef, factorID string) error {
	_, err := c.api.RemoveTotp(c.ctx(ctx), &pushauthv1.RemoveTotpRequest{UserRef: userRef, FactorId: factorID})
	return err
}

// RetryAfter reads how long to wait from an error's google.rpc.RetryInfo
// (back-off, rate limits, TOTP lock); ok is false when it has none.
func RetryAfter(err error) (wait time.Duration, ok bool) {
	s, isStatus := status.FromError(err)
	if !isStatus {
		return 0, false
	}
	for _, d := range s.Details() {
		if ri, isRI := d.(*errdetails.RetryInfo); isRI {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// Code is the gRPC code of err (codes.OK for nil).
func Code(err error) codes.Code { return status.Code(err) }
