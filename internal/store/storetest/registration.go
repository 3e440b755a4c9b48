package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Conformance cases for device updates and revocation, phone verifications,
// limit counters and the SMS outbox.

func testDeviceUpdate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	d := newDevice("d1")
	d.LastSeenAt = t1
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	// Everything changes in the argument; only the five listed fields may
	// change in the row.
	upd := store.Device{
		ID:               "d1",
		CredentialPrefix: "other-prefix",
		CredentialHash:   []byte("other hash"),
		PhoneNumber:      "+4930123456",
		PublicKey:        []byte{1, 2, 3},
		Platform:         "IOS",
		PushToken:        "new-push-token",
		PushTokenDead:    false,
		Name:             "Renamed phone",
		AppVersion:       "2.0.0",
		Locale:           "nl-NL",
		CreatedAt:        t3,
		LastSeenAt:       t3,
		RevokedAt:        t3,
	}
	if err := s.UpdateDevice(ctx, upd); err != nil {
		t.Fatalf("UpdateDevice: %v", err)
	}
	want := d
	want.PushToken, want.PushTokenDead, want.Name, want.AppVersion, want.Locale = upd.PushToken, upd.PushTokenDead, upd.Name, upd.AppVersion, upd.Locale
	got, err := s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	wantEqual(t, "after update", got, want)

	// Back to empty values, and the dead flag set again.
	if err := s.UpdateDevice(ctx, store.Device{ID: "d1", PushTokenDead: true}); err != nil {
		t.Fatalf("UpdateDevice to empty values: %v", err)
	}
	want.PushToken, want.PushTokenDead, want.Name, want.AppVersion, want.Locale = "", true, "", "", ""
	got, err = s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	wantEqual(t, "after update to empty values", got, want)

	wantErr(t, "UpdateDevice unknown", s.UpdateDevice(ctx, store.Device{ID: "nope", Name: "x"}), store.ErrNotFound)

	if err := s.RevokeDevice(ctx, "d1", t2); err != nil {
		t.Fatalf("RevokeDevice: %v", err)
	}
	wantErr(t, "UpdateDevice revoked", s.UpdateDevice(ctx, upd), store.ErrNotFound)
	want.RevokedAt = t2
	got, err = s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	wantEqual(t, "revoked device after refused update", got, want)
}

func testDeviceRevoke(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	d := newDevice("d1")
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	if err := s.RevokeDevice(ctx, "d1", t1); err != nil {
		t.Fatalf("RevokeDevice: %v", err)
	}
	wantErr(t, "second RevokeDevice", s.RevokeDevice(ctx, "d1", t2), store.ErrConflict)
	wantErr(t, "RevokeDevice unknown", s.RevokeDevice(ctx, "nope", t2), store.ErrNotFound)
	got, err := s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	want := d
	want.RevokedAt = t1
	wantEqual(t, "device after losing revoke", got, want)

	// A device created revoked cannot be revoked again.
	d2 := newDevice("d2")
	d2.RevokedAt = t0
	if err := s.CreateDevice(ctx, d2); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	wantErr(t, "RevokeDevice of device created revoked", s.RevokeDevice(ctx, "d2", t2), store.ErrConflict)
}

func testConcurrentRevokeDevice(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	if err := s.CreateDevice(ctx, newDevice("d1")); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	errs := race(func(i int) error {
		return s.RevokeDevice(ctx, "d1", t1.Add(time.Duration(i)*time.Second))
	})
	exactlyOneWins(t, "RevokeDevice", errs)
	d, err := s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	for i, err := range errs {
		if err == nil {
			wantEqual(t, "RevokedAt is the winner's", d.RevokedAt, t1.Add(time.Duration(i)*time.Second))
		}
	}
}

const (
	phoneA = "+4915112345678"
	phoneB = "+4915187654321"
)

func newVerification(id, phone string, created time.Time) store.Verification {
	return store.Verification{
		ID:            id,
		PhoneNumber:   phone,
		CodeHash:      []byte("code hash " + id),
		LinkHash:      []byte("link hash " + id),
		Locale:        "de-DE",
		ClientAddress: "192.0.2.7",
		CreatedAt:     created,
		ExpiresAt:     created.Add(10 * time.Minute),
	}
}

func mustVerification(t *testing.T, s store.Store, v store.Verification) store.Verification {
	t.Helper()
	if err := s.CreateVerification(ctxT(t), v); err != nil {
		t.Fatalf("CreateVerification(%q): %v", v.ID, err)
	}
	return v
}

