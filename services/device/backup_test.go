package device_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestBackupAndRestore: phone 1 registers, pairs with two relying parties
// (one allows restore), backs up; phone 2 registers with the same number,
// restores, gets the allowed account and approves the next login, while
// phone 1 is refused.
func TestBackupAndRestore(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := servertest.Context(t)
		allow := ts.CreateRelyingParty(t, "mijn-portal", &pushauthv1.RelyingPartyPolicy{AllowBackupRestore: true, ApprovalTtl: durationpb.New(time.Minute)})
		deny := ts.CreateRelyingParty(t, "strenge-bank", nil)
		_, allowKey := ts.CreateAPIKey(t, allow.GetId())
		_, denyKey := ts.CreateAPIKey(t, deny.GetId())

		phone1 := servertest.NewPhone(t, false)
		ts.Register(t, phone1, number)
		ts.Pair(t, phone1, allowKey, "jan", "jan@portal")
		ts.Pair(t, phone1, denyKey, "jan", "jan@bank")
		p1 := ts.WithToken(ctx, phone1.Credential)

		_, err := ts.Device.PutBackup(p1, &pushauthv1.PutBackupRequest{Blob: []byte("x"), Passcode: "1234"})
		wantCode(t, err, codes.InvalidArgument, "too easy")
		_, err = ts.Device.PutBackup(p1, &pushauthv1.PutBackupRequest{Blob: bytes.Repeat([]byte("x"), 65537), Passcode: "4831"})
		wantCode(t, err, codes.InvalidArgument, "blob")
		put, err := ts.Device.PutBackup(p1, &pushauthv1.PutBackupRequest{Blob: []byte("sealed-by-the-app"), Passcode: "4831"})
		if err != nil || len(put.GetKeyShare()) != 32 {
			t.Fatalf("PutBackup: %v %v", put, err)
		}
		// Replacing needs the current passcode.
		_, err = ts.Device.PutBackup(p1, &pushauthv1.PutBackupRequest{Blob: []byte("v2"), Passcode: "5937"})
		wantCode(t, err, codes.InvalidArgument, "current_passcode")
		put, err = ts.Device.PutBackup(p1, &pushauthv1.PutBackupRequest{Blob: []byte("sealed-v2"), Passcode: "5937", CurrentPasscode: "4831"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = ts.Device.RestoreBackup(p1, &pushauthv1.RestoreBackupRequest{Passcode: "5937"})
		wantCode(t, err, codes.FailedPrecondition, "new phone")

		phone2 := servertest.NewPhone(t, true)
		ts.Clock.Advance(time.Minute)
		ts.Register(t, phone2, number)
		p2 := ts.WithToken(ctx, phone2.Credential)
		info, err := ts.Device.GetBackupInfo(p2, &pushauthv1.GetBackupInfoRequest{})
		if err != nil || !info.GetExists() || info.GetAttemptsLeft() != 5 {
			t.Fatalf("info: %v %v", info, err)
		}
		_, err = ts.Device.RestoreBackup(p2, &pushauthv1.RestoreBackupRequest{Passcode: "1111"})
		wantCode(t, err, codes.PermissionDenied, "4 attempts left")
		res, err := ts.Device.RestoreBackup(p2, &pushauthv1.RestoreBackupRequest{Passcode: "5937"})
		if err != nil {
			t.Fatal(err)
		}
		if string(res.GetBlob()) != "sealed-v2" || !bytes.Equal(res.GetKeyShare(), put.GetKeyShare()) || res.GetReplacedDeviceId() != phone1.DeviceID {
			t.Fatalf("restore: %v", res)
		}
		if len(res.GetMovedConnections()) != 1 || res.GetMovedConnections()[0].GetAccountLabel() != "jan@portal" ||
			len(res.GetNeedsRepairing()) != 1 || res.GetNeedsRepairing()[0].GetAccountLabel() != "jan@bank" {
			t.Fatalf("moved %v, needs repairing %v", res.GetMovedConnections(), res.GetNeedsRepairing())
		}

		// Phone 1 is revoked; phone 2 approves the next login.
		_, err = ts.Device.GetDevice(p1, &pushauthv1.GetDeviceRequest{})
		wantCode(t, err, codes.PermissionDenied, "")
		c, err := ts.RP.CreateApproval(ts.WithToken(ctx, allowKey), &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		r, err := ts.Decide(t, phone2, ts.Pending(t, phone2), pushauthv1.Decision_DECISION_APPROVE, "")
		if err != nil || r.GetId() != c.GetRequestId() || r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
			t.Fatalf("login on the new phone: %v %v", r, err)
		}
		_, err = ts.RP.CreateApproval(ts.WithToken(ctx, denyKey), &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		wantCode(t, err, codes.FailedPrecondition, "no active device")
	})
}

func TestBackupWrongPasscodesLockThenWipe(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := servertest.Context(t)
		phone1, phone2 := servertest.NewPhone(t, false), servertest.NewPhone(t, false)
		ts.Register(t, phone1, number)
		if _, err := ts.Device.PutBackup(ts.WithToken(ctx, phone1.Credential), &pushauthv1.PutBackupRequest{Blob: []byte("b"), Passcode: "4831"}); err != nil {
			t.Fatal(err)
		}
		ts.Clock.Advance(time.Minute)
		ts.Register(t, phone2, number)
		p2 := ts.WithToken(ctx, phone2.Credential)
		for i, lock := range []time.Duration{0, time.Minute, 5 * time.Minute, time.Hour} {
			_, err := ts.Device.RestoreBackup(p2, &pushauthv1.RestoreBackupRequest{Passcode: "0001"})
			wantCode(t, err, codes.PermissionDenied, " left")
			if lock > 0 {
				_, err = ts.Device.RestoreBackup(p2, &pushauthv1.RestoreBackupRequest{Passcode: "4831"})
				wantCode(t, err, codes.ResourceExhausted, "try again")
				ts.Clock.Advance(lock)
			}
			info, _ := ts.Device.GetBackupInfo(p2, &pushauthv1.GetBackupInfoRequest{})
			if int(info.GetAttemptsLeft()) != 4-i {
				t.Fatalf("after %d failures %d attempts left", i+1, info.GetAttemptsLeft())
			}
		}
		_, err := ts.Device.RestoreBackup(p2, &pushauthv1.RestoreBackupRequest{Passcode: "0001"})
		wantCode(t, err, codes.PermissionDenied, "deleted")
		info, err := ts.Device.GetBackupInfo(p2, &pushauthv1.GetBackupInfoRequest{})
		if err != nil || info.GetExists() {
			t.Fatalf("backup not wiped: %v %v", info, err)
		}
		_, err = ts.Device.RestoreBackup(p2, &pushauthv1.RestoreBackupRequest{Passcode: "4831"})
		wantCode(t, err, codes.NotFound, "no backup")
		ev, _ := ts.Admin.ListAuditEvents(ts.AdminCtx(ctx), &pushauthv1.ListAuditEventsRequest{PageSize: 100})
		wiped := false
		for _, e := range ev.GetEvents() {
			wiped = wiped || e.GetAction() == "backup.wiped"
			for _, v := range e.GetDetails() {
				if strings.Contains(v, "4831") || strings.Contains(v, "0001") {
					t.Fatalf("audit holds a passcode: %v", e)
				}
			}
		}
		if !wiped {
			t.Fatal("no backup.wiped audit event")
		}
	})
}
