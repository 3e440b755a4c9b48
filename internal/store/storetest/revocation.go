package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Conformance cases for taking revoked devices and removed connections off
// pending requests.

func testRemoveTargets(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	at := t0.Add(time.Minute) // every request below expires at t0+90s or so
	mustRequest(t, s, newRequest("r-two", "rp-1", "alice", t0), "d1", "d2")
	mustRequest(t, s, newRequest("r-only", "rp-1", "alice", t0.Add(-time.Second)), "d1")
	mustRequest(t, s, newRequest("r-bob", "rp-1", "bob", t0), "d1")
	mustRequest(t, s, newRequest("r-rp2", "rp-2", "alice", t0), "d1")
	mustRequest(t, s, newRequest("r-other-dev", "rp-1", "alice", t0), "d2")
	pairing := newRequest("r-pairing", "rp-1", "alice", t0)
	pairing.Kind = store.KindPairing
	mustRequest(t, s, pairing, "d1")
	mustRequest(t, s, newRequest("r-decided", "rp-1", "alice", t0), "d1")
	if err := s.DecideRequest(ctx, store.Decision{RequestID: "r-decided", Status: store.StatusDenied, Reason: store.ReasonUser, At: t0.Add(time.Second), DecidedBy: "d1"}); err != nil {
		t.Fatalf("DecideRequest: %v", err)
	}
	expired := newRequest("r-expired", "rp-1", "alice", t0)
	expired.ExpiresAt = at // expired at at exactly
	mustRequest(t, s, expired, "d1")

	remove := func(f store.TargetFilter, at time.Time) []string {
		t.Helper()
		rs, err := s.RemoveTargets(ctx, f, "the phone was disconnected", at)
		if err != nil {
			t.Fatalf("RemoveTargets(%+v): %v", f, err)
		}
		return requestIDs(rs)
	}
	// One connection: the user's logins at one relying party.
	conn := store.TargetFilter{DeviceID: "d1", RelyingPartyID: "rp-1", UserRef: "alice", Kind: store.KindLogin}
	wantEqual(t, "removed for a connection", remove(conn, at), []string{"r-only", "r-two"})
	wantEqual(t, "targets of r-two", listTargets(t, s, "r-two"), []store.RequestTarget{
		{RequestID: "r-two", DeviceID: "d1", Delivery: store.DeliveryRemoved, Detail: "the phone was disconnected", UpdatedAt: at},
		newTarget("r-two", "d2"),
	})
	wantEqual(t, "request stays pending", getRequest(t, s, "r-two").Status, store.StatusPending)
	wantEqual(t, "removed again", remove(conn, at), []string{})

	pending, err := s.ListDevicePendingRequests(ctx, "d1", at.Add(-time.Microsecond))
	if err != nil {
		t.Fatalf("ListDevicePendingRequests: %v", err)
	}
	wantEqual(t, "device d1 no longer lists removed targets", requestIDs(pending), []string{"r-bob", "r-expired", "r-pairing", "r-rp2"})
	if pending, err = s.ListDevicePendingRequests(ctx, "d2", at); err != nil {
		t.Fatalf("ListDevicePendingRequests: %v", err)
	}
	wantEqual(t, "device d2 still lists", requestIDs(pending), []string{"r-other-dev", "r-two"})

	// The whole device: every kind, user and relying party; not decided or
	// expired requests.
	wantEqual(t, "removed for the device", remove(store.TargetFilter{DeviceID: "d1"}, at), []string{"r-bob", "r-pairing", "r-rp2"})
	wantEqual(t, "decided request's target", listTargets(t, s, "r-decided")[0].Delivery, store.DeliveryQueued)
	wantEqual(t, "expired request's target", listTargets(t, s, "r-expired")[0].Delivery, store.DeliveryQueued)
	wantEqual(t, "unknown device", remove(store.TargetFilter{DeviceID: "nope"}, at), []string{})

	if _, err := s.RemoveTargets(ctx, store.TargetFilter{}, "", at); err == nil {
		t.Error("RemoveTargets without a device succeeded")
	}
	if _, err := s.RemoveTargets(ctx, store.TargetFilter{DeviceID: "d2"}, "", time.Time{}); err == nil {
		t.Error("RemoveTargets without a time succeeded")
	}

	// In a transaction that rolls back, nothing is removed.
	errRollback := errors.New("roll back")
	err = s.InTx(ctx, func(tx store.Store) error {
		rs, err := tx.RemoveTargets(ctx, store.TargetFilter{DeviceID: "d2"}, "gone", at)
		if err != nil {
			return err
		}
		wantEqual(t, "removed in the transaction", requestIDs(rs), []string{"r-other-dev", "r-two"})
		return errRollback
	})
	wantErr(t, "InTx", err, errRollback)
	wantEqual(t, "target after rollback", listTargets(t, s, "r-other-dev")[0].Delivery, store.DeliveryQueued)
}

