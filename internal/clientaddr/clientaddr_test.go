package clientaddr

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

func callFrom(peerAddr string, forwarded ...string) context.Context {
	host, port, _ := net.SplitHostPort(peerAddr)
	addr, _ := net.ResolveTCPAddr("tcp", net.JoinHostPort(host, port))
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: addr})
	md := metadata.MD{}
	for _, f := range forwarded {
		md.Append(ForwardedHeader, f)
	}
	return metadata.NewIncomingContext(ctx, md)
}

func TestResolve(t *testing.T) {
	r, err := New([]string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"untrusted peer, header ignored", callFrom("198.51.100.1:5000", "203.0.113.5"), "198.51.100.1"},
		{"trusted peer without header", callFrom("10.1.2.3:5000"), "10.1.2.3"},
		{"trusted peer, one hop", callFrom("10.1.2.3:5000", "203.0.113.5"), "203.0.113.5"},
		{"client-sent addresses left of the client are ignored", callFrom("10.1.2.3:5000", "1.1.1.1, 203.0.113.5"), "203.0.113.5"},
		{"our proxies are skipped", callFrom("10.1.2.3:5000", "203.0.113.5, 192.0.2.1, 10.9.9.9"), "203.0.113.5"},
		{"several header lines", callFrom("10.1.2.3:5000", "203.0.113.5", "10.9.9.9"), "203.0.113.5"},
		{"garbage stops the walk at the last trusted hop", callFrom("10.1.2.3:5000", "203.0.113.5, nonsense, 10.9.9.9"), "10.9.9.9"},
		{"only proxies", callFrom("10.1.2.3:5000", "10.0.0.7, 10.0.0.8"), "10.0.0.7"},
		{"address with port", callFrom("10.1.2.3:5000", "203.0.113.5:443"), "203.0.113.5"},
		{"IPv6", callFrom("[2001:db8::1]:5000", "2001:db8:1::9, 2a00:1450::1"), "2a00:1450::1"},
		{"IPv4-mapped peer", callFrom("[::ffff:10.1.2.3]:5000", "203.0.113.5"), "203.0.113.5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Resolve(tc.ctx); got != tc.want {
				t.Errorf("Resolve = %q, want %q", got, tc.want)
			}
		})
	}
	if got := From(callFrom("10.1.2.3:5000", "203.0.113.5")); got != "10.1.2.3" {
		t.Errorf("From without the interceptor = %q, want the peer", got)
	}
	if got := From(With(context.Background(), "203.0.113.5")); got != "203.0.113.5" {
		t.Errorf("From = %q, want what With stored", got)
	}
}

func TestNewRejectsBadCIDR(t *testing.T) {
	if _, err := New([]string{"10.0.0.0/8", "10.0.0.0/33"}); err == nil {
		t.Fatal("accepted 10.0.0.0/33")
	}
	if _, err := New([]string{"proxy.example"}); err == nil {
		t.Fatal("accepted a host name")
	}
}

func callFromGateway(forwarded ...string) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: GatewayAddr{}})
	md := metadata.MD{}
	for _, f := range forwarded {
		md.Append(ForwardedHeader, f)
	}
	return metadata.NewIncomingContext(ctx, md)
}

// The HTTP gateway appends the HTTP peer to what the client sent; the walk
// starts there, whatever the trusted proxies.
func TestResolveViaGateway(t *testing.T) {
	none, _ := New(nil)
	some, _ := New([]string{"10.0.0.0/8"})
	tests := []struct {
		name string
		r    *Resolver
		ctx  context.Context
		want string
	}{
		{"HTTP peer, no proxies trusted", none, callFromGateway("198.51.100.1"), "198.51.100.1"},
		{"client-sent header ignored when the peer is no proxy", none, callFromGateway("6.6.6.6, 198.51.100.1"), "198.51.100.1"},
		{"client-sent header ignored, proxies trusted", some, callFromGateway("6.6.6.6, 198.51.100.1"), "198.51.100.1"},
		{"trusted proxy in front of HTTP", some, callFromGateway("203.0.113.5, 10.0.0.9"), "203.0.113.5"},
		{"no address at all", none, callFromGateway(), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.Resolve(tc.ctx); got != tc.want {
				t.Errorf("Resolve = %q, want %q", got, tc.want)
			}
		})
	}
}
