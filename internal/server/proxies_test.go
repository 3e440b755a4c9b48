package server_test

// Tests that the client address comes from x-forwarded-for only when the
// TCP peer is a trusted proxy, seen through the per-address SMS limit.

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

func TestTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []string
		trusted bool
	}{
		{"trusted peer", []string{"127.0.0.0/8", "::1"}, true},
		{"untrusted peer", []string{"10.0.0.0/8"}, false},
		{"no proxies", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servertest.ForEachBackend(t, func(t *testing.T, url string) {
				ts := servertest.New(t, url, func(o *server.Options) {
					o.TrustedProxies = tc.proxies
					o.Registration.Limits.PerAddressHour = 1
				})
				ctx := servertest.Context(t)
				start := func(number, forwarded string) (string, error) {
					rctx := metadata.AppendToOutgoingContext(ctx, "x-forwarded-for", forwarded)
					resp, err := ts.Device.StartPhoneVerification(rctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: number})
					return resp.GetVerificationId(), err
				}
				// The proxy appends the address it saw to what the client sent.
				id, err := start("+31612345601", "198.51.100.9, 203.0.113.5")
				if err != nil {
					t.Fatal(err)
				}
				v, err := ts.Store.GetVerification(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				want := "127.0.0.1"
				if tc.trusted {
					want = "203.0.113.5"
				}
				if v.ClientAddress != want {
					t.Errorf("stored client address %q, want %q", v.ClientAddress, want)
				}

				// Another forwarded address is another client only behind a
				// trusted proxy; otherwise it is the same peer, over its limit.
				_, err = start("+31612345602", "203.0.113.6")
				if tc.trusted {
					if err != nil {
						t.Fatalf("a second forwarded client: %v", err)
					}
					_, err = start("+31612345603", "203.0.113.6")
				}
				wantStatus(t, err, codes.ResourceExhausted, "from your network")
			})
		})
	}
}