func getVerification(t *testing.T, s store.Store, id string) store.Verification {
	t.Helper()
	v, err := s.GetVerification(ctxT(t), id)
	if err != nil {
		t.Fatalf("GetVerification(%q): %v", id, err)
	}
	return v
}

func testVerificationCreateGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	v := mustVerification(t, s, newVerification("v1", phoneA, t0))
	got := getVerification(t, s, "v1")
	wantEqual(t, "GetVerification", got, v)
	got.CodeHash[0] ^= 0xff // Get returns a copy
	wantEqual(t, "GetVerification again", getVerification(t, s, "v1"), v)

	// Every field set, and every optional one unset.
	full := newVerification("v2", phoneB, t1)
	full.Attempts = 2
	full.UsedAt = t2
	mustVerification(t, s, full)
	wantEqual(t, "GetVerification with every field", getVerification(t, s, "v2"), full)
	bare := store.Verification{ID: "v3", PhoneNumber: phoneB}
	mustVerification(t, s, bare)
	wantEqual(t, "GetVerification with zero fields", getVerification(t, s, "v3"), bare)

	dup := newVerification("v1", phoneB, t3)
	wantErr(t, "CreateVerification taken ID", s.CreateVerification(ctx, dup), store.ErrConflict)
	wantEqual(t, "verification after conflicting create", getVerification(t, s, "v1"), v)

	_, err := s.GetVerification(ctx, "nope")
	wantErr(t, "GetVerification unknown", err, store.ErrNotFound)
}

func testVerificationLatest(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	_, err := s.LatestVerification(ctx, phoneA)
	wantErr(t, "LatestVerification with none", err, store.ErrNotFound)

	// Stored out of creation order; IDs do not follow creation either.
	mustVerification(t, s, newVerification("v-c", phoneA, t1))
	newest := mustVerification(t, s, newVerification("v-a", phoneA, t3))
	mustVerification(t, s, newVerification("v-b", phoneA, t2))
	// Newer, but another number.
	other := mustVerification(t, s, newVerification("v-z", phoneB, t3.Add(time.Hour)))

	got, err := s.LatestVerification(ctx, phoneA)
	if err != nil {
		t.Fatalf("LatestVerification: %v", err)
	}
	wantEqual(t, "LatestVerification", got, newest)
	got, err = s.LatestVerification(ctx, phoneB)
	if err != nil {
		t.Fatalf("LatestVerification(other number): %v", err)
	}
	wantEqual(t, "LatestVerification(other number)", got, other)

	// Using one does not hide it.
	if err := s.UseVerification(ctx, "v-a", t3.Add(time.Second), 5); err != nil {
		t.Fatalf("UseVerification: %v", err)
	}
	got, err = s.LatestVerification(ctx, phoneA)
	if err != nil {
		t.Fatalf("LatestVerification after use: %v", err)
	}
	wantEqual(t, "LatestVerification after use", got.ID, "v-a")

	_, err = s.LatestVerification(ctx, "+10000000000")
	wantErr(t, "LatestVerification of unknown number", err, store.ErrNotFound)
}

func testVerificationAttempts(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustVerification(t, s, newVerification("v1", phoneA, t0))
	mustVerification(t, s, newVerification("v2", phoneA, t0))
	for want := 1; want <= 3; want++ {
		n, err := s.AddVerificationAttempt(ctx, "v1", 100)
		if err != nil {
			t.Fatalf("AddVerificationAttempt: %v", err)
		}
		wantEqual(t, "attempts returned", n, want)
	}
	wantEqual(t, "attempts stored", getVerification(t, s, "v1").Attempts, 3)
	// The cap is the caller's: at maxAttempts it refuses and counts nothing.
	_, err := s.AddVerificationAttempt(ctx, "v1", 3)
	wantErr(t, "AddVerificationAttempt at the cap", err, store.ErrConflict)
	wantEqual(t, "attempts after a refusal", getVerification(t, s, "v1").Attempts, 3)
	wantEqual(t, "attempts of another verification", getVerification(t, s, "v2").Attempts, 0)

	_, err = s.AddVerificationAttempt(ctx, "nope", 100)
	wantErr(t, "AddVerificationAttempt unknown", err, store.ErrNotFound)

	// A used verification is not an unused one: it takes no more attempts.
	if err := s.UseVerification(ctx, "v2", t1, 5); err != nil {
		t.Fatalf("UseVerification: %v", err)
	}
	_, err = s.AddVerificationAttempt(ctx, "v2", 100)
	wantErr(t, "AddVerificationAttempt used", err, store.ErrNotFound)
	wantEqual(t, "attempts of used verification", getVerification(t, s, "v2").Attempts, 0)
}

