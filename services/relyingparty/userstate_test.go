package relyingparty_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestUserStateShowsBackoff follows the README's journey (approve, deny,
// fraud) and checks that ListUserFactors tells the login server about the
// back-off and the mute before CreateApproval refuses, as
// docs/decisions.md ("Back-off") describes.
func TestUserStateShowsBackoff(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, nil)
		ctx := w.a.WithToken(servertest.Context(t), w.key)
		state := func() *pushauthv1.UserState {
			t.Helper()
			f, err := w.a.RP.ListUserFactors(ctx, &pushauthv1.ListUserFactorsRequest{UserRef: w.user})
			if err != nil {
				t.Fatal(err)
			}
			return f.GetState()
		}
		answer := func(d pushauthv1.Decision) {
			t.Helper()
			w.login(t)
			if _, err := w.b.Decide(t, w.phone, w.b.Pending(t, w.phone), d, ""); err != nil {
				t.Fatal(err)
			}
		}
		if s := state(); s.GetPushBackoffUntil() != nil || s.GetPushMutedUntil() != nil || s.GetConsecutiveFailures() != 0 || s.GetPushLocked() {
			t.Fatalf("fresh user: %v", s)
		}
		answer(pushauthv1.Decision_DECISION_APPROVE)
		answer(pushauthv1.Decision_DECISION_DENY)
		denied := w.a.Clock.Now()
		s := state()
		if s.GetConsecutiveFailures() != 1 || !s.GetPushBackoffUntil().AsTime().Equal(denied.Add(10*time.Second)) || s.GetPushMutedUntil() != nil {
			t.Fatalf("after a denial: %v", s)
		}
		_, err := w.a.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: w.user})
		if d := retryOf(wantCode(t, err, codes.ResourceExhausted, "try again in 10s")); d != 10*time.Second {
			t.Fatalf("retry %v", d)
		}
		w.a.Clock.Advance(10 * time.Second)
		if s := state(); s.GetPushBackoffUntil() != nil || s.GetConsecutiveFailures() != 1 {
			t.Fatalf("back-off over: %v", s)
		}
		answer(pushauthv1.Decision_DECISION_REPORT_FRAUD)
		reported := w.a.Clock.Now()
		s = state()
		if s.GetConsecutiveFailures() != 2 || !s.GetPushBackoffUntil().AsTime().Equal(reported.Add(20*time.Second)) ||
			!s.GetPushMutedUntil().AsTime().Equal(reported.Add(time.Hour)) || s.GetPushLocked() {
			t.Fatalf("after a fraud report: %v", s)
		}
		// An approval ends the back-off and the count, not the mute.
		w.a.Clock.Advance(20 * time.Second)
		answer(pushauthv1.Decision_DECISION_APPROVE)
		s = state()
		if s.GetConsecutiveFailures() != 0 || s.GetPushBackoffUntil() != nil || !s.GetPushMutedUntil().AsTime().Equal(reported.Add(time.Hour)) {
			t.Fatalf("after an approval: %v", s)
		}
		w.a.Clock.Advance(time.Hour)
		if s := state(); s.GetPushMutedUntil() != nil {
			t.Fatalf("mute over: %v", s)
		}
	})
}
