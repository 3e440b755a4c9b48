package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Conformance cases for backups, TOTP factors, connection transfers and the
// TOTP fields of user states.

// Backups.

func newBackup(phoneNumber, deviceID string) store.Backup {
	return store.Backup{
		PhoneNumber: phoneNumber,
		DeviceID:    deviceID,
		Blob:        []byte("encrypted blob of " + phoneNumber),
		SealedShare: []byte{0x00, 0x01, 0xfe, 0xff},
		Verifier:    []byte("verifier of " + phoneNumber),
		CreatedAt:   t0,
		UpdatedAt:   t0,
	}
}

func mustBackup(t *testing.T, s store.Store, b store.Backup, version int64) store.Backup {
	t.Helper()
	if err := s.PutBackup(ctxT(t), b, version); err != nil {
		t.Fatalf("PutBackup(%q, %d): %v", b.PhoneNumber, version, err)
	}
	b.Version = version + 1
	return b
}

func getBackup(t *testing.T, s store.Store, phoneNumber string) store.Backup {
	t.Helper()
	b, err := s.GetBackup(ctxT(t), phoneNumber)
	if err != nil {
		t.Fatalf("GetBackup(%q): %v", phoneNumber, err)
	}
	return b
}

func testBackupPutGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	b := mustBackup(t, s, newBackup("+4915112345678", "d1"), 0)
	got := getBackup(t, s, b.PhoneNumber)
	wantEqual(t, "GetBackup", got, b)
	got.Blob[0] ^= 0xff // Get returns a copy
	wantEqual(t, "GetBackup after changing a copy", getBackup(t, s, b.PhoneNumber), b)
	other := mustBackup(t, s, newBackup("+4930123456", "d9"), 0)

	// A second first put is a conflict: someone stored one meanwhile.
	wantErr(t, "PutBackup at version 0 over a backup", s.PutBackup(ctx, newBackup(b.PhoneNumber, "d7"), 0), store.ErrConflict)
	// Put replaces every field at the version it names, and only there.
	repl := store.Backup{
		PhoneNumber: b.PhoneNumber,
		DeviceID:    "d2",
		Blob:        []byte("newer blob"),
		SealedShare: []byte("newer share"),
		Verifier:    []byte("newer verifier"),
		CreatedAt:   t1,
		UpdatedAt:   t2,
	}
	wantErr(t, "PutBackup at an old version", s.PutBackup(ctx, repl, 7), store.ErrConflict)
	wantEqual(t, "backup after a lost put", getBackup(t, s, b.PhoneNumber), b)
	repl = mustBackup(t, s, repl, 1)
	wantEqual(t, "replaced backup", getBackup(t, s, b.PhoneNumber), repl)
	wantEqual(t, "another number's backup", getBackup(t, s, other.PhoneNumber), other)

	_, err := s.GetBackup(ctx, "+10000000000")
	wantErr(t, "GetBackup unknown", err, store.ErrNotFound)

	wantErr(t, "DeleteBackup at an old version", s.DeleteBackup(ctx, b.PhoneNumber, 1), store.ErrConflict)
	if err := s.DeleteBackup(ctx, b.PhoneNumber, 2); err != nil {
		t.Fatalf("DeleteBackup: %v", err)
	}
	_, err = s.GetBackup(ctx, b.PhoneNumber)
	wantErr(t, "GetBackup after delete", err, store.ErrNotFound)
	wantErr(t, "second DeleteBackup", s.DeleteBackup(ctx, b.PhoneNumber, 2), store.ErrNotFound)
	wantErr(t, "DeleteBackup unknown", s.DeleteBackup(ctx, "+10000000000", 1), store.ErrNotFound)
	wantErr(t, "PutBackup over a deleted backup", s.PutBackup(ctx, repl, 2), store.ErrConflict)
	wantEqual(t, "another number's backup after delete", getBackup(t, s, other.PhoneNumber), other)

	// A deleted number can be stored again.
	b = mustBackup(t, s, b, 0)
	wantEqual(t, "backup stored again", getBackup(t, s, b.PhoneNumber), b)
}

// testConcurrentPutBackup: of racers replacing one version, one wins; a
// wipe racing a replacement leaves either the wipe or the replacement, never
// a resurrected backup.
func testConcurrentPutBackup(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	b := mustBackup(t, s, newBackup("+4915112345678", "d1"), 0)
	errs := race(func(i int) error {
		r := b
		r.DeviceID = fmt.Sprintf("d-%d", i)
		if i%2 == 1 {
			return s.DeleteBackup(ctx, b.PhoneNumber, b.Version)
		}
		return s.PutBackup(ctx, r, b.Version)
	})
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound):
			t.Errorf("racer %d: %v, want nil, ErrConflict or (after a winning delete) ErrNotFound", i, err)
		}
	}
	wantEqual(t, "winners", wins, 1)
	got, err := s.GetBackup(ctx, b.PhoneNumber)
	for i, e := range errs {
		if e != nil {
			continue
		}
		if i%2 == 1 {
			wantErr(t, "backup after the winning delete", err, store.ErrNotFound)
		} else if err != nil || got.DeviceID != fmt.Sprintf("d-%d", i) || got.Version != 2 {
			t.Errorf("backup after the winning put: %+v, %v", got, err)
		}
	}
}

func newTOTPFactor(id, rpID, userRef string, created time.Time) store.TOTPFactor {
	return store.TOTPFactor{
		ID:             id,
		RelyingPartyID: rpID,
		UserRef:        userRef,
		Kind:           store.TOTPKindApp,
		Label:          "Authenticator " + id,
		SealedSecret:   []byte("sealed secret of " + id),
		Status:         store.TOTPPending,
		CreatedAt:      created,
	}
}

func newConnectionFactor(id, connectionID string, created time.Time) store.TOTPFactor {
	f := newTOTPFactor(id, "rp-1", "alice", created)
	f.Kind = store.TOTPKindConnection
	f.ConnectionID = connectionID
	f.Label = "pushauth app"
	return f
}

func mustTOTPFactor(t *testing.T, s store.Store, f store.TOTPFactor) store.TOTPFactor {
	t.Helper()
	if err := s.CreateTOTPFactor(ctxT(t), f); err != nil {
		t.Fatalf("CreateTOTPFactor(%q): %v", f.ID, err)
	}
	return f
}

// mustActiveTOTPFactor creates f and activates it at at.
func mustActiveTOTPFactor(t *testing.T, s store.Store, f store.TOTPFactor, at time.Time) store.TOTPFactor {
	t.Helper()
	mustTOTPFactor(t, s, f)
	if err := s.ActivateTOTPFactor(ctxT(t), f.ID, at); err != nil {
		t.Fatalf("ActivateTOTPFactor(%q): %v", f.ID, err)
	}
	f.Status, f.ConfirmedAt = store.TOTPActive, at
	return f
}

func getTOTPFactor(t *testing.T, s store.Store, id string) store.TOTPFactor {
	t.Helper()
	f, err := s.GetTOTPFactor(ctxT(t), id)
	if err != nil {
		t.Fatalf("GetTOTPFactor(%q): %v", id, err)
	}
	return f
}

func totpFactorIDs(fs []store.TOTPFactor) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

func testTOTPFactorCreateGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	f := mustTOTPFactor(t, s, newTOTPFactor("f1", "rp-1", "alice", t0))
	got := getTOTPFactor(t, s, "f1")
	wantEqual(t, "GetTOTPFactor", got, f)
	got.SealedSecret[0] ^= 0xff // Get returns a copy
	wantEqual(t, "GetTOTPFactor after changing a copy", getTOTPFactor(t, s, "f1"), f)

	full := store.TOTPFactor{
		ID: "f2", RelyingPartyID: "rp-1", UserRef: "alice", Kind: store.TOTPKindConnection, ConnectionID: "c1",
		Label: "Pixel", SealedSecret: []byte{0, 1, 2}, Status: store.TOTPRemoved, LastUsedStep: 58_000_000_123,
		CreatedAt: t0, ConfirmedAt: t1, RemovedAt: t2,
	}
	mustTOTPFactor(t, s, full)
	wantEqual(t, "GetTOTPFactor with every field", getTOTPFactor(t, s, "f2"), full)

	dup := newTOTPFactor("f1", "rp-2", "bob", t1)
	wantErr(t, "CreateTOTPFactor taken ID", s.CreateTOTPFactor(ctx, dup), store.ErrConflict)
	wantEqual(t, "factor after conflicting create", getTOTPFactor(t, s, "f1"), f)
	_, err := s.GetTOTPFactor(ctx, "nope")
	wantErr(t, "GetTOTPFactor unknown", err, store.ErrNotFound)
	_, err = s.GetTOTPFactor(ctx, "F1")
	wantErr(t, "GetTOTPFactor differing in case", err, store.ErrNotFound)
}

func testTOTPFactorList(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// Stored out of creation order; IDs do not follow creation either.
	pending := mustTOTPFactor(t, s, newTOTPFactor("f-a", "rp-1", "alice", t2))
	active := mustActiveTOTPFactor(t, s, newTOTPFactor("f-b", "rp-1", "alice", t0), t1)
	conn := mustActiveTOTPFactor(t, s, newConnectionFactor("f-c", "c1", t1), t2)
	mustActiveTOTPFactor(t, s, newTOTPFactor("f-removed", "rp-1", "alice", t0), t1)
	if err := s.RemoveTOTPFactor(ctx, "f-removed", t2); err != nil {
		t.Fatalf("RemoveTOTPFactor: %v", err)
	}
	mustTOTPFactor(t, s, newTOTPFactor("f-bob", "rp-1", "bob", t0))
	mustTOTPFactor(t, s, newTOTPFactor("f-rp2", "rp-2", "alice", t0))

	list := func(rpID, userRef string) []store.TOTPFactor {
		t.Helper()
		fs, err := s.ListUserTOTPFactors(ctx, rpID, userRef)
		if err != nil {
			t.Fatalf("ListUserTOTPFactors(%q, %q): %v", rpID, userRef, err)
		}
		return fs
	}
	wantEqual(t, "factors of rp-1/alice", list("rp-1", "alice"), []store.TOTPFactor{active, conn, pending})
	wantEqual(t, "factors of rp-1/bob", totpFactorIDs(list("rp-1", "bob")), []string{"f-bob"})
	wantEqual(t, "factors of rp-2/alice", totpFactorIDs(list("rp-2", "alice")), []string{"f-rp2"})
	wantEqual(t, "factors of an unknown user", totpFactorIDs(list("rp-1", "nope")), []string{})
	wantEqual(t, "factors of a user differing in case", totpFactorIDs(list("rp-1", "Alice")), []string{})
}

func testTOTPFactorActivate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	f := mustTOTPFactor(t, s, newTOTPFactor("f1", "rp-1", "alice", t0))
	if err := s.ActivateTOTPFactor(ctx, "f1", t1); err != nil {
		t.Fatalf("ActivateTOTPFactor: %v", err)
	}
	want := f
	want.Status, want.ConfirmedAt = store.TOTPActive, t1
	wantEqual(t, "activated factor", getTOTPFactor(t, s, "f1"), want)
	wantErr(t, "second ActivateTOTPFactor", s.ActivateTOTPFactor(ctx, "f1", t2), store.ErrConflict)
	wantEqual(t, "factor after losing activate", getTOTPFactor(t, s, "f1"), want)
	wantErr(t, "ActivateTOTPFactor unknown", s.ActivateTOTPFactor(ctx, "nope", t2), store.ErrNotFound)

	mustTOTPFactor(t, s, newTOTPFactor("f2", "rp-1", "alice", t0))
	if err := s.RemoveTOTPFactor(ctx, "f2", t1); err != nil {
		t.Fatalf("RemoveTOTPFactor: %v", err)
	}
	wantErr(t, "ActivateTOTPFactor of removed", s.ActivateTOTPFactor(ctx, "f2", t2), store.ErrConflict)
	wantEqual(t, "status of removed factor after refused activate", getTOTPFactor(t, s, "f2").Status, store.TOTPRemoved)

	// Of racers activating one factor, exactly one wins.
	mustTOTPFactor(t, s, newTOTPFactor("f3", "rp-1", "alice", t0))
	errs := race(func(i int) error {
		return s.ActivateTOTPFactor(ctx, "f3", t1.Add(time.Duration(i)*time.Second))
	})
	exactlyOneWins(t, "ActivateTOTPFactor", errs)
	got := getTOTPFactor(t, s, "f3")
	for i, err := range errs {
		if err == nil {
			wantEqual(t, "ConfirmedAt is the winner's", got.ConfirmedAt, t1.Add(time.Duration(i)*time.Second))
		}
	}
}

func testTOTPFactorRemove(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	pending := mustTOTPFactor(t, s, newTOTPFactor("f1", "rp-1", "alice", t0))
	active := mustActiveTOTPFactor(t, s, newTOTPFactor("f2", "rp-1", "alice", t0), t1)
	for _, f := range []store.TOTPFactor{pending, active} {
		if err := s.RemoveTOTPFactor(ctx, f.ID, t2); err != nil {
			t.Fatalf("RemoveTOTPFactor(%q): %v", f.ID, err)
		}
		wantErr(t, "second RemoveTOTPFactor", s.RemoveTOTPFactor(ctx, f.ID, t3), store.ErrConflict)
	}
	want := pending
	want.Status, want.RemovedAt = store.TOTPRemoved, t2
	wantEqual(t, "removed pending factor", getTOTPFactor(t, s, "f1"), want)
	want = active
	want.Status, want.RemovedAt = store.TOTPRemoved, t2
	wantEqual(t, "removed active factor", getTOTPFactor(t, s, "f2"), want)
	wantErr(t, "RemoveTOTPFactor unknown", s.RemoveTOTPFactor(ctx, "nope", t2), store.ErrNotFound)
	wantErr(t, "UseTOTPStep of removed factor", s.UseTOTPStep(ctx, "f2", 100), store.ErrNotFound)
}

func testTOTPFactorConnection(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	f1 := mustActiveTOTPFactor(t, s, newConnectionFactor("f1", "c1", t0), t1)
	f1pending := mustTOTPFactor(t, s, newConnectionFactor("f1-pending", "c1", t1))
	f1removed := mustActiveTOTPFactor(t, s, newConnectionFactor("f1-removed", "c1", t0), t0)
	if err := s.RemoveTOTPFactor(ctx, f1removed.ID, t1); err != nil {
		t.Fatalf("RemoveTOTPFactor: %v", err)
	}
	f1removed.Status, f1removed.RemovedAt = store.TOTPRemoved, t1
	f2 := mustActiveTOTPFactor(t, s, newConnectionFactor("f2", "c2", t0), t1)
	mustTOTPFactor(t, s, newConnectionFactor("f3", "c3", t0)) // pending only
	app := mustActiveTOTPFactor(t, s, newTOTPFactor("f-app", "rp-1", "alice", t0), t1)

	got, err := s.GetConnectionTOTPFactor(ctx, "c1")
	if err != nil {
		t.Fatalf("GetConnectionTOTPFactor: %v", err)
	}
	wantEqual(t, "factor of c1", got, f1)
	got, err = s.GetConnectionTOTPFactor(ctx, "c2")
	if err != nil {
		t.Fatalf("GetConnectionTOTPFactor: %v", err)
	}
	wantEqual(t, "factor of c2", got, f2)
	for _, c := range []string{"c3", "nope", "C1", ""} {
		_, err = s.GetConnectionTOTPFactor(ctx, c)
		wantErr(t, fmt.Sprintf("GetConnectionTOTPFactor(%q)", c), err, store.ErrNotFound)
	}

	if err := s.RemoveConnectionTOTPFactors(ctx, "c1", t2); err != nil {
		t.Fatalf("RemoveConnectionTOTPFactors: %v", err)
	}
	want := f1
	want.Status, want.RemovedAt = store.TOTPRemoved, t2
	wantEqual(t, "removed active factor of c1", getTOTPFactor(t, s, "f1"), want)
	wantPending := f1pending
	wantPending.Status, wantPending.RemovedAt = store.TOTPRemoved, t2
	wantEqual(t, "removed pending factor of c1", getTOTPFactor(t, s, "f1-pending"), wantPending)
	wantEqual(t, "factor of c1 removed before", getTOTPFactor(t, s, "f1-removed"), f1removed)
	wantEqual(t, "factor of c2", getTOTPFactor(t, s, "f2"), f2)
	wantEqual(t, "app factor", getTOTPFactor(t, s, "f-app"), app)
	_, err = s.GetConnectionTOTPFactor(ctx, "c1")
	wantErr(t, "GetConnectionTOTPFactor after removal", err, store.ErrNotFound)

	// Again, for a connection without factors, and for no connection: no
	// error, and nothing else is touched.
	for _, c := range []string{"c1", "nope", ""} {
		if err := s.RemoveConnectionTOTPFactors(ctx, c, t3); err != nil {
			t.Errorf("RemoveConnectionTOTPFactors(%q): %v", c, err)
		}
	}
	wantEqual(t, "factor of c1 after second removal", getTOTPFactor(t, s, "f1"), want)
	wantEqual(t, "pending factor of c1 after second removal", getTOTPFactor(t, s, "f1-pending"), wantPending)
	wantEqual(t, "app factor after removals", getTOTPFactor(t, s, "f-app"), app)
	wantEqual(t, "factor of c2 after removals", getTOTPFactor(t, s, "f2"), f2)
}

func testTOTPUseStep(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	f := mustActiveTOTPFactor(t, s, newTOTPFactor("f1", "rp-1", "alice", t0), t1)
	step := func() int64 {
		t.Helper()
		return getTOTPFactor(t, s, "f1").LastUsedStep
	}
	const base = 58_000_000 // around 2025 with 30-second steps
	for _, c := range []struct {
		step    int64
		want    error
		wantNow int64
	}{
		{base, nil, base},
		{base + 1, nil, base + 1},
		{base + 1, store.ErrConflict, base + 1}, // replay
		{base, store.ErrConflict, base + 1},     // older
		{base - 100, store.ErrConflict, base + 1},
		{base + 3, nil, base + 3}, // steps may be skipped
		{base + 2, store.ErrConflict, base + 3},
	} {
		err := s.UseTOTPStep(ctx, "f1", c.step)
		if c.want == nil {
			if err != nil {
				t.Errorf("UseTOTPStep(%d): %v", c.step, err)
			}
		} else {
			wantErr(t, fmt.Sprintf("UseTOTPStep(%d)", c.step), err, c.want)
		}
		wantEqual(t, fmt.Sprintf("LastUsedStep after UseTOTPStep(%d)", c.step), step(), c.wantNow)
	}
	want := f
	want.LastUsedStep = base + 3
	wantEqual(t, "factor after using steps", getTOTPFactor(t, s, "f1"), want)

	mustTOTPFactor(t, s, newTOTPFactor("f-pending", "rp-1", "alice", t0))
	wantErr(t, "UseTOTPStep of pending factor", s.UseTOTPStep(ctx, "f-pending", base), store.ErrNotFound)
	wantEqual(t, "LastUsedStep of pending factor", getTOTPFactor(t, s, "f-pending").LastUsedStep, int64(0))
	mustActiveTOTPFactor(t, s, newTOTPFactor("f-removed", "rp-1", "alice", t0), t1)
	if err := s.RemoveTOTPFactor(ctx, "f-removed", t2); err != nil {
		t.Fatalf("RemoveTOTPFactor: %v", err)
	}
	wantErr(t, "UseTOTPStep of removed factor", s.UseTOTPStep(ctx, "f-removed", base), store.ErrNotFound)
	wantErr(t, "UseTOTPStep of unknown factor", s.UseTOTPStep(ctx, "nope", base), store.ErrNotFound)

	// Each factor has its own steps.
	mustActiveTOTPFactor(t, s, newTOTPFactor("f2", "rp-1", "alice", t0), t1)
	if err := s.UseTOTPStep(ctx, "f2", base+3); err != nil {
		t.Errorf("UseTOTPStep of another factor: %v", err)
	}
}

func testConcurrentUseTOTPStep(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustActiveTOTPFactor(t, s, newTOTPFactor("f1", "rp-1", "alice", t0), t1)
	const step = 58_000_000
	errs := race(func(int) error { return s.UseTOTPStep(ctx, "f1", step) })
	exactlyOneWins(t, "UseTOTPStep", errs)
	wantEqual(t, "LastUsedStep after racing", getTOTPFactor(t, s, "f1").LastUsedStep, int64(step))

	// Racers with different steps: whatever the order, the newest step ends
	// up stored, and it was accepted.
	errs = race(func(i int) error { return s.UseTOTPStep(ctx, "f1", step+1+int64(i)) })
	for i, err := range errs {
		if err != nil && !errors.Is(err, store.ErrConflict) {
			t.Errorf("racer %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if errs[racers-1] != nil {
		t.Errorf("the racer with the newest step lost: %v", errs[racers-1])
	}
	wantEqual(t, "LastUsedStep after racing steps", getTOTPFactor(t, s, "f1").LastUsedStep, int64(step+racers))
}

// Connection transfers.

// mustActiveConnection creates c and activates it at at.
func mustActiveConnection(t *testing.T, s store.Store, c store.Connection, at time.Time) store.Connection {
	t.Helper()
	mustConnection(t, s, c)
	if err := s.ActivateConnection(ctxT(t), c.ID, at); err != nil {
		t.Fatalf("ActivateConnection(%q): %v", c.ID, err)
	}
	c.Status, c.ActivatedAt = store.ConnectionActive, at
	return c
}

func testConnectionTransfer(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	c1 := mustActiveConnection(t, s, newConnection("c1", "rp-1", "alice", "d1", t0), t1)
	other := mustActiveConnection(t, s, newConnection("c-other", "rp-1", "bob", "d1", t0), t1)

	if err := s.TransferConnection(ctx, "c1", "d2"); err != nil {
		t.Fatalf("TransferConnection: %v", err)
	}
	want := c1
	want.DeviceID = "d2"
	wantEqual(t, "transferred connection", getConnection(t, s, "c1"), want)
	wantEqual(t, "other connection of the old device", getConnection(t, s, "c-other"), other)
	byDevice := func(deviceID string) []string {
		t.Helper()
		cs, err := s.ListDeviceConnections(ctx, deviceID)
		if err != nil {
			t.Fatalf("ListDeviceConnections(%q): %v", deviceID, err)
		}
		return connectionIDs(cs)
	}
	wantEqual(t, "connections of the old device", byDevice("d1"), []string{"c-other"})
	wantEqual(t, "connections of the new device", byDevice("d2"), []string{"c1"})

	// The target has an ACTIVE connection for the same relying party and user.
	taken := mustActiveConnection(t, s, newConnection("c-taken", "rp-1", "alice", "d3", t0), t1)
	wantErr(t, "TransferConnection to a device the user is on", s.TransferConnection(ctx, "c1", "d3"), store.ErrConflict)
	wantEqual(t, "connection after refused transfer", getConnection(t, s, "c1"), want)
	wantEqual(t, "target's connection after refused transfer", getConnection(t, s, "c-taken"), taken)

	// Connections of another user or relying party, or ones that are not
	// ACTIVE, do not stand in the way.
	mustActiveConnection(t, s, newConnection("c-bob", "rp-1", "bob", "d4", t0), t1)
	mustActiveConnection(t, s, newConnection("c-rp2", "rp-2", "alice", "d4", t0), t1)
	mustConnection(t, s, newConnection("c-pending", "rp-1", "alice", "d4", t0))
	mustConnection(t, s, newConnection("c-removed", "rp-1", "alice", "d4", t0))
	if err := s.RemoveConnection(ctx, "c-removed", t1); err != nil {
		t.Fatalf("RemoveConnection: %v", err)
	}
	if err := s.TransferConnection(ctx, "c1", "d4"); err != nil {
		t.Fatalf("TransferConnection beside other users' and inactive connections: %v", err)
	}
	want.DeviceID = "d4"
	wantEqual(t, "connection transferred again", getConnection(t, s, "c1"), want)
	wantEqual(t, "connections of the user", connectionIDs(mustUserConnections(t, s, "rp-1", "alice")), []string{"c-taken", "c1"})

	// Only ACTIVE connections move.
	wantErr(t, "TransferConnection of pending", s.TransferConnection(ctx, "c-pending", "d9"), store.ErrNotFound)
	wantErr(t, "TransferConnection of removed", s.TransferConnection(ctx, "c-removed", "d9"), store.ErrNotFound)
	wantErr(t, "TransferConnection unknown", s.TransferConnection(ctx, "nope", "d9"), store.ErrNotFound)
	wantEqual(t, "device of pending connection after refused transfer", getConnection(t, s, "c-pending").DeviceID, "d4")
	wantEqual(t, "device of removed connection after refused transfer", getConnection(t, s, "c-removed").DeviceID, "d4")
	wantEqual(t, "connections of d9", byDevice("d9"), []string{})
}

func mustUserConnections(t *testing.T, s store.Store, rpID, userRef string) []store.Connection {
	t.Helper()
	cs, err := s.ListUserConnections(ctxT(t), rpID, userRef)
	if err != nil {
		t.Fatalf("ListUserConnections(%q, %q): %v", rpID, userRef, err)
	}
	return cs
}

func testConcurrentTransferConnection(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// Connections of one user on many devices race to one new device:
	// exactly one gets there.
	for i := range racers {
		mustActiveConnection(t, s, newConnection(fmt.Sprintf("c%02d", i), "rp-1", "alice", fmt.Sprintf("d%02d", i), t0), t1)
	}
	errs := race(func(i int) error {
		return s.TransferConnection(ctx, fmt.Sprintf("c%02d", i), "d-new")
	})
	exactlyOneWins(t, "TransferConnection", errs)
	cs, err := s.ListDeviceConnections(ctx, "d-new")
	if err != nil {
		t.Fatalf("ListDeviceConnections: %v", err)
	}
	if len(cs) != 1 {
		t.Errorf("%d connections on the new device, want 1: %v", len(cs), connectionIDs(cs))
	}
	wantEqual(t, "ACTIVE connections of the user", len(mustUserConnections(t, s, "rp-1", "alice")), racers)
}

// User states.

func testUserStateTOTP(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	want := store.UserState{RelyingPartyID: "rp-1", UserRef: "alice", ConsecutiveFailures: 1, TOTPFailures: 5, TOTPLockedUntil: t3, UpdatedAt: t1}
	if err := s.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error {
		u.ConsecutiveFailures = 1
		u.TOTPFailures = 5
		u.TOTPLockedUntil = t3
		u.UpdatedAt = t1
		return nil
	}); err != nil {
		t.Fatalf("UpdateUserState: %v", err)
	}
	wantEqual(t, "state with TOTP fields", getUserState(t, s, "rp-1", "alice"), want)

	// fn sees them, and they are written back as fn leaves them.
	var seen []store.UserState
	if err := s.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error {
		seen = append(seen, *u)
		u.TOTPFailures++
		u.BackoffUntil = t2
		return nil
	}); err != nil {
		t.Fatalf("UpdateUserState: %v", err)
	}
	wantEqual(t, "fn saw the TOTP fields", seen, []store.UserState{want})
	want.TOTPFailures, want.BackoffUntil = 6, t2
	wantEqual(t, "state after counting a TOTP failure", getUserState(t, s, "rp-1", "alice"), want)

	// Other fields change without touching them; then they clear.
	if err := s.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error {
		u.ConsecutiveFailures = 0
		return nil
	}); err != nil {
		t.Fatalf("UpdateUserState: %v", err)
	}
	want.ConsecutiveFailures = 0
	wantEqual(t, "TOTP fields after another update", getUserState(t, s, "rp-1", "alice"), want)
	if err := s.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error {
		u.TOTPFailures, u.TOTPLockedUntil = 0, time.Time{}
		return nil
	}); err != nil {
		t.Fatalf("UpdateUserState: %v", err)
	}
	want.TOTPFailures, want.TOTPLockedUntil = 0, time.Time{}
	wantEqual(t, "state after clearing the TOTP fields", getUserState(t, s, "rp-1", "alice"), want)
	wantEqual(t, "state of another user", getUserState(t, s, "rp-1", "bob"), store.UserState{RelyingPartyID: "rp-1", UserRef: "bob"})
}

// Transactions and contexts.

func testInTxBackupTOTPRollback(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	b := mustBackup(t, s, newBackup("+4915112345678", "d1"), 0)
	f1 := mustActiveTOTPFactor(t, s, newTOTPFactor("f1", "rp-1", "alice", t0), t1)
	f2 := mustTOTPFactor(t, s, newTOTPFactor("f2", "rp-1", "alice", t0))
	fc := mustActiveTOTPFactor(t, s, newConnectionFactor("fc", "c1", t0), t1)
	c1 := mustActiveConnection(t, s, newConnection("c1", "rp-1", "alice", "d1", t0), t1)

	errBoom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Store) error {
		if err := tx.PutBackup(ctx, newBackup("+4930123456", "d2"), 0); err != nil {
			return err
		}
		repl := b
		repl.DeviceID = "d2"
		if err := tx.PutBackup(ctx, repl, b.Version); err != nil {
			return err
		}
		if err := tx.CreateTOTPFactor(ctx, newTOTPFactor("f3", "rp-1", "alice", t1)); err != nil {
			return err
		}
		if err := tx.UseTOTPStep(ctx, "f1", 100); err != nil {
			return err
		}
		if err := tx.ActivateTOTPFactor(ctx, "f2", t2); err != nil {
			return err
		}
		if err := tx.RemoveConnectionTOTPFactors(ctx, "c1", t2); err != nil {
			return err
		}
		if err := tx.TransferConnection(ctx, "c1", "d2"); err != nil {
			return err
		}
		if err := tx.UpdateUserState(ctx, "rp-1", "alice", func(u *store.UserState) error {
			u.TOTPFailures, u.TOTPLockedUntil = 3, t3
			return nil
		}); err != nil {
			return err
		}
		// The transaction sees its own writes.
		if got, err := tx.GetBackup(ctx, b.PhoneNumber); err != nil || got.DeviceID != "d2" || got.Version != 2 {
			return fmt.Errorf("GetBackup in transaction = %+v, %w", got, err)
		}
		if got, err := tx.GetTOTPFactor(ctx, "f1"); err != nil || got.LastUsedStep != 100 {
			return fmt.Errorf("GetTOTPFactor in transaction = %+v, %w", got, err)
		}
		if err := tx.UseTOTPStep(ctx, "f1", 100); !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("replayed UseTOTPStep in transaction: %v", err)
		}
		if got, err := tx.GetConnection(ctx, "c1"); err != nil || got.DeviceID != "d2" {
			return fmt.Errorf("GetConnection in transaction = %+v, %w", got, err)
		}
		if u, err := tx.GetUserState(ctx, "rp-1", "alice"); err != nil || u.TOTPFailures != 3 {
			return fmt.Errorf("GetUserState in transaction = %+v, %w", u, err)
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("InTx returned %v, want fn's error", err)
	}
	_, err = s.GetBackup(ctx, "+4930123456")
	wantErr(t, "rolled-back backup", err, store.ErrNotFound)
	wantEqual(t, "backup whose replacement rolled back", getBackup(t, s, b.PhoneNumber), b)
	_, err = s.GetTOTPFactor(ctx, "f3")
	wantErr(t, "rolled-back factor", err, store.ErrNotFound)
	wantEqual(t, "factor whose step rolled back", getTOTPFactor(t, s, "f1"), f1)
	wantEqual(t, "factor whose activation rolled back", getTOTPFactor(t, s, "f2"), f2)
	wantEqual(t, "factor whose removal rolled back", getTOTPFactor(t, s, "fc"), fc)
	wantEqual(t, "connection whose transfer rolled back", getConnection(t, s, "c1"), c1)
	wantEqual(t, "user state created in rolled-back transaction", getUserState(t, s, "rp-1", "alice"), store.UserState{RelyingPartyID: "rp-1", UserRef: "alice"})

	// Committed, the same calls stick.
	err = s.InTx(ctx, func(tx store.Store) error {
		if err := tx.DeleteBackup(ctx, b.PhoneNumber, b.Version); err != nil {
			return err
		}
		if err := tx.UseTOTPStep(ctx, "f1", 100); err != nil {
			return err
		}
		return tx.TransferConnection(ctx, "c1", "d2")
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	_, err = s.GetBackup(ctx, b.PhoneNumber)
	wantErr(t, "committed delete", err, store.ErrNotFound)
	wantEqual(t, "committed step", getTOTPFactor(t, s, "f1").LastUsedStep, int64(100))
	wantEqual(t, "committed transfer", getConnection(t, s, "c1").DeviceID, "d2")
}

func testCancelledContextBackupTOTP(t *testing.T, s store.Store) {
	b := mustBackup(t, s, newBackup("+4915112345678", "d1"), 0)
	mustActiveTOTPFactor(t, s, newTOTPFactor("f1", "rp-1", "alice", t0), t1)
	mustActiveConnection(t, s, newConnection("c1", "rp-1", "alice", "d1", t0), t1)
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	if err := s.DeleteBackup(ctx, b.PhoneNumber, b.Version); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteBackup with cancelled ctx: %v, want a context error", err)
	}
	if err := s.PutBackup(ctx, newBackup("+4930123456", "d2"), 0); err == nil {
		t.Error("PutBackup with cancelled ctx succeeded")
	}
	if err := s.UseTOTPStep(ctx, "f1", 100); err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
		t.Errorf("UseTOTPStep with cancelled ctx: %v, want a context error", err)
	}
	if err := s.TransferConnection(ctx, "c1", "d2"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("TransferConnection with cancelled ctx: %v, want a context error", err)
	}
	wantEqual(t, "backup after cancelled calls", getBackup(t, s, b.PhoneNumber), b)
	wantEqual(t, "step after cancelled call", getTOTPFactor(t, s, "f1").LastUsedStep, int64(0))
	wantEqual(t, "device after cancelled transfer", getConnection(t, s, "c1").DeviceID, "d1")
	_, err := s.GetBackup(ctxT(t), "+4930123456")
	wantErr(t, "backup put with cancelled ctx", err, store.ErrNotFound)
}