func testVerificationUse(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	const maxAttempts = 3

	// Succeeds once.
	v := mustVerification(t, s, newVerification("v1", phoneA, t0)) // expires t0+10m
	if err := s.UseVerification(ctx, "v1", t1, maxAttempts); err != nil {
		t.Fatalf("UseVerification: %v", err)
	}
	want := v
	want.UsedAt = t1
	wantEqual(t, "used verification", getVerification(t, s, "v1"), want)
	wantErr(t, "second UseVerification", s.UseVerification(ctx, "v1", t2, maxAttempts), store.ErrConflict)
	wantEqual(t, "UsedAt after losing use", getVerification(t, s, "v1").UsedAt, t1)

	// Expired at ExpiresAt exactly, and after; usable a microsecond before.
	exp := mustVerification(t, s, newVerification("v2", phoneA, t0))
	wantErr(t, "UseVerification at ExpiresAt", s.UseVerification(ctx, "v2", exp.ExpiresAt, maxAttempts), store.ErrConflict)
	wantErr(t, "UseVerification after ExpiresAt", s.UseVerification(ctx, "v2", exp.ExpiresAt.Add(time.Hour), maxAttempts), store.ErrConflict)
	if got := getVerification(t, s, "v2").UsedAt; !got.IsZero() {
		t.Errorf("expired verification marked used at %v", got)
	}
	justBefore := exp.ExpiresAt.Add(-time.Microsecond)
	if err := s.UseVerification(ctx, "v2", justBefore, maxAttempts); err != nil {
		t.Fatalf("UseVerification just before ExpiresAt: %v", err)
	}
	wantEqual(t, "UsedAt just before expiry", getVerification(t, s, "v2").UsedAt, justBefore)

	// Out of attempts when Attempts >= maxAttempts.
	mustVerification(t, s, newVerification("v3", phoneA, t0))
	for range maxAttempts {
		if _, err := s.AddVerificationAttempt(ctx, "v3", 100); err != nil {
			t.Fatalf("AddVerificationAttempt: %v", err)
		}
	}
	wantErr(t, "UseVerification out of attempts", s.UseVerification(ctx, "v3", t1, maxAttempts), store.ErrConflict)
	many := newVerification("v4", phoneA, t0)
	many.Attempts = maxAttempts + 2
	mustVerification(t, s, many)
	wantErr(t, "UseVerification beyond attempts", s.UseVerification(ctx, "v4", t1, maxAttempts), store.ErrConflict)
	if got := getVerification(t, s, "v3").UsedAt; !got.IsZero() {
		t.Errorf("verification out of attempts marked used at %v", got)
	}
	// One attempt left is enough.
	if err := s.UseVerification(ctx, "v3", t1, maxAttempts+1); err != nil {
		t.Fatalf("UseVerification with one attempt left: %v", err)
	}

	wantErr(t, "UseVerification unknown", s.UseVerification(ctx, "nope", t1, maxAttempts), store.ErrNotFound)
}

func testConcurrentAddVerificationAttempt(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustVerification(t, s, newVerification("v1", phoneA, t0))
	errs := Burst(manyRacers, func(int) error {
		_, err := s.AddVerificationAttempt(ctx, "v1", 5)
		return err
	})
	added := 0
	for i, err := range errs {
		switch {
		case err == nil:
			added++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("racer %d: %v", i, err)
		}
	}
	wantEqual(t, "attempts admitted", added, 5)
	wantEqual(t, "attempts stored", getVerification(t, s, "v1").Attempts, 5)
}

func testConcurrentUseVerification(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustVerification(t, s, newVerification("v1", phoneA, t0))
	errs := race(func(i int) error {
		return s.UseVerification(ctx, "v1", t1.Add(time.Duration(i)*time.Second), 5)
	})
	exactlyOneWins(t, "UseVerification", errs)
	v := getVerification(t, s, "v1")
	for i, err := range errs {
		if err == nil {
			wantEqual(t, "UsedAt is the winner's", v.UsedAt, t1.Add(time.Duration(i)*time.Second))
		}
	}
}

func outboxIDs(ms []store.OutboxMessage) []int64 {
	out := []int64{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func testOutbox(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	list := func(phone string, limit int) []store.OutboxMessage {
		t.Helper()
		ms, err := s.ListOutboxMessages(ctx, phone, limit)
		if err != nil {
			t.Fatalf("ListOutboxMessages(%q, %d): %v", phone, limit, err)
		}
		return ms
	}
	wantEqual(t, "empty outbox", outboxIDs(list("", 10)), []int64{})

	var ms []store.OutboxMessage
	for i, m := range []store.OutboxMessage{
		{PhoneNumber: phoneA, Body: "Your code is 123456", CreatedAt: t0},
		{PhoneNumber: phoneB, Body: "Dein Code: 654321\nhttps://example.test/v/abc", CreatedAt: t1},
		{PhoneNumber: phoneA, Body: "Your code is 999999", CreatedAt: t0}, // same time as the first
		{ID: 12345, PhoneNumber: phoneA, Body: "", CreatedAt: t2},         // ID is assigned, not taken
	} {
		id, err := s.AddOutboxMessage(ctx, m)
		if err != nil {
			t.Fatalf("AddOutboxMessage %d: %v", i, err)
		}
		if i > 0 && id <= ms[i-1].ID {
			t.Fatalf("ID %d after %d: not increasing", id, ms[i-1].ID)
		}
		m.ID = id
		ms = append(ms, m)
	}

	all := list("", 10)
	wantEqual(t, "newest first", outboxIDs(all), []int64{ms[3].ID, ms[2].ID, ms[1].ID, ms[0].ID})
	if len(all) == 4 {
		wantEqual(t, "listed message", all[2], ms[1])
		wantEqual(t, "listed message without body", all[0], ms[3])
	}
	wantEqual(t, "by number", list(phoneA, 10), []store.OutboxMessage{ms[3], ms[2], ms[0]})
	wantEqual(t, "other number", outboxIDs(list(phoneB, 10)), []int64{ms[1].ID})
	wantEqual(t, "limit", outboxIDs(list("", 2)), []int64{ms[3].ID, ms[2].ID})
	wantEqual(t, "by number and limit", outboxIDs(list(phoneA, 1)), []int64{ms[3].ID})
	wantEqual(t, "unknown number", outboxIDs(list("+10000000000", 10)), []int64{})
}

func testInTxRegistrationRollback(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	if err := s.CreateDevice(ctx, newDevice("d1")); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	mustVerification(t, s, newVerification("v1", phoneA, t0))
	errBoom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Store) error {
		if err := tx.UseVerification(ctx, "v1", t1, 5); err != nil {
			return err
		}
		if err := tx.CreateVerification(ctx, newVerification("v2", phoneA, t1)); err != nil {
			return err
		}
		if _, err := tx.AddVerificationAttempt(ctx, "v2", 100); err != nil {
			return err
		}
		if err := tx.RevokeDevice(ctx, "d1", t1); err != nil {
			return err
		}
		if _, err := tx.TakeRate(ctx, t0, store.RateLimit{Key: "k", Window: time.Hour, Max: 5}); err != nil {
			return fmt.Errorf("TakeRate: %w", err)
		}
		if n, err := tx.CountRate(ctx, "k", t0, time.Hour); err != nil || n != 1 {
			return fmt.Errorf("CountRate in transaction = %d, %w", n, err)
		}
		if _, err := tx.SpendGuess(ctx, store.GuessBudget{Key: "g", Max: 3}, t0); err != nil {
			return fmt.Errorf("SpendGuess: %w", err)
		}
		if _, err := tx.AddOutboxMessage(ctx, store.OutboxMessage{PhoneNumber: phoneA, Body: "x", CreatedAt: t1}); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("InTx returned %v, want fn's error", err)
	}
	if got := getVerification(t, s, "v1").UsedAt; !got.IsZero() {
		t.Errorf("rolled-back use is visible: %v", got)
	}
	_, err = s.GetVerification(ctx, "v2")
	wantErr(t, "rolled-back verification", err, store.ErrNotFound)
	d, err := s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	if !d.RevokedAt.IsZero() {
		t.Errorf("rolled-back device revocation is visible: %v", d.RevokedAt)
	}
	wantEqual(t, "rolled-back rate event", countRate(t, s, "k", t0, time.Hour), 0)
	if g, err := s.GetGuesses(ctx, "g"); err != nil || g.Failures != 0 {
		t.Errorf("rolled-back guess: %+v, %v", g, err)
	}
	ms, err := s.ListOutboxMessages(ctx, "", 10)
	if err != nil {
		t.Fatalf("ListOutboxMessages: %v", err)
	}
	wantEqual(t, "rolled-back outbox", outboxIDs(ms), []int64{})
}
