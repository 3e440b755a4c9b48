package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Conformance cases for pairing phrases, connections, requests and user
// states.

// exactlyOneWinsWith is exactlyOneWins for calls whose losers get loser.
func exactlyOneWinsWith(t *testing.T, what string, errs []error, loser error) {
	t.Helper()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, loser):
			t.Errorf("%s: racer %d: %v, want nil or %v", what, i, err, loser)
		}
	}
	if wins != 1 {
		t.Errorf("%s: %d racers won, want exactly 1", what, wins)
	}
}

// Pairing phrases.

func newPhrase(hash, deviceID string, created time.Time) store.PairingPhrase {
	return store.PairingPhrase{
		Hash:      []byte(hash),
		DeviceID:  deviceID,
		CreatedAt: created,
		ExpiresAt: created.Add(5 * time.Minute),
	}
}

func mustPhrase(t *testing.T, s store.Store, p store.PairingPhrase) store.PairingPhrase {
	t.Helper()
	if err := s.PutPairingPhrase(ctxT(t), p); err != nil {
		t.Fatalf("PutPairingPhrase(%q): %v", p.Hash, err)
	}
	return p
}

func testPairingPhraseClaim(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	p := mustPhrase(t, s, newPhrase("hash-1", "d1", t0))
	got, err := s.ClaimPairingPhrase(ctx, []byte("hash-1"), t1)
	if err != nil {
		t.Fatalf("ClaimPairingPhrase: %v", err)
	}
	want := p
	want.UsedAt = t1
	wantEqual(t, "claimed phrase", got, want)

	_, err = s.ClaimPairingPhrase(ctx, []byte("hash-1"), t2)
	wantErr(t, "second ClaimPairingPhrase", err, store.ErrNotFound)
	_, err = s.ClaimPairingPhrase(ctx, []byte("nope"), t1)
	wantErr(t, "ClaimPairingPhrase unknown", err, store.ErrNotFound)
	_, err = s.ClaimPairingPhrase(ctx, []byte("HASH-1"), t1)
	wantErr(t, "ClaimPairingPhrase differing in case", err, store.ErrNotFound)

	// Expired at ExpiresAt exactly, and after; claimable a microsecond before.
	exp := mustPhrase(t, s, newPhrase("hash-2", "d2", t0))
	_, err = s.ClaimPairingPhrase(ctx, exp.Hash, exp.ExpiresAt)
	wantErr(t, "ClaimPairingPhrase at ExpiresAt", err, store.ErrNotFound)
	_, err = s.ClaimPairingPhrase(ctx, exp.Hash, exp.ExpiresAt.Add(time.Hour))
	wantErr(t, "ClaimPairingPhrase after ExpiresAt", err, store.ErrNotFound)
	justBefore := exp.ExpiresAt.Add(-time.Microsecond)
	got, err = s.ClaimPairingPhrase(ctx, exp.Hash, justBefore)
	if err != nil {
		t.Fatalf("ClaimPairingPhrase just before ExpiresAt: %v", err)
	}
	wantEqual(t, "UsedAt just before expiry", got.UsedAt, justBefore)
}

func testPairingPhrasePut(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// A new phrase replaces the device's old one, not other devices' ones.
	mustPhrase(t, s, newPhrase("old", "d1", t0))
	mustPhrase(t, s, newPhrase("other", "d2", t0))
	mustPhrase(t, s, newPhrase("new", "d1", t1))
	_, err := s.ClaimPairingPhrase(ctx, []byte("old"), t1)
	wantErr(t, "ClaimPairingPhrase of replaced phrase", err, store.ErrNotFound)
	if _, err := s.ClaimPairingPhrase(ctx, []byte("new"), t1); err != nil {
		t.Errorf("ClaimPairingPhrase of new phrase: %v", err)
	}
	if _, err := s.ClaimPairingPhrase(ctx, []byte("other"), t1); err != nil {
		t.Errorf("ClaimPairingPhrase of another device's phrase: %v", err)
	}

	// A live phrase with the same hash, even a used one, is a conflict; the
	// losing device keeps its old phrase.
	live := mustPhrase(t, s, newPhrase("live", "d3", t1))
	mustPhrase(t, s, newPhrase("d4-old", "d4", t1))
	wantErr(t, "PutPairingPhrase of a live hash", s.PutPairingPhrase(ctx, newPhrase("live", "d4", t2)), store.ErrConflict)
	wantErr(t, "PutPairingPhrase of a used live hash", s.PutPairingPhrase(ctx, newPhrase("new", "d4", t2)), store.ErrConflict)
	got, err := s.ClaimPairingPhrase(ctx, []byte("live"), t2)
	if err != nil {
		t.Fatalf("ClaimPairingPhrase after conflicting put: %v", err)
	}
	want := live
	want.UsedAt = t2
	wantEqual(t, "phrase after conflicting put", got, want)
	if _, err := s.ClaimPairingPhrase(ctx, []byte("d4-old"), t2); err != nil {
		t.Errorf("conflicting put removed the device's old phrase: %v", err)
	}

	// A phrase that expired before the new one was created is deleted, so
	// its hash is free again; one expiring exactly then has expired too.
	mustPhrase(t, s, newPhrase("stale", "d5", t0)) // expires t0+5m
	mustPhrase(t, s, newPhrase("edge", "d6", t0))
	later := t0.Add(5 * time.Minute)
	reused := mustPhrase(t, s, newPhrase("stale", "d7", later.Add(time.Second)))
	mustPhrase(t, s, newPhrase("edge", "d8", later))
	got, err = s.ClaimPairingPhrase(ctx, []byte("stale"), later.Add(2*time.Second))
	if err != nil {
		t.Fatalf("ClaimPairingPhrase of reused hash: %v", err)
	}
	want = reused
	want.UsedAt = later.Add(2 * time.Second)
	wantEqual(t, "phrase with reused hash", got, want)
	got, err = s.ClaimPairingPhrase(ctx, []byte("edge"), later.Add(time.Second))
	if err != nil {
		t.Fatalf("ClaimPairingPhrase of hash reused at expiry: %v", err)
	}
	wantEqual(t, "device of hash reused at expiry", got.DeviceID, "d8")
}

func testConcurrentClaimPairingPhrase(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustPhrase(t, s, newPhrase("racy", "d1", t0))
	claimed := make([]store.PairingPhrase, racers)
	errs := race(func(i int) error {
		var err error
		claimed[i], err = s.ClaimPairingPhrase(ctx, []byte("racy"), t1.Add(time.Duration(i)*time.Second))
		return err
	})
	exactlyOneWinsWith(t, "ClaimPairingPhrase", errs, store.ErrNotFound)
	for i, err := range errs {
		if err == nil {
			wantEqual(t, "UsedAt is the winner's", claimed[i].UsedAt, t1.Add(time.Duration(i)*time.Second))
		}
	}
}

