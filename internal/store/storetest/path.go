package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Conformance cases for store.RequestPath.

func testGetRequestWithTargets(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	r := newRequest("r1", "rp-1", "alice", t0)
	targets := []store.RequestTarget{
		{RequestID: "r1", DeviceID: "d2", Delivery: store.DeliverySent, UpdatedAt: t1, SeenAt: t2},
		{RequestID: "r1", DeviceID: "d1", Delivery: store.DeliveryFailed, Detail: "why", UpdatedAt: t1},
	}
	if err := s.CreateRequest(ctx, r, targets); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	if err := s.CreateRequest(ctx, newRequest("r-none", "rp-1", "alice", t0), nil); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	got, gotTargets, err := s.GetRequestWithTargets(ctx, "r1")
	if err != nil {
		t.Fatalf("GetRequestWithTargets: %v", err)
	}
	wantEqual(t, "request", got, r)
	wantEqual(t, "targets in device order", gotTargets, []store.RequestTarget{targets[1], targets[0]})
	got, gotTargets, err = s.GetRequestWithTargets(ctx, "r-none")
	if err != nil || got.ID != "r-none" || len(gotTargets) != 0 {
		t.Errorf("request without targets: %v, %v, %v", got.ID, gotTargets, err)
	}
	_, _, err = s.GetRequestWithTargets(ctx, "missing")
	wantErr(t, "GetRequestWithTargets(missing)", err, store.ErrNotFound)
}

func testListUserDevices(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	for _, id := range []string{"d1", "d2", "d3"} {
		if err := s.CreateDevice(ctx, newDevice(id)); err != nil {
			t.Fatalf("CreateDevice: %v", err)
		}
	}
	if err := s.RevokeDevice(ctx, "d2", t1); err != nil {
		t.Fatalf("RevokeDevice: %v", err)
	}
	for _, c := range []store.Connection{
		newConnection("c2", "rp-1", "alice", "d2", t1),
		newConnection("c1", "rp-1", "alice", "d1", t0),
		newConnection("c3", "rp-1", "alice", "d3", t0), // stays pending
		newConnection("c4", "rp-1", "bob", "d3", t0),
	} {
		mustConnection(t, s, c)
		if c.ID != "c3" {
			if err := s.ActivateConnection(ctx, c.ID, t2); err != nil {
				t.Fatalf("ActivateConnection: %v", err)
			}
		}
	}
	got, err := s.ListUserDevices(ctx, "rp-1", "alice")
	if err != nil {
		t.Fatalf("ListUserDevices: %v", err)
	}
	var ids []string
	for _, u := range got {
		ids = append(ids, u.Connection.ID+"/"+u.Device.ID)
		if u.Connection.DeviceID != u.Device.ID {
			t.Errorf("connection %s joined with device %s", u.Connection.ID, u.Device.ID)
		}
	}
	wantEqual(t, "active connections with their devices, oldest first", ids, []string{"c1/d1", "c2/d2"})
	d1 := newDevice("d1")
	wantEqual(t, "device", got[0].Device, d1)
	wantEqual(t, "revoked device is returned revoked", got[1].Device.RevokedAt, t1)
}

func testLockDecider(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	for _, id := range []string{"d1", "d2", "d3"} {
		if err := s.CreateDevice(ctx, newDevice(id)); err != nil {
			t.Fatalf("CreateDevice: %v", err)
		}
	}
	for _, c := range []store.Connection{newConnection("c1", "rp-1", "alice", "d1", t0), newConnection("c2", "rp-1", "alice", "d2", t0)} {
		mustConnection(t, s, c)
		if err := s.ActivateConnection(ctx, c.ID, t1); err != nil {
			t.Fatalf("ActivateConnection: %v", err)
		}
	}
	if err := s.RevokeDevice(ctx, "d2", t1); err != nil {
		t.Fatalf("RevokeDevice: %v", err)
	}
	if err := s.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error {
		u.ConsecutiveFailures, u.BackoffUntil, u.UpdatedAt = 2, t2, t1
		return nil
	}); err != nil {
		t.Fatalf("UpdateUserState: %v", err)
	}
	lock := func(device string) store.DeciderState {
		t.Helper()
		var st store.DeciderState
		if err := s.InTx(ctx, func(tx store.Store) error {
			var err error
			st, err = tx.LockDecider(ctx, "rp-1", "alice", device)
			return err
		}); err != nil {
			t.Fatalf("LockDecider(%s): %v", device, err)
		}
		return st
	}
	user := store.UserState{RelyingPartyID: "rp-1", UserRef: "alice", ConsecutiveFailures: 2, BackoffUntil: t2, UpdatedAt: t1}
	wantEqual(t, "connected device", lock("d1"), store.DeciderState{Connected: true, Registered: true, User: user})
	wantEqual(t, "revoked device", lock("d2").Registered, false)
	wantEqual(t, "device without connection", lock("d3"), store.DeciderState{Registered: true, User: store.UserState{RelyingPartyID: "rp-1", UserRef: "alice"}})
	wantEqual(t, "unknown device", lock("d9").Registered, false)
	st, err := func() (store.DeciderState, error) {
		var st store.DeciderState
		err := s.InTx(ctx, func(tx store.Store) error {
			var err error
			st, err = tx.LockDecider(ctx, "rp-1", "bob", "d1")
			return err
		})
		return st, err
	}()
	if err != nil || st.Connected || st.User.ConsecutiveFailures != 0 {
		t.Errorf("another user's login: %+v, %v", st, err)
	}
}

