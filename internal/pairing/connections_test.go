package pairing

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

// ended records what a removal handed to the request engine.
type ended struct {
	actor, deviceID string
	requests        []string
}

type recordingEnder struct{ calls []ended }

func (r *recordingEnder) TargetsRemoved(_ context.Context, actor, deviceID string, dropped []store.Request) {
	e := ended{actor: actor, deviceID: deviceID}
	for _, d := range dropped {
		e.requests = append(e.requests, d.ID)
	}
	r.calls = append(r.calls, e)
}

type recordingPublisher struct {
	mu       sync.Mutex
	subjects []string
}

func (p *recordingPublisher) Publish(_ context.Context, subject string, _ []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.subjects = append(p.subjects, subject)
	return nil
}

// TestRemoveConnection: removing a user's phone takes it off that user's
// pending logins at that relying party only, in the transaction that
// removes the connection and writes the audit event; the requests it was
// taken off are handed to the request engine after the commit, and the
// removal is announced to the replicas and the relying party. A removed or
// another phone's connection is not found, and no follow-up runs for it.
func TestRemoveConnection(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, url string) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		st := storetest.OpenMigrated(t, url)
		now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		clock := func() time.Time { return now }
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"rp_1", "rp_2"} {
			must(st.CreateRelyingParty(ctx, store.RelyingParty{ID: id, Name: id, DisplayName: id,
				Policy: store.Policy{ApprovalTTL: time.Minute, NumberMatching: store.NumberMatchingNone}, CreatedAt: now}))
		}
		for _, id := range []string{"dev_1", "dev_2"} {
			must(st.CreateDevice(ctx, store.Device{ID: id, CredentialPrefix: "pdc_" + id, PhoneNumber: "+31612345678",
				PublicKey: []byte("key of " + id), Platform: "ANDROID", CreatedAt: now}))
		}
		connect := func(id, user, dev string) {
			must(st.CreateConnection(ctx, store.Connection{ID: id, RelyingPartyID: "rp_1", UserRef: user, DeviceID: dev, AccountLabel: user,
				Status: store.ConnectionPending, CreatedAt: now}))
			must(st.ActivateConnection(ctx, id, now))
		}
		connect("con_1", "jan", "dev_1")
		connect("con_2", "jan", "dev_2")
		connect("con_3", "piet", "dev_1")
		login := func(id, user string, devs ...string) {
			var ts []store.RequestTarget
			for _, d := range devs {
				ts = append(ts, store.RequestTarget{RequestID: id, DeviceID: d, Delivery: store.DeliveryQueued, UpdatedAt: now})
			}
			must(st.CreateRequest(ctx, store.Request{ID: id, Kind: store.KindLogin, RelyingPartyID: "rp_1", UserRef: user,
				NumberMatching: store.NumberMatchingNone, Status: store.StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}, ts))
		}
		login("req_jan", "jan", "dev_1", "dev_2")
		login("req_piet", "piet", "dev_1")

		ender, pub := &recordingEnder{}, &recordingPublisher{}
		conns := NewConnections(st, ender, pub, clock, slog.New(slog.NewTextHandler(io.Discard, nil)))

		if key, err := conns.DeviceKey(ctx, "rp_1", "dev_1"); err != nil || string(key) != "key of dev_1" {
			t.Fatalf("key of a user's phone: %q, %v", key, err)
		}
		_, err := conns.DeviceKey(ctx, "rp_2", "dev_1")
		wantKind(t, err, fault.NotFound, "device not found")

		must(conns.RemoveUserDevice(ctx, "apikey:test", "rp_1", "jan", "dev_1"))
		if want := []ended{{actor: "apikey:test", deviceID: "dev_1", requests: []string{"req_jan"}}}; !slices.EqualFunc(ender.calls, want, sameEnded) {
			t.Fatalf("handed to the engine: %+v, want %+v", ender.calls, want)
		}
		targets := func(id string) map[string]store.RequestTarget {
			ts, err := st.ListRequestTargets(ctx, id)
			must(err)
			out := map[string]store.RequestTarget{}
			for _, t := range ts {
				out[t.DeviceID] = t
			}
			return out
		}
		if ts := targets("req_jan"); ts["dev_1"].Delivery != store.DeliveryRemoved || ts["dev_1"].Detail != detailConnectionRemoved || ts["dev_2"].Delivery != store.DeliveryQueued {
			t.Fatalf("jan's login targets: %+v", ts)
		}
		if ts := targets("req_piet"); ts["dev_1"].Delivery != store.DeliveryQueued {
			t.Fatalf("piet's login lost its phone: %+v", ts)
		}
		if c, err := conns.Get(ctx, "con_1"); err != nil || c.Status != store.ConnectionRemoved {
			t.Fatalf("removed connection: %+v, %v", c, err)
		}
		evs, err := st.ListAuditEvents(ctx, store.AuditFilter{RelyingPartyID: "rp_1", Limit: 10})
		must(err)
		if len(evs) != 1 || evs[0].Action != "connection.removed" || evs[0].Target != "con_1" || evs[0].Details["pending_requests"] != "1" {
			t.Fatalf("audit: %+v", evs)
		}
		if want := []string{events.RevokedSubject, events.RelyingPartyPrefix + "rp_1"}; !slices.Equal(pub.subjects, want) {
			t.Fatalf("published on %v, want %v", pub.subjects, want)
		}

		devs, err := conns.UserDevices(ctx, "rp_1", "jan")
		must(err)
		if len(devs) != 1 || devs[0].Device.ID != "dev_2" {
			t.Fatalf("jan's phones after the removal: %+v", devs)
		}
		err = conns.RemoveUserDevice(ctx, "apikey:test", "rp_1", "jan", "dev_1")
		wantKind(t, err, fault.NotFound, "no such device")
		err = conns.RemoveOfDevice(ctx, "dev_1", "con_1")
		wantKind(t, err, fault.NotFound, "connection not found")
		err = conns.RemoveOfDevice(ctx, "dev_1", "con_2")
		wantKind(t, err, fault.NotFound, "connection not found")
		if len(ender.calls) != 1 {
			t.Fatalf("refused removals were followed up: %+v", ender.calls)
		}

		must(conns.RemoveOfDevice(ctx, "dev_1", "con_3"))
		if len(ender.calls) != 2 || !sameEnded(ender.calls[1], ended{actor: "device:dev_1", deviceID: "dev_1", requests: []string{"req_piet"}}) {
			t.Fatalf("the phone's own removal handed: %+v", ender.calls)
		}
		own, err := conns.OfDevice(ctx, "dev_1")
		must(err)
		if len(own) != 0 {
			t.Fatalf("dev_1 still has %+v", own)
		}
	})
}

func sameEnded(a, b ended) bool {
	return a.actor == b.actor && a.deviceID == b.deviceID && slices.Equal(a.requests, b.requests)
}