// Connections.

func newConnection(id, rpID, userRef, deviceID string, created time.Time) store.Connection {
	return store.Connection{
		ID:             id,
		RelyingPartyID: rpID,
		UserRef:        userRef,
		DeviceID:       deviceID,
		AccountLabel:   "alice@" + rpID,
		Status:         store.ConnectionPending,
		CreatedAt:      created,
	}
}

func mustConnection(t *testing.T, s store.Store, c store.Connection) store.Connection {
	t.Helper()
	if err := s.CreateConnection(ctxT(t), c); err != nil {
		t.Fatalf("CreateConnection(%q): %v", c.ID, err)
	}
	return c
}

func getConnection(t *testing.T, s store.Store, id string) store.Connection {
	t.Helper()
	c, err := s.GetConnection(ctxT(t), id)
	if err != nil {
		t.Fatalf("GetConnection(%q): %v", id, err)
	}
	return c
}

func connectionIDs(cs []store.Connection) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func testConnectionCreateGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	c := mustConnection(t, s, newConnection("c1", "rp-1", "alice", "d1", t0))
	wantEqual(t, "GetConnection", getConnection(t, s, "c1"), c)

	full := newConnection("c2", "rp-1", "bob", "d1", t0)
	full.Status = store.ConnectionRemoved
	full.ActivatedAt = t1
	full.RemovedAt = t2
	mustConnection(t, s, full)
	wantEqual(t, "GetConnection with every field", getConnection(t, s, "c2"), full)

	dup := newConnection("c1", "rp-2", "carol", "d2", t1)
	wantErr(t, "CreateConnection taken ID", s.CreateConnection(ctx, dup), store.ErrConflict)
	wantEqual(t, "connection after conflicting create", getConnection(t, s, "c1"), c)

	_, err := s.GetConnection(ctx, "nope")
	wantErr(t, "GetConnection unknown", err, store.ErrNotFound)
}

func testConnectionActivate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	c1 := mustConnection(t, s, newConnection("c1", "rp-1", "alice", "d1", t0))
	// Same user on another device, and another user on the same device.
	mustConnection(t, s, newConnection("c-dev2", "rp-1", "alice", "d2", t0))
	mustConnection(t, s, newConnection("c-bob", "rp-1", "bob", "d1", t0))
	mustConnection(t, s, newConnection("c-rp2", "rp-2", "alice", "d1", t0))
	for _, id := range []string{"c-dev2", "c-bob", "c-rp2"} {
		if err := s.ActivateConnection(ctx, id, t0); err != nil {
			t.Fatalf("ActivateConnection(%q): %v", id, err)
		}
	}

	if err := s.ActivateConnection(ctx, "c1", t1); err != nil {
		t.Fatalf("ActivateConnection: %v", err)
	}
	want1 := c1
	want1.Status, want1.ActivatedAt = store.ConnectionActive, t1
	wantEqual(t, "activated connection", getConnection(t, s, "c1"), want1)
	wantErr(t, "second ActivateConnection", s.ActivateConnection(ctx, "c1", t2), store.ErrConflict)
	wantEqual(t, "connection after losing activate", getConnection(t, s, "c1"), want1)
	wantErr(t, "ActivateConnection unknown", s.ActivateConnection(ctx, "nope", t2), store.ErrNotFound)

	// Pairing again replaces the active connection of the same user and device.
	c2 := mustConnection(t, s, newConnection("c2", "rp-1", "alice", "d1", t1))
	if err := s.ActivateConnection(ctx, "c2", t2); err != nil {
		t.Fatalf("ActivateConnection of a second connection: %v", err)
	}
	want1.Status, want1.RemovedAt = store.ConnectionRemoved, t2
	wantEqual(t, "replaced connection", getConnection(t, s, "c1"), want1)
	want2 := c2
	want2.Status, want2.ActivatedAt = store.ConnectionActive, t2
	wantEqual(t, "replacing connection", getConnection(t, s, "c2"), want2)
	for _, id := range []string{"c-dev2", "c-bob", "c-rp2"} {
		if got := getConnection(t, s, id).Status; got != store.ConnectionActive {
			t.Errorf("connection %q of another user, device or relying party is %s, want ACTIVE", id, got)
		}
	}

	// A removed connection cannot be activated.
	c3 := mustConnection(t, s, newConnection("c3", "rp-1", "alice", "d1", t2))
	if err := s.RemoveConnection(ctx, "c3", t2); err != nil {
		t.Fatalf("RemoveConnection: %v", err)
	}
	wantErr(t, "ActivateConnection of removed", s.ActivateConnection(ctx, c3.ID, t3), store.ErrConflict)
	wantEqual(t, "active connection after refused activate", getConnection(t, s, "c2"), want2)

	// The store keeps at most one ACTIVE connection itself.
	dupActive := newConnection("c4", "rp-1", "alice", "d1", t3)
	dupActive.Status = store.ConnectionActive
	wantErr(t, "CreateConnection of a second ACTIVE", s.CreateConnection(ctx, dupActive), store.ErrConflict)
}

