package device_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/internal/guess"
	"github.com/pushauth/pushauth/internal/guess/guesstest"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestBackupPasscodeBurst: 200 wrong passcodes released together against
// one backup compare no more passcodes than the budget lets through before
// its first lock (2), answer no Internal or NotFound, and the right passcode
// is then refused without touching the real phone.
func TestBackupPasscodeBurst(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		var checks guesstest.Counter
		ts := servertest.New(t, url, servertest.WithAttackSetup(&checks, time.Millisecond))
		ctx := servertest.Context(t)
		owner, attacker := servertest.NewPhone(t, false), servertest.NewPhone(t, false)
		ts.Register(t, owner, number)
		if _, err := ts.Device.PutBackup(ts.WithToken(ctx, owner.Credential), &pushauthv1.PutBackupRequest{Blob: []byte("b"), Passcode: "4831"}); err != nil {
			t.Fatal(err)
		}
		ts.Clock.Advance(time.Minute)
		ts.Register(t, attacker, number)
		actx := ts.WithToken(ctx, attacker.Credential)

		errs := servertest.Burst(200, func(i int) error {
			_, err := ts.Device.RestoreBackup(actx, &pushauthv1.RestoreBackupRequest{Passcode: "0001"})
			return err
		})
		for _, err := range errs {
			switch status.Code(err) {
			case codes.PermissionDenied, codes.ResourceExhausted:
			default:
				t.Errorf("wrong passcode answered %v", err)
			}
		}
		if got := checks.Wrong(guess.BackupPasscode); got > 2 {
			t.Fatalf("%d wrong passcodes compared in one burst; the budget allows 2 before the first lock", got)
		}
		_, err := ts.Device.RestoreBackup(actx, &pushauthv1.RestoreBackupRequest{Passcode: "4831"})
		wantCode(t, err, codes.ResourceExhausted, "try again")
		if checks.Right(guess.BackupPasscode) != 0 {
			t.Fatal("the right passcode was compared while locked")
		}
		if _, err := ts.Device.GetDevice(ts.WithToken(ctx, owner.Credential), &pushauthv1.GetDeviceRequest{}); err != nil {
			t.Fatalf("the real phone lost its registration: %v", err)
		}
		info, err := ts.Device.GetBackupInfo(actx, &pushauthv1.GetBackupInfoRequest{})
		if err != nil || !info.GetExists() || info.GetAttemptsLeft() < 3 {
			t.Fatalf("backup after the burst: %v %v", info, err)
		}

		// Over every lock in turn, never more than the whole budget (5).
		for range 4 {
			ts.Clock.Advance(2 * time.Hour)
			servertest.Burst(50, func(int) error {
				_, err := ts.Device.RestoreBackup(actx, &pushauthv1.RestoreBackupRequest{Passcode: "0001"})
				return err
			})
		}
		if got := checks.Wrong(guess.BackupPasscode); got > 5 {
			t.Fatalf("%d wrong passcodes compared in all; the budget is 5", got)
		}
		ts.Clock.Advance(2 * time.Hour)
		_, err = ts.Device.RestoreBackup(actx, &pushauthv1.RestoreBackupRequest{Passcode: "4831"})
		if status.Code(err) != codes.NotFound && status.Code(err) != codes.PermissionDenied {
			t.Fatalf("right passcode after the budget was spent: %v", err)
		}
		if _, err := ts.Device.GetDevice(ts.WithToken(ctx, owner.Credential), &pushauthv1.GetDeviceRequest{}); err != nil {
			t.Fatalf("the real phone lost its registration: %v", err)
		}
	})
}

// TestDeleteBackupNeedsPasscode: another phone with the number must know
// the passcode to delete the backup; the phone that made it need not.
func TestDeleteBackupNeedsPasscode(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := servertest.Context(t)
		owner, other := servertest.NewPhone(t, false), servertest.NewPhone(t, false)
		ts.Register(t, owner, number)
		octx := ts.WithToken(ctx, owner.Credential)
		if _, err := ts.Device.PutBackup(octx, &pushauthv1.PutBackupRequest{Blob: []byte("b"), Passcode: "4831"}); err != nil {
			t.Fatal(err)
		}
		ts.Clock.Advance(time.Minute)
		ts.Register(t, other, number)
		xctx := ts.WithToken(ctx, other.Credential)
		_, err := ts.Device.DeleteBackup(xctx, &pushauthv1.DeleteBackupRequest{})
		wantCode(t, err, codes.InvalidArgument, "passcode")
		_, err = ts.Device.DeleteBackup(xctx, &pushauthv1.DeleteBackupRequest{Passcode: "0001"})
		wantCode(t, err, codes.PermissionDenied, "attempts left")
		if _, err := ts.Device.DeleteBackup(xctx, &pushauthv1.DeleteBackupRequest{Passcode: "4831"}); err != nil {
			t.Fatalf("delete with the passcode: %v", err)
		}
		if _, err := ts.Device.PutBackup(octx, &pushauthv1.PutBackupRequest{Blob: []byte("b2"), Passcode: "5937"}); err != nil {
			t.Fatal(err)
		}
		if _, err := ts.Device.DeleteBackup(octx, &pushauthv1.DeleteBackupRequest{}); err != nil {
			t.Fatalf("the phone that made the backup deletes it: %v", err)
		}
	})
}
