package feed_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/feed"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

func TestFromAudit(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		a    store.AuditEvent
		want []string
	}{
		{store.AuditEvent{Action: "request.decided", RelyingPartyID: "rp", Target: "req",
			Details: map[string]string{"status": "DENIED", "reason": store.ReasonFraudReport, "kind": store.KindLogin, "user_ref": "u"}},
			[]string{feed.TypeRequestDecided, feed.TypeFraudReported}},
		{store.AuditEvent{Action: "request.decided", RelyingPartyID: "rp", Target: "req",
			Details: map[string]string{"status": store.StatusApproved, "kind": store.KindPairing, "user_ref": "u", "device_id": "d"}},
			[]string{feed.TypeRequestDecided, feed.TypeDevicePaired}},
		{store.AuditEvent{Action: "connection.removed", RelyingPartyID: "rp", Details: map[string]string{"by": "deregistration"}}, []string{feed.TypeDeviceRevoked}},
		{store.AuditEvent{Action: "connection.removed", RelyingPartyID: "rp"}, []string{feed.TypeDeviceRemoved}},
		{store.AuditEvent{Action: "connection.restored", RelyingPartyID: "rp"}, []string{feed.TypeDeviceReplaced, feed.TypeBackupRestored}},
		{store.AuditEvent{Action: feed.ActionUserBackedOff, RelyingPartyID: "rp"}, []string{feed.TypeUserBackedOff}},
		{store.AuditEvent{Action: feed.ActionUserLocked, RelyingPartyID: "rp"}, []string{feed.TypeUserLocked}},
		{store.AuditEvent{Action: feed.ActionTOTPLocked, RelyingPartyID: "rp"}, []string{feed.TypeTOTPLocked}},
		{store.AuditEvent{Action: "api_key.created", RelyingPartyID: "rp", Target: "k"}, []string{feed.TypeAPIKeyCreated}},
		{store.AuditEvent{Action: "api_key.revoked", RelyingPartyID: "rp", Target: "k"}, []string{feed.TypeAPIKeyRevoked}},
		{store.AuditEvent{Action: "device.revoked"}, nil},                      // no relying party
		{store.AuditEvent{Action: "sms.sent", RelyingPartyID: "rp"}, nil},      // not a security event
		{store.AuditEvent{Action: "totp.verified", RelyingPartyID: "rp"}, nil}, // not a security event
	}
	for _, c := range cases {
		c.a.Time = at
		got := feed.FromAudit(c.a)
		var types []string
		for _, e := range got {
			types = append(types, e.Type)
			ev, err := feed.Decode(e.Body)
			if err != nil || ev.ID != e.ID || ev.Type != e.Type || ev.RelyingPartyID != "rp" || !ev.Time.Equal(at) {
				t.Errorf("%s: body %s does not match %+v (%v)", c.a.Action, e.Body, e, err)
			}
		}
		if fmt.Sprint(types) != fmt.Sprint(c.want) {
			t.Errorf("%s %v: types %v, want %v", c.a.Action, c.a.Details, types, c.want)
		}
	}
}

// TestRelayDiesAfterPublish: a relay that dies between the stream storing
// its events and deleting them from the outbox loses nothing, and the
// relay that takes them over after the hold stores nothing twice.
func TestRelayDiesAfterPublish(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ctx := servertest.Context(t)
		st := storetest.OpenMigrated(t, url)
		bus, err := events.Start(ctx, events.Config{StoreDir: t.TempDir()}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bus.Close)
		js, err := bus.JetStream()
		if err != nil {
			t.Fatal(err)
		}
		stream, err := feed.NewStream(ctx, js, time.Hour, 1)
		if err != nil {
			t.Fatal(err)
		}
		clock := servertest.NewClock(servertest.Epoch)
		var evs []store.FeedEvent
		for i := range 3 {
			evs = append(evs, feed.FromAudit(store.AuditEvent{Action: "api_key.created", RelyingPartyID: "rp_a", Target: fmt.Sprint("k", i), Time: clock.Now()})...)
		}
		evs = append(evs, feed.FromAudit(store.AuditEvent{Action: "api_key.created", RelyingPartyID: "rp_b", Target: "other", Time: clock.Now()})...)
		if err := st.AddEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		var handed [][]store.FeedEvent
		then := func(_ context.Context, b []store.FeedEvent) error { handed = append(handed, b); return nil }
		dying := feed.NewRelay(st, stream, then, feed.RelayConfig{Hold: time.Minute, Fault: func(string) bool { return true }}, clock.Now, slog.New(slog.DiscardHandler))
		if n, err := dying.RelayOnce(ctx); err != nil || n != 0 {
			t.Fatalf("dying relay = %d, %v", n, err)
		}
		healthy := feed.NewRelay(st, stream, then, feed.RelayConfig{Hold: time.Minute}, clock.Now, slog.New(slog.DiscardHandler))
		if n, err := healthy.RelayOnce(ctx); err != nil || n != 0 {
			t.Fatalf("relay during the hold = %d, %v; want nothing taken", n, err)
		}
		clock.Advance(time.Minute)
		if n, err := healthy.RelayOnce(ctx); err != nil || n != 4 {
			t.Fatalf("relay after the hold = %d, %v; want 4", n, err)
		}
		if len(handed) != 1 || len(handed[0]) != 4 {
			t.Fatalf("handed to the webhooks: %v", handed)
		}
		if left, _ := st.ClaimEvents(ctx, clock.Advance(time.Hour), clock.Now(), 10); len(left) != 0 {
			t.Fatalf("left in the outbox: %v", left)
		}
		// rp_a sees its three events once each, in order, and not rp_b's.
		got := watchN(t, stream, "rp_a", 0, 3)
		want := map[string]bool{evs[0].ID: true, evs[1].ID: true, evs[2].ID: true}
		for i, e := range got {
			if !want[e.ID] {
				t.Errorf("event %d = %s, want one of %v once", i, e.ID, want)
			}
			delete(want, e.ID)
		}
		// A sentinel published after them is the very next one: nothing
		// was stored twice.
		sentinel := feed.FromAudit(store.AuditEvent{Action: "api_key.revoked", RelyingPartyID: "rp_a", Target: "k0", Time: clock.Now()})
		if err := stream.Publish(ctx, sentinel); err != nil {
			t.Fatal(err)
		}
		next := watchN(t, stream, "rp_a", got[2].Cursor, 1)
		if next[0].ID != sentinel[0].ID {
			t.Fatalf("after the third event came %s (%s), want the sentinel", next[0].ID, next[0].Type)
		}
	})
}

// watchN reads n events of rp after the cursor.
func watchN(t *testing.T, s *feed.Stream, rp string, after uint64, n int) []feed.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(servertest.Context(t))
	defer cancel()
	var out []feed.Event
	err := s.Watch(ctx, rp, after, func(e feed.Event) error {
		out = append(out, e)
		if len(out) == n {
			cancel()
		}
		return nil
	})
	if len(out) != n {
		t.Fatalf("watch %s after %d: %d events, %v", rp, after, len(out), err)
	}
	return out
}
