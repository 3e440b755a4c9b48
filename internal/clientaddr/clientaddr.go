// Package clientaddr says which address a call came from. It is the one
// place that decides: the TCP peer, or, when the peer is a trusted proxy
// (a load balancer in front of pushauth), the address that proxy forwarded
// in the x-forwarded-for header. Only trusted proxies are believed, since
// any client can send the header; limits keyed by address (SMS per address)
// would otherwise be evaded by sending a new address each time.
package clientaddr

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// ForwardedHeader is the metadata key proxies put the client chain in.
const ForwardedHeader = "x-forwarded-for"

// Resolver finds the client address of calls.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes x-forwarded-for from peers inside
// the trusted CIDRs (a bare address means just that address). No CIDRs
// means the header is never believed.
func New(trusted []string) (*Resolver, error) {
	r := &Resolver{}
	for _, s := range trusted {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q is not a CIDR like 10.0.0.0/8 or an IP address", s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		r.trusted = append(r.trusted, p.Masked())
	}
	return r, nil
}

func (r *Resolver) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve returns the client address of the call of ctx, "" if unknown.
func (r *Resolver) Resolve(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	_, viaGateway := p.Addr.(GatewayAddr)
	peerAddr, ok := parseAddr(p.Addr.String())
	if !ok && !viaGateway {
		return ""
	}
	if !viaGateway && (len(r.trusted) == 0 || !r.isTrusted(peerAddr)) {
		return peerAddr.String()
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var hops []string
	for _, v := range md.Get(ForwardedHeader) {
		hops = append(hops, strings.Split(v, ",")...)
	}
	// The right-most address was added by the nearest proxy; walk left past
	// our own proxies to the first address none of them is: the client.
	// Everything left of that the client may have made up.
	client := peerAddr
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := parseAddr(strings.TrimSpace(hops[i]))
		if !ok {
			break // garbage: keep the last hop we can trust
		}
		client = a
		if !r.isTrusted(a) {
			break
		}
	}
	if !client.IsValid() {
		return ""
	}
	return client.String()
}

// GatewayAddr is the peer address of calls from the in-process HTTP
// gateway (internal/httpapi). Such a peer is always believed: the gateway
// puts the HTTP client's address last in x-forwarded-for, after whatever the
// client sent, so the walk below starts at the HTTP peer and goes left only
// past trusted proxies, as it does for gRPC. No network peer can have this
// address type.
type GatewayAddr struct{}

// Network implements net.Addr.
func (GatewayAddr) Network() string { return "inprocess" }

// String implements net.Addr.
func (GatewayAddr) String() string { return "http-gateway" }

// parseAddr reads an IP address, with or without a port.
func parseAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

type addrKey struct{}

// With returns ctx carrying the client address addr.
func With(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, addrKey{}, addr)
}

// From returns the client address of ctx: the one the interceptor resolved,
// or, without it, the TCP peer's.
func From(ctx context.Context) string {
	if a, ok := ctx.Value(addrKey{}).(string); ok {
		return a
	}
	return (&Resolver{}).Resolve(ctx)
}

// Unary is the unary server interceptor that puts the client address in
// the context.
func (r *Resolver) Unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(With(ctx, r.Resolve(ctx)), req)
}

// Stream is the stream server interceptor that puts the client address in
// the context.
func (r *Resolver) Stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &stream{ServerStream: ss, ctx: With(ss.Context(), r.Resolve(ss.Context()))})
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }
