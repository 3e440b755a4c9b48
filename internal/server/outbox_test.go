package server_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestPushSurvivesKillAfterCommit kills (by the relay's fault hook) the
// replica that created a login request at the two points where a push used
// to be at risk: right after the create transaction committed, before
// anything was published, and after JetStream stored the push but before
// the outbox row was deleted. The other replica's relay then finds the row;
// the push reaches the phone exactly once either way: JetStream stored
// exactly two jobs in all (the pairing's and the login's).
func TestPushSurvivesKillAfterCommit(t *testing.T) {
	for _, stage := range []string{"handoff", "published"} {
		t.Run(stage, func(t *testing.T) {
			servertest.ForEachBackend(t, func(t *testing.T, url string) {
				fcm := servertest.NewFakeFCM(t)
				var dead atomic.Bool // replica 0 is killed at stage once set
				replica := 0
				cl := servertest.NewCluster(t, url, 2, servertest.WithPushSender(fcm.Sender(t)), func(o *server.Options) {
					// Scans run only when the test calls them.
					o.Relay.ScanEvery = time.Hour
					if replica == 0 {
						o.Relay.Fault = func(s string) bool { return s == stage && dead.Load() }
					}
					replica++
				})
				a, b := cl[0], cl[1]
				rp := a.CreateRelyingParty(t, "portal", nil)
				_, key := a.CreateAPIKey(t, rp.GetId())
				phone := servertest.NewPhone(t, false)
				a.Register(t, phone, "+31612345678")
				// The pairing's push goes out (and leaves the outbox) before
				// the phone answers, so it cannot be skipped.
				a.PairWith(t, phone, key, "jan", "Jan", func(string) { anyPush(t, fcm) })

				dead.Store(true)
				ctx := a.WithToken(servertest.Context(t), key)
				c, err := a.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
				if err != nil {
					t.Fatal(err)
				}
				if stage == "published" {
					// JetStream has the job: the push goes out, the row stays.
					if got := nextPush(t, fcm)["request_id"]; got != c.GetRequestId() {
						t.Fatalf("push for %q, want %q", got, c.GetRequestId())
					}
				}

				// Younger rows belong to the replica that wrote them.
				if n, err := b.Server.Engine.RelayOutbox(servertest.Context(t)); err != nil || n != 0 {
					t.Fatalf("RelayOutbox within the grace period = %d, %v; want 0", n, err)
				}
				b.Clock.Advance(6 * time.Second)
				if n, err := b.Server.Engine.RelayOutbox(servertest.Context(t)); err != nil || n != 1 {
					t.Fatalf("RelayOutbox after the grace period = %d, %v; want 1", n, err)
				}
				if stage == "handoff" {
					if got := nextPush(t, fcm)["request_id"]; got != c.GetRequestId() {
						t.Fatalf("push for %q, want %q", got, c.GetRequestId())
					}
				}
				if n, err := b.Server.Engine.RelayOutbox(servertest.Context(t)); err != nil || n != 0 {
					t.Fatalf("RelayOutbox once the outbox is empty = %d, %v; want 0", n, err)
				}
				js, err := b.Bus.JetStream()
				if err != nil {
					t.Fatal(err)
				}
				st, err := js.Stream(servertest.Context(t), events.PushStream)
				if err != nil {
					t.Fatal(err)
				}
				info, err := st.Info(servertest.Context(t))
				if err != nil {
					t.Fatal(err)
				}
				if info.State.LastSeq != 2 {
					t.Fatalf("JetStream stored %d push jobs, want 2 (pairing, login): a push was queued twice", info.State.LastSeq)
				}
				// The login server sees the push as sent.
				w, err := b.RP.WaitRequest(b.WithToken(servertest.Context(t), key), &pushauthv1.WaitRequestRequest{RequestId: c.GetRequestId()})
				if err != nil {
					t.Fatal(err)
				}
				for {
					m, err := w.Recv()
					if err != nil {
						t.Fatalf("WaitRequest: %v", err)
					}
					if p := m.GetProgress(); p != nil && p.GetKind() == pushauthv1.Progress_KIND_SENT {
						break
					}
				}
			})
		})
	}
}

// nextPush is the next login push that reached fcm. Pairing pushes are
// passed over: Pair approves the pairing at once, so its push is skipped
// when the approval gets in first.
func nextPush(t *testing.T, fcm *servertest.FakeFCM) map[string]string {
	t.Helper()
	for {
		if p := anyPush(t, fcm); p["kind"] != "PAIRING" {
			return p
		}
	}
}

// anyPush is the next push that reached fcm; a minute without one fails
// the test.
func anyPush(t *testing.T, fcm *servertest.FakeFCM) map[string]string {
	t.Helper()
	select {
	case p := <-fcm.Pushes:
		return p
	case <-time.After(time.Minute):
		t.Fatal("no push reached FCM")
		return nil
	}
}