func testConnectionList(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// Stored out of creation order; IDs do not follow creation either.
	for _, c := range []store.Connection{
		newConnection("c-b", "rp-1", "alice", "d1", t2),
		newConnection("c-c", "rp-2", "alice", "d1", t0),
		newConnection("c-a", "rp-1", "bob", "d1", t1),
		newConnection("c-d", "rp-1", "alice", "d2", t1),
		newConnection("c-pending", "rp-1", "alice", "d3", t0),
		newConnection("c-removed", "rp-1", "carol", "d1", t0),
	} {
		mustConnection(t, s, c)
		if c.ID != "c-pending" {
			if err := s.ActivateConnection(ctx, c.ID, t3); err != nil {
				t.Fatalf("ActivateConnection(%q): %v", c.ID, err)
			}
		}
	}
	if err := s.RemoveConnection(ctx, "c-removed", t3); err != nil {
		t.Fatalf("RemoveConnection: %v", err)
	}

	byDevice := func(deviceID string) []store.Connection {
		t.Helper()
		cs, err := s.ListDeviceConnections(ctx, deviceID)
		if err != nil {
			t.Fatalf("ListDeviceConnections(%q): %v", deviceID, err)
		}
		return cs
	}
	byUser := func(rpID, userRef string) []store.Connection {
		t.Helper()
		cs, err := s.ListUserConnections(ctx, rpID, userRef)
		if err != nil {
			t.Fatalf("ListUserConnections(%q, %q): %v", rpID, userRef, err)
		}
		return cs
	}
	wantEqual(t, "device d1", connectionIDs(byDevice("d1")), []string{"c-c", "c-a", "c-b"})
	wantEqual(t, "device d3 (pending only)", connectionIDs(byDevice("d3")), []string{})
	wantEqual(t, "unknown device", connectionIDs(byDevice("nope")), []string{})
	wantEqual(t, "user rp-1/alice", connectionIDs(byUser("rp-1", "alice")), []string{"c-d", "c-b"})
	wantEqual(t, "user rp-2/alice", connectionIDs(byUser("rp-2", "alice")), []string{"c-c"})
	wantEqual(t, "user rp-1/carol (removed only)", connectionIDs(byUser("rp-1", "carol")), []string{})
	wantEqual(t, "user differing in case", connectionIDs(byUser("rp-1", "Alice")), []string{})
	if cs := byDevice("d2"); len(cs) == 1 {
		want := newConnection("c-d", "rp-1", "alice", "d2", t1)
		want.Status, want.ActivatedAt = store.ConnectionActive, t3
		wantEqual(t, "listed connection", cs[0], want)
	}
}

func testConnectionRemove(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	pending := mustConnection(t, s, newConnection("c1", "rp-1", "alice", "d1", t0))
	active := mustConnection(t, s, newConnection("c2", "rp-1", "alice", "d2", t0))
	if err := s.ActivateConnection(ctx, "c2", t1); err != nil {
		t.Fatalf("ActivateConnection: %v", err)
	}
	for _, c := range []store.Connection{pending, active} {
		if err := s.RemoveConnection(ctx, c.ID, t2); err != nil {
			t.Fatalf("RemoveConnection(%q): %v", c.ID, err)
		}
		wantErr(t, "second RemoveConnection", s.RemoveConnection(ctx, c.ID, t3), store.ErrConflict)
	}
	want := pending
	want.Status, want.RemovedAt = store.ConnectionRemoved, t2
	wantEqual(t, "removed pending connection", getConnection(t, s, "c1"), want)
	want = active
	want.Status, want.ActivatedAt, want.RemovedAt = store.ConnectionRemoved, t1, t2
	wantEqual(t, "removed active connection", getConnection(t, s, "c2"), want)
	wantErr(t, "RemoveConnection unknown", s.RemoveConnection(ctx, "nope", t2), store.ErrNotFound)

	cs, err := s.ListDeviceConnections(ctx, "d2")
	if err != nil {
		t.Fatalf("ListDeviceConnections: %v", err)
	}
	wantEqual(t, "connections after remove", connectionIDs(cs), []string{})
}

func testConcurrentActivateConnection(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// Of racers activating one connection, exactly one wins.
	mustConnection(t, s, newConnection("c", "rp-1", "alice", "d1", t0))
	errs := race(func(i int) error {
		return s.ActivateConnection(ctx, "c", t1.Add(time.Duration(i)*time.Second))
	})
	exactlyOneWins(t, "ActivateConnection", errs)

	// Racers activating different connections of one user and device all
	// win, one after the other, and one connection is left ACTIVE.
	for i := range racers {
		mustConnection(t, s, newConnection(fmt.Sprintf("c%02d", i), "rp-1", "bob", "d1", t0))
	}
	errs = race(func(i int) error {
		return s.ActivateConnection(ctx, fmt.Sprintf("c%02d", i), t1)
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("ActivateConnection of c%02d: %v", i, err)
		}
	}
	cs, err := s.ListUserConnections(ctx, "rp-1", "bob")
	if err != nil {
		t.Fatalf("ListUserConnections: %v", err)
	}
	if len(cs) != 1 {
		t.Errorf("%d ACTIVE connections left, want 1: %v", len(cs), connectionIDs(cs))
	}
}

// Requests.

func newRequest(id, rpID, userRef string, created time.Time) store.Request {
	return store.Request{
		ID:             id,
		Kind:           store.KindLogin,
		RelyingPartyID: rpID,
		UserRef:        userRef,
		AccountLabel:   "alice@shop",
		Context: store.RequestContext{
			AppName:   "Shop",
			IPAddress: "192.0.2.7",
			Location:  "Berlin, DE",
			Browser:   "Firefox on Linux",
			Action:    "Log in",
		},
		NumberMatching: store.NumberMatchingNumber,
		NumberHash:     []byte("number hash " + id),
		Status:         store.StatusPending,
		CreatedAt:      created,
		ExpiresAt:      created.Add(90 * time.Second),
	}
}

func newTarget(requestID, deviceID string) store.RequestTarget {
	return store.RequestTarget{RequestID: requestID, DeviceID: deviceID, Delivery: store.DeliveryQueued, UpdatedAt: t0}
}

func mustRequest(t *testing.T, s store.Store, r store.Request, deviceIDs ...string) store.Request {
	t.Helper()
	var targets []store.RequestTarget
	for _, d := range deviceIDs {
		targets = append(targets, newTarget(r.ID, d))
	}
	if err := s.CreateRequest(ctxT(t), r, targets); err != nil {
		t.Fatalf("CreateRequest(%q): %v", r.ID, err)
	}
	return r
}

func getRequest(t *testing.T, s store.Store, id string) store.Request {
	t.Helper()
	r, err := s.GetRequest(ctxT(t), id)
	if err != nil {
		t.Fatalf("GetRequest(%q): %v", id, err)
	}
	return r
}

func listTargets(t *testing.T, s store.Store, requestID string) []store.RequestTarget {
	t.Helper()
	ts, err := s.ListRequestTargets(ctxT(t), requestID)
	if err != nil {
		t.Fatalf("ListRequestTargets(%q): %v", requestID, err)
	}
	return ts
}

