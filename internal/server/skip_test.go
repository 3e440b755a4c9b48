package server_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// heldSender holds the first send of a login push until released, then
// fails it for a quick retry; every other send succeeds.
type heldSender struct {
	held    chan push.Job // receives the job being held
	release chan struct{}
	mu      sync.Mutex
	sends   map[string]int
}

func (s *heldSender) Name() string { return "held" }

func (s *heldSender) Send(ctx context.Context, j push.Job) error {
	s.mu.Lock()
	s.sends[j.RequestID]++
	first := s.sends[j.RequestID] == 1 && j.Kind == push.KindLogin
	s.mu.Unlock()
	if !first {
		return nil
	}
	s.held <- j
	<-s.release
	return &push.TemporaryError{Err: errors.New("provider busy"), RetryAfter: 1}
}

func (s *heldSender) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sends[id]
}

// A push that comes up again after its request was approved (a retry, a
// stalled queue catching up) is dropped unsent and counted.
func TestPushSkippedOnceDecided(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		snd := &heldSender{held: make(chan push.Job, 1), release: make(chan struct{}), sends: map[string]int{}}
		ts := servertest.New(t, url, servertest.WithPushSender(snd))
		key, phone := paired(t, ts)

		ctx := servertest.Context(t)
		c, err := ts.RP.CreateApproval(ts.WithToken(ctx, key), &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		if j := <-snd.held; j.RequestID != c.GetRequestId() {
			t.Fatalf("held push for %s, want %s", j.RequestID, c.GetRequestId())
		}
		if _, err := ts.Decide(t, phone, ts.Pending(t, phone), pushauthv1.Decision_DECISION_APPROVE, ""); err != nil {
			t.Fatal(err)
		}
		close(snd.release)
		if !ts.Logs.Wait(ctx, "outcome=skipped attempt=1 approval_id="+c.GetRequestId()) {
			t.Fatal("the retried push was not skipped")
		}
		if n := snd.count(c.GetRequestId()); n != 1 {
			t.Fatalf("login push sent %d times, want 1 (the held one)", n)
		}
		_, metrics := ts.Ops(t, "/metrics")
		if !strings.Contains(metrics, "pushauth_pushes_skipped_total 1") {
			t.Fatalf("skip not counted:\n%s", grepLines(metrics, "skipped"))
		}
	})
}

// A push that comes up again after its phone was taken off the request (the
// connection removed while another phone still answers) is dropped unsent.
func TestPushSkippedOncePhoneRemoved(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		snd := &heldSender{held: make(chan push.Job, 1), release: make(chan struct{}), sends: map[string]int{}}
		ts := servertest.New(t, url, servertest.WithPushSender(snd))
		key, _ := paired(t, ts)
		second := servertest.NewPhone(t, false)
		ts.Register(t, second, "+31687654321")
		ts.Pair(t, second, key, "jan", "Jan")

		ctx := servertest.Context(t)
		c, err := ts.RP.CreateApproval(ts.WithToken(ctx, key), &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		j := <-snd.held // one phone's push; the other's went out
		if _, err := ts.RP.RemoveUserDevice(ts.WithToken(ctx, key), &pushauthv1.RemoveUserDeviceRequest{UserRef: "jan", DeviceId: j.DeviceID}); err != nil {
			t.Fatalf("RemoveUserDevice: %v", err)
		}
		close(snd.release)
		if !ts.Logs.Wait(ctx, "outcome=skipped attempt=1 approval_id="+c.GetRequestId()) {
			t.Fatal("the retried push to the removed phone was not skipped")
		}
		if n := snd.count(c.GetRequestId()); n != 2 {
			t.Fatalf("login pushes sent %d times, want 2 (one per phone, the held one not again)", n)
		}
		r, err := ts.RP.GetRequest(ts.WithToken(ctx, key), &pushauthv1.GetRequestRequest{RequestId: c.GetRequestId()})
		if err != nil || r.GetRequest().GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_PENDING {
			t.Fatalf("login after one phone was removed: %v %v", r, err)
		}
	})
}

// paired sets up a relying party with an API key and a phone paired to its
// user "jan", and returns the key and the phone.
func paired(t *testing.T, ts *servertest.TestServer) (string, *servertest.Phone) {
	t.Helper()
	rp := ts.CreateRelyingParty(t, "portal", nil)
	_, key := ts.CreateAPIKey(t, rp.GetId())
	phone := servertest.NewPhone(t, false)
	ts.Register(t, phone, "+31612345678")
	ts.Pair(t, phone, key, "jan", "Jan")
	return key, phone
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
