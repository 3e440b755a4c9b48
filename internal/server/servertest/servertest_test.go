package servertest_test

import (
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

func TestClock(t *testing.T) {
	var zero servertest.Clock
	if !zero.Now().Equal(servertest.Epoch) {
		t.Errorf("zero Clock reads %v, want Epoch", zero.Now())
	}
	c := servertest.NewClock(servertest.Epoch)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { c.Advance(time.Second); _ = c.Now() })
	}
	wg.Wait()
	if want := servertest.Epoch.Add(10 * time.Second); !c.Now().Equal(want) {
		t.Errorf("after 10 concurrent Advance(1s): %v, want %v", c.Now(), want)
	}
	at := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	c.Set(at)
	if !c.Now().Equal(at) {
		t.Errorf("after Set: %v", c.Now())
	}
}

func TestMetadataHelpers(t *testing.T) {
	ctx := servertest.WithRequestID(servertest.WithToken(t.Context(), "first"), "r1")
	ctx = servertest.WithToken(servertest.WithRequestID(ctx, "r2"), "second")
	md, _ := metadata.FromOutgoingContext(ctx)
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer second" {
		t.Errorf("authorization = %q, want only the last token", got)
	}
	if got := md.Get("x-request-id"); len(got) != 1 || got[0] != "r2" {
		t.Errorf("x-request-id = %q, want only the last id", got)
	}
	md, _ = metadata.FromOutgoingContext(servertest.WithoutAuthorization(ctx))
	if len(md.Get("authorization")) != 0 {
		t.Error("WithoutAuthorization left the header")
	}
}

// TestServer checks the harness itself on every backend: it serves, its
// helpers work, and its clock is the server's clock.
func TestServer(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := servertest.Context(t)
		if code, _ := ts.Ops(t, "/readyz"); code != 200 {
			t.Errorf("/readyz = %d after New, want 200", code)
		}
		at := ts.Clock.Advance(time.Hour)
		rp := ts.CreateRelyingParty(t, "portal", nil)
		if !rp.GetCreateTime().AsTime().Equal(at) {
			t.Errorf("created at %v, want the test clock's %v", rp.GetCreateTime().AsTime(), at)
		}
		_, key := ts.CreateAPIKey(t, "portal")
		who, err := ts.RP.WhoAmI(ts.WithToken(ctx, key), &pushauthv1.WhoAmIRequest{})
		if err != nil || who.GetRelyingParty().GetId() != rp.GetId() {
			t.Errorf("WhoAmI = %v, %v", who, err)
		}
		dev, cred := ts.CreateDevice(t, store.Device{Name: "Phone"})
		got, err := ts.Device.GetDevice(ts.WithToken(ctx, cred), &pushauthv1.GetDeviceRequest{})
		if err != nil || got.GetDevice().GetId() != dev.ID {
			t.Errorf("GetDevice = %v, %v", got, err)
		}
		if err := ts.Bus.Ping(ctx); err != nil {
			t.Errorf("bus: %v", err)
		}
		if !ts.Logs.Contains("/pushauth.v1.DeviceService/GetDevice") {
			t.Errorf("Logs lacks the RPC log:\n%s", ts.Logs)
		}
	})
}