func requestIDs(rs []store.Request) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testRequestCreateGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	r := newRequest("r1", "rp-1", "alice", t0)
	targets := []store.RequestTarget{
		{RequestID: "r1", DeviceID: "d-b", Delivery: store.DeliverySent, UpdatedAt: t1, SeenAt: t2},
		{RequestID: "r1", DeviceID: "d-a", Delivery: store.DeliveryFailed, Detail: "APNs said 503", UpdatedAt: t1},
		{RequestID: "r1", DeviceID: "d-C", Delivery: store.DeliveryQueued},
	}
	if err := s.CreateRequest(ctx, r, targets); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	got := getRequest(t, s, "r1")
	wantEqual(t, "GetRequest", got, r)
	got.NumberHash[0] ^= 0xff // Get returns a copy
	wantEqual(t, "GetRequest again", getRequest(t, s, "r1"), r)
	wantEqual(t, "ListRequestTargets", listTargets(t, s, "r1"), []store.RequestTarget{targets[2], targets[1], targets[0]})

	// Every field set.
	full := newRequest("r2", "rp-1", "alice", t0)
	full.Kind = store.KindPairing
	full.ConnectionID = "c1"
	full.NumberMatching = store.NumberMatchingCode
	full.Status = store.StatusApproved
	full.Reason = store.ReasonLocationRule
	full.DecidedAt = t1
	full.DecidedBy = "d1"
	full.Payload = []byte("pushauth-decision|r2|APPROVED")
	full.Signature = []byte{0x30, 0x45, 0x00, 0xff}
	full.AutoApproved = true
	full.LocationRuleID = "lr-1"
	mustRequest(t, s, full, "d1")
	wantEqual(t, "GetRequest with every field", getRequest(t, s, "r2"), full)

	// Every optional field unset: nil byte slices stay nil.
	bare := store.Request{ID: "r3", Kind: store.KindLogin, RelyingPartyID: "rp-1", UserRef: "bob", Status: store.StatusPending}
	mustRequest(t, s, bare)
	gotBare := getRequest(t, s, "r3")
	wantEqual(t, "GetRequest with zero fields", gotBare, bare)
	if gotBare.NumberHash != nil || gotBare.Payload != nil || gotBare.Signature != nil {
		t.Errorf("nil byte slices read back as %q, %q, %q", gotBare.NumberHash, gotBare.Payload, gotBare.Signature)
	}
	wantEqual(t, "targets of request without targets", len(listTargets(t, s, "r3")), 0)

	// A taken ID conflicts and stores none of the new targets.
	dup := newRequest("r1", "rp-2", "carol", t1)
	err := s.CreateRequest(ctx, dup, []store.RequestTarget{newTarget("r1", "d-new")})
	wantErr(t, "CreateRequest taken ID", err, store.ErrConflict)
	wantEqual(t, "request after conflicting create", getRequest(t, s, "r1"), r)
	wantEqual(t, "targets after conflicting create", len(listTargets(t, s, "r1")), 3)

	// Two targets on one device conflict, and the request is not stored.
	err = s.CreateRequest(ctx, newRequest("r4", "rp-1", "alice", t0), []store.RequestTarget{newTarget("r4", "d1"), newTarget("r4", "d1")})
	wantErr(t, "CreateRequest with a device twice", err, store.ErrConflict)
	_, err = s.GetRequest(ctx, "r4")
	wantErr(t, "request whose targets conflicted", err, store.ErrNotFound)

	_, err = s.GetRequest(ctx, "nope")
	wantErr(t, "GetRequest unknown", err, store.ErrNotFound)
	wantEqual(t, "targets of unknown request", len(listTargets(t, s, "nope")), 0)
}

func testRequestPendingLists(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := t0.Add(time.Minute)
	mustRequest(t, s, newRequest("r-c", "rp-1", "alice", t0), "d1", "d2") // expires t0+90s
	mustRequest(t, s, newRequest("r-a", "rp-1", "alice", t0.Add(time.Second)), "d1")
	mustRequest(t, s, newRequest("r-b", "rp-1", "alice", t0.Add(-time.Second)), "d2", "d1")
	mustRequest(t, s, newRequest("r-other-dev", "rp-1", "alice", t0), "d2")
	expired := newRequest("r-expired", "rp-1", "alice", t0)
	expired.ExpiresAt = now // expired at now exactly
	mustRequest(t, s, expired, "d1")
	mustRequest(t, s, newRequest("r-decided", "rp-1", "alice", t0), "d1")
	if err := s.DecideRequest(ctx, store.Decision{RequestID: "r-decided", Status: store.StatusDenied, Reason: store.ReasonUser, At: t0.Add(time.Second), DecidedBy: "d1"}); err != nil {
		t.Fatalf("DecideRequest: %v", err)
	}
	pairing := newRequest("r-pairing", "rp-1", "alice", t0)
	pairing.Kind = store.KindPairing
	mustRequest(t, s, pairing, "d1")
	mustRequest(t, s, newRequest("r-bob", "rp-1", "bob", t0), "d3")
	mustRequest(t, s, newRequest("r-rp2", "rp-2", "alice", t0), "d3")

	byDevice := func(deviceID string, now time.Time) []store.Request {
		t.Helper()
		rs, err := s.ListDevicePendingRequests(ctx, deviceID, now)
		if err != nil {
			t.Fatalf("ListDevicePendingRequests(%q): %v", deviceID, err)
		}
		return rs
	}
	byUser := func(rpID, userRef, kind string, now time.Time) []store.Request {
		t.Helper()
		rs, err := s.ListUserPendingRequests(ctx, rpID, userRef, kind, now)
		if err != nil {
			t.Fatalf("ListUserPendingRequests(%q, %q, %q): %v", rpID, userRef, kind, err)
		}
		return rs
	}
	wantEqual(t, "device d1", requestIDs(byDevice("d1", now)), []string{"r-b", "r-c", "r-pairing", "r-a"})
	wantEqual(t, "device d2", requestIDs(byDevice("d2", now)), []string{"r-b", "r-c", "r-other-dev"})
	wantEqual(t, "device d1 earlier", requestIDs(byDevice("d1", now.Add(-time.Microsecond))), []string{"r-b", "r-c", "r-expired", "r-pairing", "r-a"})
	wantEqual(t, "device d1 after expiry", requestIDs(byDevice("d1", t3)), []string{})
	wantEqual(t, "unknown device", requestIDs(byDevice("nope", now)), []string{})
	if rs := byDevice("d3", now); len(rs) == 2 {
		wantEqual(t, "listed request", rs[0], newRequest("r-bob", "rp-1", "bob", t0))
	}

	wantEqual(t, "user logins", requestIDs(byUser("rp-1", "alice", store.KindLogin, now)), []string{"r-b", "r-c", "r-other-dev", "r-a"})
	wantEqual(t, "user pairings", requestIDs(byUser("rp-1", "alice", store.KindPairing, now)), []string{"r-pairing"})
	wantEqual(t, "other user", requestIDs(byUser("rp-1", "bob", store.KindLogin, now)), []string{"r-bob"})
	wantEqual(t, "other relying party", requestIDs(byUser("rp-2", "alice", store.KindLogin, now)), []string{"r-rp2"})
	wantEqual(t, "unknown user", requestIDs(byUser("rp-1", "nope", store.KindLogin, now)), []string{})
}

func testRequestDecide(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	r := mustRequest(t, s, newRequest("r1", "rp-1", "alice", t0), "d1") // expires t0+90s
	d := store.Decision{
		RequestID:      "r1",
		Status:         store.StatusApproved,
		Reason:         store.ReasonLocationRule,
		At:             t1,
		DecidedBy:      "d1",
		Payload:        []byte("pushauth-decision|r1|APPROVED"),
		Signature:      []byte{0x30, 0x44, 0x02},
		AutoApproved:   true,
		LocationRuleID: "lr-1",
	}
	if err := s.DecideRequest(ctx, d); err != nil {
		t.Fatalf("DecideRequest: %v", err)
	}
	want := r
	want.Status, want.Reason, want.DecidedAt, want.DecidedBy = d.Status, d.Reason, d.At, d.DecidedBy
	want.Payload, want.Signature, want.AutoApproved, want.LocationRuleID = d.Payload, d.Signature, d.AutoApproved, d.LocationRuleID
	wantEqual(t, "decided request", getRequest(t, s, "r1"), want)

	second := store.Decision{RequestID: "r1", Status: store.StatusDenied, Reason: store.ReasonUser, At: t1.Add(time.Second), DecidedBy: "d2"}
	wantErr(t, "second DecideRequest", s.DecideRequest(ctx, second), store.ErrConflict)
	expire := store.Decision{RequestID: "r1", Status: store.StatusExpired, Reason: store.ReasonTimeout, At: t3}
	wantErr(t, "DecideRequest EXPIRED of decided", s.DecideRequest(ctx, expire), store.ErrConflict)
	wantEqual(t, "request after losing decisions", getRequest(t, s, "r1"), want)
	wantErr(t, "DecideRequest unknown", s.DecideRequest(ctx, store.Decision{RequestID: "nope", Status: store.StatusDenied, At: t1}), store.ErrNotFound)

	// Expired at ExpiresAt exactly, and after, unless the decision is EXPIRED.
	r2 := mustRequest(t, s, newRequest("r2", "rp-1", "alice", t0), "d1")
	for _, at := range []time.Time{r2.ExpiresAt, r2.ExpiresAt.Add(time.Hour)} {
		late := store.Decision{RequestID: "r2", Status: store.StatusApproved, Reason: store.ReasonUser, At: at, DecidedBy: "d1"}
		wantErr(t, fmt.Sprintf("DecideRequest at %v", at), s.DecideRequest(ctx, late), store.ErrConflict)
	}
	wantEqual(t, "request after late decision", getRequest(t, s, "r2"), r2)
	if err := s.DecideRequest(ctx, store.Decision{RequestID: "r2", Status: store.StatusExpired, Reason: store.ReasonTimeout, At: t3}); err != nil {
		t.Fatalf("DecideRequest EXPIRED after expiry: %v", err)
	}
	want2 := r2
	want2.Status, want2.Reason, want2.DecidedAt = store.StatusExpired, store.ReasonTimeout, t3
	wantEqual(t, "expired request", getRequest(t, s, "r2"), want2)

	// Decidable a microsecond before ExpiresAt; a decision without a device
	// or signature leaves those empty.
	r3 := mustRequest(t, s, newRequest("r3", "rp-1", "alice", t0), "d1")
	justBefore := r3.ExpiresAt.Add(-time.Microsecond)
	if err := s.DecideRequest(ctx, store.Decision{RequestID: "r3", Status: store.StatusCancelled, Reason: store.ReasonCancelled, At: justBefore}); err != nil {
		t.Fatalf("DecideRequest just before ExpiresAt: %v", err)
	}
	want3 := r3
	want3.Status, want3.Reason, want3.DecidedAt = store.StatusCancelled, store.ReasonCancelled, justBefore
	wantEqual(t, "cancelled request", getRequest(t, s, "r3"), want3)
}

func testConcurrentDecideRequest(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustRequest(t, s, newRequest("r1", "rp-1", "alice", t0), "d1")
	errs := race(func(i int) error {
		status := store.StatusApproved
		if i%2 == 1 {
			status = store.StatusDenied
		}
		return s.DecideRequest(ctx, store.Decision{
			RequestID: "r1", Status: status, Reason: store.ReasonUser,
			At: t0.Add(time.Duration(i) * time.Second), DecidedBy: fmt.Sprintf("d%02d", i),
		})
	})
	exactlyOneWins(t, "DecideRequest", errs)
	r := getRequest(t, s, "r1")
	for i, err := range errs {
		if err == nil {
			wantEqual(t, "DecidedBy is the winner's", r.DecidedBy, fmt.Sprintf("d%02d", i))
			wantEqual(t, "DecidedAt is the winner's", r.DecidedAt, t0.Add(time.Duration(i)*time.Second))
		}
	}
}

func testRequestExpire(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	now := t0.Add(time.Hour)
	expire := func(now time.Time, limit int) []store.Request {
		t.Helper()
		rs, err := s.ExpireRequests(ctx, now, limit)
		if err != nil {
			t.Fatalf("ExpireRequests(%v, %d): %v", now, limit, err)
		}
		return rs
	}
	wantEqual(t, "nothing to expire", requestIDs(expire(now, 10)), []string{})

	// Due: expiring at now or before. Stored out of expiry order.
	var due []store.Request
	for i, exp := range []time.Duration{-3, 0, -1, -2} {
		r := newRequest(fmt.Sprintf("due-%d", i), "rp-1", "alice", t0)
		r.ExpiresAt = now.Add(exp * time.Minute)
		due = append(due, mustRequest(t, s, r, "d1"))
	}
	notYet := newRequest("not-yet", "rp-1", "alice", t0)
	notYet.ExpiresAt = now.Add(time.Microsecond)
	mustRequest(t, s, notYet, "d1")
	decided := newRequest("decided", "rp-1", "alice", t0)
	decided.ExpiresAt = now.Add(-time.Hour)
	decided.Status, decided.Reason, decided.DecidedAt = store.StatusDenied, store.ReasonUser, t1
	mustRequest(t, s, decided, "d1")

	first := expire(now, 3)
	wantEqual(t, "first batch, earliest expiry first", requestIDs(first), []string{"due-0", "due-3", "due-2"})
	if len(first) > 0 {
		want := due[0]
		want.Status, want.Reason, want.DecidedAt = store.StatusExpired, store.ReasonTimeout, now
		wantEqual(t, "expired request as returned", first[0], want)
		wantEqual(t, "expired request as stored", getRequest(t, s, "due-0"), want)
	}
	wantEqual(t, "second batch", requestIDs(expire(now, 3)), []string{"due-1"})
	wantEqual(t, "third batch", requestIDs(expire(now, 3)), []string{})
	wantEqual(t, "untouched pending request", getRequest(t, s, "not-yet"), notYet)
	wantEqual(t, "untouched decided request", getRequest(t, s, "decided"), decided)
	wantEqual(t, "later", requestIDs(expire(now.Add(time.Microsecond), 10)), []string{"not-yet"})

	// An expired request takes no decision.
	err := s.DecideRequest(ctx, store.Decision{RequestID: "due-1", Status: store.StatusExpired, Reason: store.ReasonTimeout, At: now})
	wantErr(t, "DecideRequest of expired request", err, store.ErrConflict)
}

func testConcurrentExpireRequests(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const n = 50
	now := t0.Add(time.Hour)
	for i := range n {
		r := newRequest(fmt.Sprintf("r%02d", i), "rp-1", "alice", t0)
		r.ExpiresAt = now.Add(-time.Duration(i%7) * time.Second)
		if err := s.CreateRequest(ctx, r, nil); err != nil {
			t.Fatalf("CreateRequest: %v", err)
		}
	}
	const callers = 2
	got := make([][]string, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			<-start
			for {
				rs, err := s.ExpireRequests(ctx, now, 3)
				if err != nil {
					errs[c] = err
					return
				}
				if len(rs) == 0 {
					return
				}
				for _, r := range rs {
					if r.Status != store.StatusExpired {
						errs[c] = fmt.Errorf("request %s returned as %s", r.ID, r.Status)
						return
					}
					got[c] = append(got[c], r.ID)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", c, err)
		}
	}
	seen := map[string]int{}
	for c := range callers {
		for _, id := range got[c] {
			if prev, ok := seen[id]; ok {
				t.Errorf("request %s returned to caller %d and caller %d", id, prev, c)
			}
			seen[id] = c
		}
	}
	if len(seen) != n {
		t.Errorf("%d requests returned, want %d", len(seen), n)
	}
	t.Logf("callers got %d and %d requests", len(got[0]), len(got[1]))
	left, err := s.ExpireRequests(ctx, now, n)
	if err != nil {
		t.Fatalf("ExpireRequests: %v", err)
	}
	wantEqual(t, "left to expire", requestIDs(left), []string{})
}

func testRequestTargets(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustRequest(t, s, newRequest("r1", "rp-1", "alice", t0), "d1", "d2")
	if err := s.UpdateTargetDelivery(ctx, "r1", "d1", store.DeliveryFailed, "FCM said UNAVAILABLE", t1); err != nil {
		t.Fatalf("UpdateTargetDelivery: %v", err)
	}
	if err := s.UpdateTargetDelivery(ctx, "r1", "d1", store.DeliverySent, "", t2); err != nil {
		t.Fatalf("UpdateTargetDelivery: %v", err)
	}
	// The same values again still find the target.
	if err := s.UpdateTargetDelivery(ctx, "r1", "d1", store.DeliverySent, "", t2); err != nil {
		t.Fatalf("UpdateTargetDelivery with unchanged values: %v", err)
	}
	wantErr(t, "UpdateTargetDelivery unknown device", s.UpdateTargetDelivery(ctx, "r1", "d3", store.DeliverySent, "", t2), store.ErrNotFound)
	wantErr(t, "UpdateTargetDelivery unknown request", s.UpdateTargetDelivery(ctx, "nope", "d1", store.DeliverySent, "", t2), store.ErrNotFound)

	seen := func(deviceID string, at time.Time) bool {
		t.Helper()
		ok, err := s.MarkTargetSeen(ctx, "r1", deviceID, at)
		if err != nil {
			t.Fatalf("MarkTargetSeen(%q, %v): %v", deviceID, at, err)
		}
		return ok
	}
	if !seen("d2", t2) {
		t.Error("first MarkTargetSeen reported false")
	}
	if seen("d2", t3) {
		t.Error("second MarkTargetSeen reported true")
	}
	_, err := s.MarkTargetSeen(ctx, "r1", "d3", t2)
	wantErr(t, "MarkTargetSeen unknown device", err, store.ErrNotFound)
	_, err = s.MarkTargetSeen(ctx, "nope", "d1", t2)
	wantErr(t, "MarkTargetSeen unknown request", err, store.ErrNotFound)

	wantEqual(t, "targets", listTargets(t, s, "r1"), []store.RequestTarget{
		{RequestID: "r1", DeviceID: "d1", Delivery: store.DeliverySent, UpdatedAt: t2},
		{RequestID: "r1", DeviceID: "d2", Delivery: store.DeliveryQueued, UpdatedAt: t0, SeenAt: t2},
	})

	// Of concurrent callers exactly one marks a target seen.
	oks := make([]bool, racers)
	errs := race(func(i int) error {
		var err error
		oks[i], err = s.MarkTargetSeen(ctx, "r1", "d1", t3)
		return err
	})
	marked := 0
	for i := range racers {
		if errs[i] != nil {
			t.Errorf("racer %d: %v", i, errs[i])
		}
		if oks[i] {
			marked++
		}
	}
	wantEqual(t, "racers that marked the target seen", marked, 1)
}

func testMarkPushTokenDead(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	d := newDevice("d1")
	d.PushTokenDead = false
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	other := newDevice("d2")
	other.PushTokenDead = false
	other.PushToken = d.PushToken // the same token on another device
	if err := s.CreateDevice(ctx, other); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	dead := func(id string) bool {
		t.Helper()
		got, err := s.GetDevice(ctx, id)
		if err != nil {
			t.Fatalf("GetDevice: %v", err)
		}
		return got.PushTokenDead
	}
	// A token the device no longer has is not its token.
	if err := s.MarkPushTokenDead(ctx, "d1", "older-token"); err != nil {
		t.Fatalf("MarkPushTokenDead(older token): %v", err)
	}
	if dead("d1") {
		t.Error("device marked dead for a token it does not have")
	}
	if err := s.MarkPushTokenDead(ctx, "d1", d.PushToken); err != nil {
		t.Fatalf("MarkPushTokenDead: %v", err)
	}
	if !dead("d1") {
		t.Error("device not marked dead for its token")
	}
	if dead("d2") {
		t.Error("another device with the same token was marked dead")
	}
	if err := s.MarkPushTokenDead(ctx, "nope", "x"); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Errorf("MarkPushTokenDead(unknown device): %v", err)
	}
}