func testLockUserPending(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	lock := func(user string, now time.Time) (store.UserState, []store.Request) {
		t.Helper()
		var u store.UserState
		var pending []store.Request
		if err := s.InTx(ctx, func(tx store.Store) error {
			var err error
			u, pending, err = tx.LockUserPending(ctx, "rp-1", user, store.KindLogin, now)
			return err
		}); err != nil {
			t.Fatalf("LockUserPending(%s): %v", user, err)
		}
		return u, pending
	}
	u, pending := lock("alice", t0)
	wantEqual(t, "new user's state", u, store.UserState{RelyingPartyID: "rp-1", UserRef: "alice"})
	wantEqual(t, "new user's pending", len(pending), 0)
	if err := s.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error {
		u.ConsecutiveFailures, u.BackoffUntil, u.UpdatedAt = 2, t2, t1
		return nil
	}); err != nil {
		t.Fatalf("UpdateUserState: %v", err)
	}
	r2, r1 := newRequest("r2", "rp-1", "alice", t1), newRequest("r1", "rp-1", "alice", t0)
	pairing := newRequest("r3", "rp-1", "alice", t0)
	pairing.Kind = store.KindPairing
	for _, r := range []store.Request{r2, r1, pairing, newRequest("r4", "rp-1", "bob", t0)} {
		if err := s.CreateRequest(ctx, r, []store.RequestTarget{newTarget(r.ID, "d1")}); err != nil {
			t.Fatalf("CreateRequest: %v", err)
		}
	}
	u, pending = lock("alice", t0)
	wantEqual(t, "state", u, store.UserState{RelyingPartyID: "rp-1", UserRef: "alice", ConsecutiveFailures: 2, BackoffUntil: t2, UpdatedAt: t1})
	wantEqual(t, "pending logins, oldest first", pending, []store.Request{r1, r2})
	_, pending = lock("alice", r1.ExpiresAt)
	wantEqual(t, "expired ones left out", len(pending), 1)

	// The lock serializes: every caller sees what earlier holders
	// committed, so "at most 3 pending" holds under a burst.
	const callers, most = 100, 3
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			err := s.InTx(ctx, func(tx store.Store) error {
				_, pending, err := tx.LockUserPending(ctx, "rp-1", "dave", store.KindLogin, t0)
				if err != nil || len(pending) >= most {
					return err
				}
				return tx.CreateRequest(ctx, newRequest(fmt.Sprintf("burst-%d", i), "rp-1", "dave", t0), nil)
			})
			if err != nil {
				t.Errorf("burst: %v", err)
			}
		})
	}
	wg.Wait()
	_, pending = lock("dave", t0)
	wantEqual(t, "pending after a burst", len(pending), most)
}

func testListRequestsSettledSince(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	for i := range 5 {
		if err := s.CreateRequest(ctx, newRequest(fmt.Sprintf("r%d", i), "rp-1", "alice", t0), nil); err != nil {
			t.Fatalf("CreateRequest: %v", err)
		}
	}
	decide := func(id string, at time.Time) {
		t.Helper()
		if err := s.DecideRequest(ctx, store.Decision{RequestID: id, Status: store.StatusDenied, Reason: store.ReasonUser, At: at}); err != nil {
			t.Fatalf("DecideRequest(%s): %v", id, err)
		}
	}
	decide("r1", t0.Add(time.Second))
	decide("r2", t0.Add(2*time.Second))
	expired, err := s.ExpireRequests(ctx, t0.Add(time.Hour), 1) // r0, r3 or r4: expiry counts too
	if err != nil || len(expired) != 1 {
		t.Fatalf("ExpireRequests = %v, %v", expired, err)
	}
	since := func(at time.Time, limit int) []string {
		t.Helper()
		ids, err := s.ListRequestsSettledSince(ctx, at, limit)
		if err != nil {
			t.Fatalf("ListRequestsSettledSince(%v, %d): %v", at, limit, err)
		}
		slices.Sort(ids)
		return append([]string{}, ids...)
	}
	wantEqual(t, "settled since t0", since(t0, 10), sortedIDs("r1", "r2", expired[0].ID))
	wantEqual(t, "settled since the second decision (inclusive)", since(t0.Add(2*time.Second), 10), sortedIDs("r2", expired[0].ID))
	wantEqual(t, "settled since after the expiry", since(t0.Add(2*time.Hour), 10), []string{})
	wantEqual(t, "limited", len(since(t0, 2)), 2)
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

func testListSettledRequests(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	var ids []string
	for i := range 600 { // more than one batch's worth in one call is fine too
		r := newRequest(fmt.Sprintf("r%03d", i), "rp-1", "alice", t0)
		if i == 7 {
			r.ExpiresAt = t1
		}
		if err := s.CreateRequest(ctx, r, nil); err != nil {
			t.Fatalf("CreateRequest: %v", err)
		}
		ids = append(ids, r.ID)
	}
	if err := s.DecideRequest(ctx, store.Decision{RequestID: "r300", Status: store.StatusApproved, Reason: store.ReasonUser, At: t0}); err != nil {
		t.Fatalf("DecideRequest: %v", err)
	}
	got, err := s.ListSettledRequests(ctx, append(ids, "missing"), t0)
	if err != nil {
		t.Fatalf("ListSettledRequests: %v", err)
	}
	wantEqual(t, "settled at t0", got, []string{"r300"})
	got, err = s.ListSettledRequests(ctx, ids[:10], t1)
	if err != nil {
		t.Fatalf("ListSettledRequests: %v", err)
	}
	wantEqual(t, "settled at t1 (r007 expired)", got, []string{"r007"})
	if got, err := s.ListSettledRequests(ctx, nil, t0); err != nil || len(got) != 0 {
		t.Errorf("no ids: %v, %v", got, err)
	}
}