// A push result that lands after the phone was taken off the request must
// not put the target back: REMOVED is final, under any interleaving.
func testRemovedTargetStaysRemoved(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	at := t0.Add(time.Minute)
	mustRequest(t, s, newRequest("r1", "rp-1", "alice", t0), "d1")
	if _, err := s.RemoveTargets(ctx, store.TargetFilter{DeviceID: "d1"}, "gone", at); err != nil {
		t.Fatalf("RemoveTargets: %v", err)
	}
	wantErr(t, "UpdateTargetDelivery after removal", s.UpdateTargetDelivery(ctx, "r1", "d1", store.DeliverySent, "", at), store.ErrConflict)
	wantEqual(t, "target after a late push result", listTargets(t, s, "r1")[0].Delivery, store.DeliveryRemoved)

	// Hundreds of push results race one removal, per request.
	const requests, results = 4, 100
	for i := range requests {
		mustRequest(t, s, newRequest(fmt.Sprintf("race-%d", i), "rp-1", "alice", t0), "d2")
	}
	errs := Burst(requests*(results+1), func(i int) error {
		id := fmt.Sprintf("race-%d", i%requests)
		if i < requests {
			_, err := s.RemoveTargets(ctx, store.TargetFilter{DeviceID: "d2"}, "gone", at)
			return err
		}
		err := s.UpdateTargetDelivery(ctx, id, "d2", store.DeliverySent, "", at)
		if errors.Is(err, store.ErrConflict) {
			return nil // it came after the removal
		}
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v", i, err)
		}
	}
	for i := range requests {
		wantEqual(t, "target after the race", listTargets(t, s, fmt.Sprintf("race-%d", i))[0].Delivery, store.DeliveryRemoved)
	}
}

func testTargetPending(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustRequest(t, s, newRequest("r1", "rp-1", "alice", t0), "d1", "d2")
	mustRequest(t, s, newRequest("r-decided", "rp-1", "alice", t0), "d1")
	if err := s.DecideRequest(ctx, store.Decision{RequestID: "r-decided", Status: store.StatusApproved, Reason: store.ReasonUser, At: t1, DecidedBy: "d1"}); err != nil {
		t.Fatalf("DecideRequest: %v", err)
	}
	if _, err := s.RemoveTargets(ctx, store.TargetFilter{DeviceID: "d2"}, "gone", t1); err != nil {
		t.Fatalf("RemoveTargets: %v", err)
	}
	expires := newRequest("r1", "rp-1", "alice", t0).ExpiresAt
	for _, tc := range []struct {
		name, request, device string
		now                   time.Time
		want                  bool
	}{
		{"pending", "r1", "d1", t1, true},
		{"just before expiry", "r1", "d1", expires.Add(-time.Microsecond), true},
		{"at expiry", "r1", "d1", expires, false},
		{"removed target", "r1", "d2", t1, false},
		{"no such target", "r1", "d3", t1, false},
		{"decided", "r-decided", "d1", t1, false},
		{"no such request", "nope", "d1", t1, false},
	} {
		got, err := s.TargetPending(ctx, tc.request, tc.device, tc.now)
		if err != nil {
			t.Fatalf("TargetPending(%s): %v", tc.name, err)
		}
		wantEqual(t, "TargetPending "+tc.name, got, tc.want)
	}
}

func testLockActiveConnection(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	active := mustConnection(t, s, newConnection("c1", "rp-1", "alice", "d1", t0))
	if err := s.ActivateConnection(ctx, "c1", t1); err != nil {
		t.Fatalf("ActivateConnection: %v", err)
	}
	active.Status, active.ActivatedAt = store.ConnectionActive, t1
	mustConnection(t, s, newConnection("c-pending", "rp-1", "alice", "d2", t0))
	mustConnection(t, s, newConnection("c-removed", "rp-1", "alice", "d3", t0))
	if err := s.RemoveConnection(ctx, "c-removed", t1); err != nil {
		t.Fatalf("RemoveConnection: %v", err)
	}

	got, err := s.LockActiveConnection(ctx, "rp-1", "alice", "d1")
	if err != nil {
		t.Fatalf("LockActiveConnection: %v", err)
	}
	wantEqual(t, "active connection", got, active)
	for _, k := range [][3]string{{"rp-1", "alice", "d2"}, {"rp-1", "alice", "d3"}, {"rp-1", "bob", "d1"}, {"rp-2", "alice", "d1"}} {
		_, err := s.LockActiveConnection(ctx, k[0], k[1], k[2])
		wantErr(t, "LockActiveConnection "+k[0]+"/"+k[1]+"/"+k[2], err, store.ErrNotFound)
	}

	// In a transaction it sees the transaction's own removal.
	err = s.InTx(ctx, func(tx store.Store) error {
		if _, err := tx.LockActiveConnection(ctx, "rp-1", "alice", "d1"); err != nil {
			return err
		}
		if err := tx.RemoveConnection(ctx, "c1", t2); err != nil {
			return err
		}
		_, err := tx.LockActiveConnection(ctx, "rp-1", "alice", "d1")
		wantErr(t, "LockActiveConnection after removal in the transaction", err, store.ErrNotFound)
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	_, err = s.LockActiveConnection(ctx, "rp-1", "alice", "d1")
	wantErr(t, "LockActiveConnection after removal", err, store.ErrNotFound)
}