// User states.

func getUserState(t *testing.T, s store.Store, rpID, userRef string) store.UserState {
	t.Helper()
	u, err := s.GetUserState(ctxT(t), rpID, userRef)
	if err != nil {
		t.Fatalf("GetUserState(%q, %q): %v", rpID, userRef, err)
	}
	return u
}

func testUserState(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	wantEqual(t, "state of unknown user", getUserState(t, s, "rp-1", "alice"), store.UserState{RelyingPartyID: "rp-1", UserRef: "alice"})

	want := store.UserState{RelyingPartyID: "rp-1", UserRef: "alice", ConsecutiveFailures: 3, BackoffUntil: t2, MutedUntil: t3, UpdatedAt: t1}
	var seen []store.UserState
	err := s.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error {
		seen = append(seen, *u)
		u.ConsecutiveFailures = 3
		u.BackoffUntil, u.MutedUntil, u.UpdatedAt = t2, t3, t1
		u.RelyingPartyID, u.UserRef = "rp-x", "mallory" // keys do not change
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUserState: %v", err)
	}
	wantEqual(t, "fn saw the zero state", seen, []store.UserState{{RelyingPartyID: "rp-1", UserRef: "alice"}})
	wantEqual(t, "state after update", getUserState(t, s, "rp-1", "alice"), want)
	wantEqual(t, "state of another user", getUserState(t, s, "rp-1", "bob"), store.UserState{RelyingPartyID: "rp-1", UserRef: "bob"})
	wantEqual(t, "state of the user elsewhere", getUserState(t, s, "rp-2", "alice"), store.UserState{RelyingPartyID: "rp-2", UserRef: "alice"})
	wantEqual(t, "state under the keys fn set", getUserState(t, s, "rp-x", "mallory"), store.UserState{RelyingPartyID: "rp-x", UserRef: "mallory"})

	// fn sees the stored state; times can be cleared again.
	seen = nil
	err = s.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error {
		seen = append(seen, *u)
		u.ConsecutiveFailures = 0
		u.BackoffUntil = time.Time{}
		u.UpdatedAt = t3
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUserState: %v", err)
	}
	wantEqual(t, "fn saw the stored state", seen, []store.UserState{want})
	want.ConsecutiveFailures, want.BackoffUntil, want.UpdatedAt = 0, time.Time{}, t3
	wantEqual(t, "state after second update", getUserState(t, s, "rp-1", "alice"), want)

	// An error from fn writes nothing, for a known user and a new one.
	errBoom := errors.New("boom")
	for _, user := range []string{"alice", "carol"} {
		before := getUserState(t, s, "rp-1", user)
		err = s.UpdateUserState(ctx, "rp-1", user, func(u *store.UserState) error {
			u.ConsecutiveFailures = 99
			u.MutedUntil = t0
			return fmt.Errorf("wrapped: %w", errBoom)
		})
		if !errors.Is(err, errBoom) {
			t.Errorf("UpdateUserState(%q) returned %v, want fn's error", user, err)
		}
		wantEqual(t, "state of "+user+" after failed update", getUserState(t, s, "rp-1", user), before)
	}
}

func testConcurrentUpdateUserState(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	for _, user := range []string{"new-user", "known-user"} {
		if user == "known-user" {
			if err := s.UpdateUserState(ctx, "rp-1", user, func(u *store.UserState) error { u.UpdatedAt = t0; return nil }); err != nil {
				t.Fatalf("UpdateUserState: %v", err)
			}
		}
		errs := race(func(i int) error {
			return s.UpdateUserState(ctx, "rp-1", user, func(u *store.UserState) error {
				u.ConsecutiveFailures++
				u.UpdatedAt = t1
				return nil
			})
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("%s: racer %d: %v", user, i, err)
			}
		}
		wantEqual(t, "failures of "+user+" after concurrent increments", getUserState(t, s, "rp-1", user).ConsecutiveFailures, racers)
	}
}

// Transactions.

