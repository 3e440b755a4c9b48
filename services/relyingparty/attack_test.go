package relyingparty_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/internal/guess"
	"github.com/pushauth/pushauth/internal/guess/guesstest"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// refusedOnly fails on any answer but a counted refusal: never Internal or
// a bare NotFound from a race.
func refusedOnly(t *testing.T, errs []error, allowed ...codes.Code) {
	t.Helper()
	for _, err := range errs {
		ok := false
		for _, c := range allowed {
			ok = ok || status.Code(err) == c
		}
		if !ok {
			t.Errorf("answered %v", err)
		}
	}
}

// TestTOTPBurst: 200 wrong codes released together compare no more than
// the 5 the budget allows before its lock, and the right code is refused
// while the lock lasts.
func TestTOTPBurst(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		var checks guesstest.Counter
		ts := servertest.New(t, url, servertest.WithAttackSetup(&checks, time.Millisecond))
		ctx := servertest.Context(t)
		rp := ts.CreateRelyingParty(t, "mijn-portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		rctx := ts.WithToken(ctx, key)
		en, err := ts.RP.EnrollTotp(rctx, &pushauthv1.EnrollTotpRequest{UserRef: "jan", AccountLabel: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ts.RP.ConfirmTotp(rctx, &pushauthv1.ConfirmTotpRequest{UserRef: "jan", FactorId: en.GetFactorId(), Code: code(t, en.GetSecret(), ts.Clock.Now())}); err != nil {
			t.Fatal(err)
		}
		ts.Clock.Advance(time.Minute)
		wrong := code(t, en.GetSecret(), ts.Clock.Now().Add(10*time.Minute))
		errs := servertest.Burst(200, func(int) error {
			_, err := ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "jan", Code: wrong})
			return err
		})
		refusedOnly(t, errs, codes.PermissionDenied, codes.ResourceExhausted)
		if got := checks.Wrong(guess.TOTPCode); got > 5 {
			t.Fatalf("%d wrong codes compared in one burst; the budget is 5", got)
		}
		right := checks.Right(guess.TOTPCode)
		_, err = ts.RP.VerifyTotp(rctx, &pushauthv1.VerifyTotpRequest{UserRef: "jan", Code: code(t, en.GetSecret(), ts.Clock.Now())})
		st := wantCode(t, err, codes.ResourceExhausted, "try again")
		if d := retryOf(st); d > 5*time.Minute {
			t.Fatalf("one burst locked the user for %v, more than 5 wrong codes one by one would", d)
		}
		if checks.Right(guess.TOTPCode) != right {
			t.Fatal("the right code was compared while locked")
		}
	})
}

// TestPairingPhraseBurst: 200 unknown phrases released together look up no
// more phrases than the user's budget (10), and the right phrase is refused
// meanwhile.
func TestPairingPhraseBurst(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		var checks guesstest.Counter
		ts := servertest.New(t, url, servertest.WithAttackSetup(&checks, time.Millisecond))
		ctx := servertest.Context(t)
		rp := ts.CreateRelyingParty(t, "mijn-portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		rctx := ts.WithToken(ctx, key)
		phone := servertest.NewPhone(t, false)
		ts.Register(t, phone, "+31612345678")
		ph, err := ts.Device.CreatePairingPhrase(ts.WithToken(ctx, phone.Credential), &pushauthv1.CreatePairingPhraseRequest{})
		if err != nil {
			t.Fatal(err)
		}
		errs := servertest.Burst(200, func(i int) error {
			_, err := ts.RP.ClaimPairingPhrase(rctx, &pushauthv1.ClaimPairingPhraseRequest{
				Phrase: fmt.Sprintf("wrong guess%c", 'a'+i%26), UserRef: "jan", AccountLabel: "jan"})
			return err
		})
		refusedOnly(t, errs, codes.NotFound, codes.ResourceExhausted)
		if got := checks.Wrong(guess.PairingPhrase); got > 10 {
			t.Fatalf("%d unknown phrases looked up in one burst; the budget is 10", got)
		}
		_, err = ts.RP.ClaimPairingPhrase(rctx, &pushauthv1.ClaimPairingPhraseRequest{Phrase: ph.GetPhrase(), UserRef: "jan", AccountLabel: "jan"})
		wantCode(t, err, codes.ResourceExhausted, "try again")
		// The budget rolls: an hour later the right phrase (a new one) works.
		ts.Clock.Advance(time.Hour)
		ph, err = ts.Device.CreatePairingPhrase(ts.WithToken(ctx, phone.Credential), &pushauthv1.CreatePairingPhraseRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ts.RP.ClaimPairingPhrase(rctx, &pushauthv1.ClaimPairingPhraseRequest{Phrase: ph.GetPhrase(), UserRef: "jan", AccountLabel: "jan"}); err != nil {
			t.Fatalf("right phrase an hour later: %v", err)
		}
	})
}

// TestPushBombing: login requests to one user stop at the limits whether
// they come in a burst or one every 3 seconds, and superseded requests
// count toward the back-off.
func TestPushBombing(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url, servertest.WithAttackSetup(&guesstest.Counter{}, time.Millisecond))
		ctx := servertest.Context(t)
		rp := ts.CreateRelyingParty(t, "mijn-portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		rctx := ts.WithToken(ctx, key)
		phone := servertest.NewPhone(t, false)
		ts.Register(t, phone, "+31612345678")
		ts.Pair(t, phone, key, "jan", "jan")

		errs := servertest.Burst(200, func(int) error {
			_, err := ts.RP.CreateApproval(rctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
			return err
		})
		refusedOnly(t, errs, codes.OK, codes.ResourceExhausted)
		created := 0
		for _, err := range errs {
			if err == nil {
				created++
			}
		}
		if created == 0 || created > 5 {
			t.Fatalf("%d of 200 parallel requests created; want 1 to 5 (the minute's limit)", created)
		}
		// Supersede and insert are one transaction: one pending login at
		// most, whatever the interleaving (ts.Pending fails on any other count).
		ts.Pending(t, phone)

		// One every 3 seconds for 10 minutes.
		created = 0
		for range 200 {
			ts.Clock.Advance(3 * time.Second)
			if _, err := ts.RP.CreateApproval(rctx, &pushauthv1.CreateApprovalRequest{UserRef: "jan"}); err == nil {
				created++
			} else if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("create: %v", err)
			}
		}
		if created > 30 {
			t.Fatalf("%d requests in 10 minutes; the hour's limit is 30", created)
		}
	})
}