func testInTxRequestsRollback(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	d := newDevice("d1")
	d.PushTokenDead = false
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	mustPhrase(t, s, newPhrase("phrase-1", "d1", t0))
	mustPhrase(t, s, newPhrase("phrase-2", "d2", t0))
	c1 := mustConnection(t, s, newConnection("c1", "rp-1", "alice", "d1", t0))
	if err := s.ActivateConnection(ctx, "c1", t0); err != nil {
		t.Fatalf("ActivateConnection: %v", err)
	}
	c1.Status, c1.ActivatedAt = store.ConnectionActive, t0
	c2 := mustConnection(t, s, newConnection("c2", "rp-1", "alice", "d1", t0))
	c3 := mustConnection(t, s, newConnection("c3", "rp-1", "alice", "d2", t0))
	if err := s.ActivateConnection(ctx, "c3", t0); err != nil {
		t.Fatalf("ActivateConnection: %v", err)
	}
	c3.Status, c3.ActivatedAt = store.ConnectionActive, t0
	r1 := mustRequest(t, s, newRequest("r1", "rp-1", "alice", t0), "d1")
	due := newRequest("due", "rp-1", "alice", t0)
	due.ExpiresAt = t1
	mustRequest(t, s, due, "d1")
	if err := s.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error { u.ConsecutiveFailures = 1; return nil }); err != nil {
		t.Fatalf("UpdateUserState: %v", err)
	}

	errBoom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Store) error {
		if err := tx.PutPairingPhrase(ctx, newPhrase("phrase-3", "d1", t1)); err != nil { // replaces phrase-1
			return err
		}
		if _, err := tx.ClaimPairingPhrase(ctx, []byte("phrase-2"), t1); err != nil {
			return err
		}
		if err := tx.CreateConnection(ctx, newConnection("c4", "rp-1", "bob", "d1", t1)); err != nil {
			return err
		}
		if err := tx.ActivateConnection(ctx, "c2", t1); err != nil { // removes c1
			return err
		}
		if err := tx.RemoveConnection(ctx, "c3", t1); err != nil {
			return err
		}
		if err := tx.CreateRequest(ctx, newRequest("r2", "rp-1", "alice", t1), []store.RequestTarget{newTarget("r2", "d1")}); err != nil {
			return err
		}
		if err := tx.DecideRequest(ctx, store.Decision{RequestID: "r1", Status: store.StatusApproved, Reason: store.ReasonUser, At: t0.Add(time.Second), DecidedBy: "d1"}); err != nil {
			return err
		}
		if rs, err := tx.ExpireRequests(ctx, t2, 10); err != nil || len(rs) != 1 {
			return fmt.Errorf("ExpireRequests = %d requests, %w", len(rs), err)
		}
		if err := tx.UpdateTargetDelivery(ctx, "r1", "d1", store.DeliverySent, "", t1); err != nil {
			return err
		}
		if ok, err := tx.MarkTargetSeen(ctx, "r1", "d1", t1); err != nil || !ok {
			return fmt.Errorf("MarkTargetSeen = %v, %w", ok, err)
		}
		if err := tx.MarkPushTokenDead(ctx, "d1", d.PushToken); err != nil {
			return err
		}
		if err := tx.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error { u.ConsecutiveFailures++; return nil }); err != nil {
			return err
		}
		if err := tx.UpdateUserState(ctx, "rp-1", "bob", func(u *store.UserState) error { u.ConsecutiveFailures++; return nil }); err != nil {
			return err
		}
		// The transaction sees its own writes.
		if u, err := tx.GetUserState(ctx, "rp-1", "alice"); err != nil || u.ConsecutiveFailures != 2 {
			return fmt.Errorf("GetUserState in transaction = %+v, %w", u, err)
		}
		if c, err := tx.GetConnection(ctx, "c2"); err != nil || c.Status != store.ConnectionActive {
			return fmt.Errorf("GetConnection in transaction = %+v, %w", c, err)
		}
		if r, err := tx.GetRequest(ctx, "r1"); err != nil || r.Status != store.StatusApproved {
			return fmt.Errorf("GetRequest in transaction = %+v, %w", r, err)
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("InTx returned %v, want fn's error", err)
	}

	for _, h := range []string{"phrase-1", "phrase-2"} {
		if _, err := s.ClaimPairingPhrase(ctx, []byte(h), t1); err != nil {
			t.Errorf("ClaimPairingPhrase(%q) after rollback: %v", h, err)
		}
	}
	_, err = s.ClaimPairingPhrase(ctx, []byte("phrase-3"), t1)
	wantErr(t, "rolled-back phrase", err, store.ErrNotFound)
	_, err = s.GetConnection(ctx, "c4")
	wantErr(t, "rolled-back connection", err, store.ErrNotFound)
	wantEqual(t, "connection whose replacement rolled back", getConnection(t, s, "c1"), c1)
	wantEqual(t, "connection whose activation rolled back", getConnection(t, s, "c2"), c2)
	wantEqual(t, "connection whose removal rolled back", getConnection(t, s, "c3"), c3)
	_, err = s.GetRequest(ctx, "r2")
	wantErr(t, "rolled-back request", err, store.ErrNotFound)
	wantEqual(t, "targets of rolled-back request", len(listTargets(t, s, "r2")), 0)
	wantEqual(t, "request whose decision rolled back", getRequest(t, s, "r1"), r1)
	wantEqual(t, "request whose expiry rolled back", getRequest(t, s, "due"), due)
	wantEqual(t, "target whose updates rolled back", listTargets(t, s, "r1"), []store.RequestTarget{newTarget("r1", "d1")})
	got, err := s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	if got.PushTokenDead {
		t.Error("rolled-back dead push token is visible")
	}
	wantEqual(t, "user state whose update rolled back", getUserState(t, s, "rp-1", "alice").ConsecutiveFailures, 1)
	wantEqual(t, "user state created in rolled-back transaction", getUserState(t, s, "rp-1", "bob"), store.UserState{RelyingPartyID: "rp-1", UserRef: "bob"})
}

func testInTxRequestsCommit(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustConnection(t, s, newConnection("c1", "rp-1", "alice", "d1", t0))
	err := s.InTx(ctx, func(tx store.Store) error {
		if err := tx.ActivateConnection(ctx, "c1", t1); err != nil {
			return err
		}
		if err := tx.CreateRequest(ctx, newRequest("r1", "rp-1", "alice", t1), []store.RequestTarget{newTarget("r1", "d1")}); err != nil {
			return err
		}
		// A failed fn inside a committed transaction leaves nothing behind.
		if err := tx.UpdateUserState(ctx, "rp-1", "bob", func(*store.UserState) error { return errors.New("no") }); err == nil {
			return errors.New("UpdateUserState ignored fn's error")
		}
		return tx.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error {
			u.ConsecutiveFailures = 5
			return nil
		})
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	wantEqual(t, "committed activation", getConnection(t, s, "c1").Status, store.ConnectionActive)
	wantEqual(t, "committed request", getRequest(t, s, "r1").ID, "r1")
	wantEqual(t, "committed targets", len(listTargets(t, s, "r1")), 1)
	wantEqual(t, "committed user state", getUserState(t, s, "rp-1", "alice").ConsecutiveFailures, 5)
	wantEqual(t, "user state whose fn failed", getUserState(t, s, "rp-1", "bob"), store.UserState{RelyingPartyID: "rp-1", UserRef: "bob"})
}

func testCancelledContextRequests(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	ran := false
	if err := s.UpdateUserState(ctx, "rp-1", "alice", func(*store.UserState) error { ran = true; return nil }); err == nil {
		t.Error("UpdateUserState with cancelled ctx succeeded")
	}
	if ran {
		t.Error("UpdateUserState with cancelled ctx ran fn")
	}
	if err := s.PutPairingPhrase(ctx, newPhrase("h", "d1", t0)); err == nil {
		t.Error("PutPairingPhrase with cancelled ctx succeeded")
	}
	if err := s.CreateRequest(ctx, newRequest("r1", "rp-1", "alice", t0), nil); err == nil {
		t.Error("CreateRequest with cancelled ctx succeeded")
	}
	if _, err := s.ExpireRequests(ctx, t0, 10); err == nil {
		t.Error("ExpireRequests with cancelled ctx succeeded")
	}
	if err := s.DecideRequest(ctx, store.Decision{RequestID: "r1", Status: store.StatusDenied, At: t0}); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("DecideRequest with cancelled ctx: %v, want a context error", err)
	}
	_, err := s.GetRequest(ctxT(t), "r1")
	wantErr(t, "request created with cancelled ctx", err, store.ErrNotFound)
	_, err = s.ClaimPairingPhrase(ctxT(t), []byte("h"), t1)
	wantErr(t, "phrase put with cancelled ctx", err, store.ErrNotFound)
}
