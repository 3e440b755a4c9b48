// Package storetest is the conformance suite every store.Store passes, plus
// helpers that give a test a fresh, migrated database (pgtest.go).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/store"
)

// Run runs the conformance suite. newStore is called once per subtest and
// must return an empty, ready Store that it closes itself (t.Cleanup); the
// suite may close it first, so a second Close must be harmless.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RelyingParty/CreateGet", testRelyingPartyCreateGet},
		{"RelyingParty/Conflict", testRelyingPartyConflict},
		{"RelyingParty/NotFound", testRelyingPartyNotFound},
		{"RelyingParty/ListPaging", testRelyingPartyList},
		{"RelyingParty/Update", testRelyingPartyUpdate},
		{"APIKey/CreateGet", testAPIKeyCreateGet},
		{"APIKey/UnknownRelyingParty", testAPIKeyUnknownRelyingParty},
		{"APIKey/Conflict", testAPIKeyConflict},
		{"APIKey/List", testAPIKeyList},
		{"APIKey/Revoke", testAPIKeyRevoke},
		{"APIKey/Touch", testAPIKeyTouch},
		{"Device/CreateGet", testDeviceCreateGet},
		{"Device/Conflict", testDeviceConflict},
		{"Device/Touch", testDeviceTouch},
		{"Device/Update", testDeviceUpdate},
		{"Device/Revoke", testDeviceRevoke},
		{"Verification/CreateGet", testVerificationCreateGet},
		{"Verification/Latest", testVerificationLatest},
		{"Verification/Attempts", testVerificationAttempts},
		{"Verification/Use", testVerificationUse},
		{"Rate/Take", testRateTake},
		{"Rate/SharedKeys", testRateSharedKeys},
		{"Rate/GiveBack", testRateGiveBack},
		{"Rate/DeleteBefore", testRateDeleteBefore},
		{"Guess/Spend", testGuessSpend},
		{"Guess/DeleteBefore", testGuessDeleteBefore},
		{"Outbox", testOutbox},
		{"Audit/Append", testAuditAppend},
		{"Audit/Filter", testAuditFilter},
		{"InTx/Commit", testInTxCommit},
		{"InTx/Rollback", testInTxRollback},
		{"InTx/Nested", testInTxNested},
		{"InTx/RegistrationRollback", testInTxRegistrationRollback},
		{"Time/RoundTrip", testTimeRoundTrip},
		{"Context/Cancelled", testCancelledContext},
		{"Ping", testPing},
		{"Concurrent/Revoke", testConcurrentRevoke},
		{"Concurrent/CreateSameName", testConcurrentCreateSameName},
		{"Concurrent/RevokeDevice", testConcurrentRevokeDevice},
		{"Concurrent/UseVerification", testConcurrentUseVerification},
		{"Concurrent/TakeRate", testConcurrentTakeRate},
		{"Concurrent/AddVerificationAttempt", testConcurrentAddVerificationAttempt},
		{"Concurrent/SpendGuess", testConcurrentSpendGuess},
		{"Concurrent/PutPairingPhrase", testConcurrentPutPairingPhrase},
		{"PairingPhrase/Claim", testPairingPhraseClaim},
		{"PairingPhrase/Put", testPairingPhrasePut},
		{"Connection/CreateGet", testConnectionCreateGet},
		{"Connection/Activate", testConnectionActivate},
		{"Connection/List", testConnectionList},
		{"Connection/Remove", testConnectionRemove},
		{"Request/CreateGet", testRequestCreateGet},
		{"Request/PendingLists", testRequestPendingLists},
		{"Request/Decide", testRequestDecide},
		{"Request/Expire", testRequestExpire},
		{"Request/Targets", testRequestTargets},
		{"Device/MarkPushTokenDead", testMarkPushTokenDead},
		{"UserState", testUserState},
		{"InTx/RequestsCommit", testInTxRequestsCommit},
		{"InTx/RequestsRollback", testInTxRequestsRollback},
		{"Context/CancelledRequests", testCancelledContextRequests},
		{"Concurrent/ClaimPairingPhrase", testConcurrentClaimPairingPhrase},
		{"Concurrent/ActivateConnection", testConcurrentActivateConnection},
		{"Concurrent/DecideRequest", testConcurrentDecideRequest},
		{"Concurrent/ExpireRequests", testConcurrentExpireRequests},
		{"Concurrent/UpdateUserState", testConcurrentUpdateUserState},
		{"Backup/PutGet", testBackupPutGet},
		{"TOTPFactor/CreateGet", testTOTPFactorCreateGet},
		{"TOTPFactor/List", testTOTPFactorList},
		{"TOTPFactor/Activate", testTOTPFactorActivate},
		{"TOTPFactor/Remove", testTOTPFactorRemove},
		{"TOTPFactor/Connection", testTOTPFactorConnection},
		{"TOTPFactor/UseStep", testTOTPUseStep},
		{"Connection/Transfer", testConnectionTransfer},
		{"UserState/TOTP", testUserStateTOTP},
		{"InTx/BackupTOTPRollback", testInTxBackupTOTPRollback},
		{"Context/CancelledBackupTOTP", testCancelledContextBackupTOTP},
		{"Concurrent/PutBackup", testConcurrentPutBackup},
		{"Concurrent/UseTOTPStep", testConcurrentUseTOTPStep},
		{"Concurrent/TransferConnection", testConcurrentTransferConnection},
		{"Revocation/RemoveTargets", testRemoveTargets},
		{"Revocation/RemovedTargetStaysRemoved", testRemovedTargetStaysRemoved},
		{"Revocation/TargetPending", testTargetPending},
		{"Revocation/LockActiveConnection", testLockActiveConnection},
		{"Errors/HideNumbers", testErrorsHideNumbers},
		{"Retention", testRetention},
		{"PushOutbox", testPushOutbox},
		{"PushOutbox/InTx", testPushOutboxInTx},
		{"Concurrent/ClaimPushes", testConcurrentClaimPushes},
		{"RequestPath/GetRequestWithTargets", testGetRequestWithTargets},
		{"RequestPath/ListUserDevices", testListUserDevices},
		{"RequestPath/LockDecider", testLockDecider},
		{"Seals/List", testListSealed},
		{"Seals/Replace", testReplaceSealed},
		{"Concurrent/ReplaceSealed", testConcurrentReplaceSealed},
		{"EventOutbox", testEventOutbox},
		{"EventOutbox/RecordAuditEvent", testRecordAuditEvent},
		{"Webhooks/Endpoints", testWebhookEndpoints},
		{"Webhooks/Deliveries", testWebhookDeliveries},
		{"Concurrent/ClaimWebhookDeliveries", testConcurrentClaimWebhookDeliveries},
		{"RequestPath/LockUserPending", testLockUserPending},
		{"RequestPath/ListSettledRequests", testListSettledRequests},
		{"RequestPath/ListRequestsSettledSince", testListRequestsSettledSince},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// Fixed times: equality is asserted on what is read back.
var (
	t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.UTC)
	t1 = t0.Add(time.Minute)
	t2 = t0.Add(2 * time.Minute)
	t3 = t0.Add(3 * time.Minute)
)

func ctxT(t *testing.T) context.Context { return t.Context() }

func mustRP(t *testing.T, s store.Store, id string) store.RelyingParty {
	t.Helper()
	rp := store.RelyingParty{
		ID:          id,
		Name:        "name-" + id,
		DisplayName: "Display " + id,
		Policy: store.Policy{
			NumberMatching:          store.NumberMatchingNumber,
			ApprovalTTL:             90 * time.Second,
			AllowLocationAutomation: true,
			AllowBackupRestore:      false,
		},
		CreatedAt: t0,
		UpdatedAt: t1,
	}
	if err := s.CreateRelyingParty(ctxT(t), rp); err != nil {
		t.Fatalf("CreateRelyingParty(%q): %v", id, err)
	}
	return rp
}

func newKey(rpID, id string, created time.Time) store.APIKey {
	return store.APIKey{
		ID:             id,
		RelyingPartyID: rpID,
		Prefix:         "pfx-" + id,
		Hash:           []byte("hash of " + id),
		Description:    "key " + id,
		CreatedAt:      created,
	}
}

func mustKey(t *testing.T, s store.Store, k store.APIKey) store.APIKey {
	t.Helper()
	if err := s.CreateAPIKey(ctxT(t), k); err != nil {
		t.Fatalf("CreateAPIKey(%q): %v", k.ID, err)
	}
	return k
}

func newDevice(id string) store.Device {
	return store.Device{
		ID:               id,
		CredentialPrefix: "dev-" + id,
		CredentialHash:   []byte("credential hash " + id),
		PhoneNumber:      "+4915112345678",
		PublicKey:        []byte{0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x00, 0xff},
		Platform:         "ANDROID",
		PushToken:        "push-token-" + id,
		PushTokenDead:    true,
		Name:             "Pixel of " + id,
		AppVersion:       "1.2.3",
		Locale:           "en-GB",
		CreatedAt:        t0,
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func testRelyingPartyCreateGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	rp := mustRP(t, s, "rp-1")
	got, err := s.GetRelyingParty(ctx, "rp-1")
	if err != nil {
		t.Fatalf("GetRelyingParty: %v", err)
	}
	wantEqual(t, "GetRelyingParty", got, rp)
	got, err = s.GetRelyingPartyByName(ctx, rp.Name)
	if err != nil {
		t.Fatalf("GetRelyingPartyByName: %v", err)
	}
	wantEqual(t, "GetRelyingPartyByName", got, rp)

	// Every number-matching mode and both booleans survive.
	for i, p := range []store.Policy{
		{NumberMatching: store.NumberMatchingNone, ApprovalTTL: 0, AllowBackupRestore: true},
		{NumberMatching: store.NumberMatchingCode, ApprovalTTL: 5 * time.Minute, AllowLocationAutomation: true, AllowBackupRestore: true},
	} {
		rp := store.RelyingParty{ID: fmt.Sprintf("rp-p%d", i), Name: fmt.Sprintf("policy-%d", i), Policy: p, CreatedAt: t0, UpdatedAt: t0}
		if err := s.CreateRelyingParty(ctx, rp); err != nil {
			t.Fatalf("CreateRelyingParty: %v", err)
		}
		got, err := s.GetRelyingParty(ctx, rp.ID)
		if err != nil {
			t.Fatalf("GetRelyingParty: %v", err)
		}
		wantEqual(t, "policy round trip", got, rp)
	}
}

func testRelyingPartyConflict(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	rp := mustRP(t, s, "rp-1")
	dupName := rp
	dupName.ID = "rp-2"
	wantErr(t, "create with taken name", s.CreateRelyingParty(ctx, dupName), store.ErrConflict)
	dupID := rp
	dupID.Name = "another-name"
	wantErr(t, "create with taken ID", s.CreateRelyingParty(ctx, dupID), store.ErrConflict)
	if _, err := s.GetRelyingParty(ctx, "rp-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("conflicting create left a row behind: %v", err)
	}
}

func testRelyingPartyNotFound(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	_, err := s.GetRelyingParty(ctx, "nope")
	wantErr(t, "GetRelyingParty unknown", err, store.ErrNotFound)
	_, err = s.GetRelyingPartyByName(ctx, "nope")
	wantErr(t, "GetRelyingPartyByName unknown", err, store.ErrNotFound)
	err = s.UpdateRelyingParty(ctx, store.RelyingParty{ID: "nope", Name: "nope", UpdatedAt: t1})
	wantErr(t, "UpdateRelyingParty unknown", err, store.ErrNotFound)
}

func ids(rps []store.RelyingParty) []string {
	out := []string{}
	for _, rp := range rps {
		out = append(out, rp.ID)
	}
	return out
}

func testRelyingPartyList(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	got, err := s.ListRelyingParties(ctx, "", 10)
	if err != nil {
		t.Fatalf("ListRelyingParties on empty store: %v", err)
	}
	wantEqual(t, "empty list", ids(got), []string{})

	// Inserted out of order; IDs order by bytes ("B" < "a").
	for _, id := range []string{"rp-c", "rp-B", "rp-a", "rp-A", "rp-b"} {
		mustRP(t, s, id)
	}
	want := []string{"rp-A", "rp-B", "rp-a", "rp-b", "rp-c"}
	var all []string
	after := ""
	for page := 0; page < 10; page++ {
		got, err := s.ListRelyingParties(ctx, after, 2)
		if err != nil {
			t.Fatalf("ListRelyingParties(%q, 2): %v", after, err)
		}
		if len(got) > 2 {
			t.Fatalf("ListRelyingParties(%q, 2) returned %d", after, len(got))
		}
		if len(got) == 0 {
			break
		}
		all = append(all, ids(got)...)
		after = got[len(got)-1].ID
	}
	wantEqual(t, "paged IDs", all, want)

	got, err = s.ListRelyingParties(ctx, "", 100)
	if err != nil {
		t.Fatalf("ListRelyingParties: %v", err)
	}
	wantEqual(t, "one page", ids(got), want)
	if len(got) > 0 {
		wantEqual(t, "listed row", got[0], store.RelyingParty{
			ID: "rp-A", Name: "name-rp-A", DisplayName: "Display rp-A",
			Policy:    store.Policy{NumberMatching: store.NumberMatchingNumber, ApprovalTTL: 90 * time.Second, AllowLocationAutomation: true},
			CreatedAt: t0, UpdatedAt: t1,
		})
	}
	got, err = s.ListRelyingParties(ctx, "rp-c", 100)
	if err != nil {
		t.Fatalf("ListRelyingParties after last: %v", err)
	}
	wantEqual(t, "after last", ids(got), []string{})
}

func testRelyingPartyUpdate(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	rp := mustRP(t, s, "rp-1")
	upd := rp
	upd.Name = "renamed" // not updatable
	upd.CreatedAt = t3   // not updatable
	upd.DisplayName = "New Display"
	upd.Policy = store.Policy{NumberMatching: store.NumberMatchingCode, ApprovalTTL: 2 * time.Minute, AllowBackupRestore: true}
	upd.UpdatedAt = t2
	if err := s.UpdateRelyingParty(ctx, upd); err != nil {
		t.Fatalf("UpdateRelyingParty: %v", err)
	}
	want := rp
	want.DisplayName = upd.DisplayName
	want.Policy = upd.Policy
	want.UpdatedAt = t2
	got, err := s.GetRelyingParty(ctx, rp.ID)
	if err != nil {
		t.Fatalf("GetRelyingParty: %v", err)
	}
	wantEqual(t, "after update", got, want)
}

func testAPIKeyCreateGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustRP(t, s, "rp-1")
	k := newKey("rp-1", "k1", t0)
	k.LastUsedAt = t1
	mustKey(t, s, k)
	got, err := s.GetAPIKey(ctx, "k1")
	if err != nil {
		t.Fatalf("GetAPIKey: %v", err)
	}
	wantEqual(t, "GetAPIKey", got, k)
	got.Hash[0] ^= 0xff // Get returns a copy
	got, err = s.GetAPIKeyByPrefix(ctx, k.Prefix)
	if err != nil {
		t.Fatalf("GetAPIKeyByPrefix: %v", err)
	}
	wantEqual(t, "GetAPIKeyByPrefix", got, k)

	_, err = s.GetAPIKey(ctx, "nope")
	wantErr(t, "GetAPIKey unknown", err, store.ErrNotFound)
	_, err = s.GetAPIKeyByPrefix(ctx, "nope")
	wantErr(t, "GetAPIKeyByPrefix unknown", err, store.ErrNotFound)
}

func testAPIKeyUnknownRelyingParty(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	err := s.CreateAPIKey(ctx, newKey("no-such-rp", "k1", t0))
	wantErr(t, "CreateAPIKey for unknown relying party", err, store.ErrNotFound)
	_, err = s.GetAPIKey(ctx, "k1")
	wantErr(t, "key of unknown relying party stored anyway", err, store.ErrNotFound)
}

func testAPIKeyConflict(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustRP(t, s, "rp-1")
	k := mustKey(t, s, newKey("rp-1", "k1", t0))
	dupPrefix := newKey("rp-1", "k2", t0)
	dupPrefix.Prefix = k.Prefix
	wantErr(t, "CreateAPIKey taken prefix", s.CreateAPIKey(ctx, dupPrefix), store.ErrConflict)
	dupID := newKey("rp-1", "k1", t0)
	dupID.Prefix = "other-prefix"
	wantErr(t, "CreateAPIKey taken ID", s.CreateAPIKey(ctx, dupID), store.ErrConflict)
}

func keyIDs(ks []store.APIKey) []string {
	out := []string{}
	for _, k := range ks {
		out = append(out, k.ID)
	}
	return out
}

func testAPIKeyList(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustRP(t, s, "rp-1")
	mustRP(t, s, "rp-2")
	// Created out of ID order, and stored out of creation order.
	mustKey(t, s, newKey("rp-1", "k-c", t2))
	mustKey(t, s, newKey("rp-1", "k-a", t0))
	mustKey(t, s, newKey("rp-2", "k-other", t0))
	kb := mustKey(t, s, newKey("rp-1", "k-b", t1))
	if err := s.RevokeAPIKey(ctx, "k-a", t3); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}

	got, err := s.ListAPIKeys(ctx, "rp-1", true)
	if err != nil {
		t.Fatalf("ListAPIKeys(includeRevoked): %v", err)
	}
	wantEqual(t, "with revoked", keyIDs(got), []string{"k-a", "k-b", "k-c"})
	if len(got) == 3 {
		wantEqual(t, "revoked key's RevokedAt", got[0].RevokedAt, t3)
		wantEqual(t, "listed key", got[1], kb)
	}
	got, err = s.ListAPIKeys(ctx, "rp-1", false)
	if err != nil {
		t.Fatalf("ListAPIKeys: %v", err)
	}
	wantEqual(t, "without revoked", keyIDs(got), []string{"k-b", "k-c"})

	got, err = s.ListAPIKeys(ctx, "no-such-rp", true)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ListAPIKeys(unknown relying party): %v", err)
	}
	if len(got) != 0 {
		t.Errorf("ListAPIKeys(unknown relying party) = %v, want none", keyIDs(got))
	}
}

func testAPIKeyRevoke(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustRP(t, s, "rp-1")
	mustKey(t, s, newKey("rp-1", "k1", t0))
	if err := s.RevokeAPIKey(ctx, "k1", t1); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	wantErr(t, "second RevokeAPIKey", s.RevokeAPIKey(ctx, "k1", t2), store.ErrConflict)
	wantErr(t, "RevokeAPIKey unknown", s.RevokeAPIKey(ctx, "nope", t2), store.ErrNotFound)
	got, err := s.GetAPIKey(ctx, "k1")
	if err != nil {
		t.Fatalf("GetAPIKey: %v", err)
	}
	wantEqual(t, "RevokedAt after losing revoke", got.RevokedAt, t1)
}

func testAPIKeyTouch(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustRP(t, s, "rp-1")
	mustKey(t, s, newKey("rp-1", "k1", t0))
	lastUsed := func() time.Time {
		t.Helper()
		k, err := s.GetAPIKey(ctx, "k1")
		if err != nil {
			t.Fatalf("GetAPIKey: %v", err)
		}
		return k.LastUsedAt
	}
	if got := lastUsed(); !got.IsZero() {
		t.Errorf("LastUsedAt of unused key = %v, want zero", got)
	}
	for _, step := range []struct {
		at, want time.Time
	}{
		{t2, t2}, // first use
		{t1, t2}, // earlier: ignored
		{t2, t2}, // same: ignored
		{t3, t3}, // later: moves forward
	} {
		if err := s.TouchAPIKey(ctx, "k1", step.at); err != nil {
			t.Fatalf("TouchAPIKey(%v): %v", step.at, err)
		}
		wantEqual(t, fmt.Sprintf("LastUsedAt after touch at %v", step.at), lastUsed(), step.want)
	}
	wantErr(t, "TouchAPIKey unknown", s.TouchAPIKey(ctx, "nope", t3), store.ErrNotFound)
}

func testDeviceCreateGet(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	d := newDevice("d1")
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	got, err := s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	wantEqual(t, "GetDevice", got, d)
	got.PublicKey[0] ^= 0xff // Get returns a copy
	got, err = s.GetDeviceByCredentialPrefix(ctx, d.CredentialPrefix)
	if err != nil {
		t.Fatalf("GetDeviceByCredentialPrefix: %v", err)
	}
	wantEqual(t, "GetDeviceByCredentialPrefix", got, d)

	revoked := newDevice("d2")
	revoked.PushTokenDead = false
	revoked.Platform = "IOS"
	revoked.LastSeenAt = t1
	revoked.RevokedAt = t2
	if err := s.CreateDevice(ctx, revoked); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	got, err = s.GetDevice(ctx, "d2")
	if err != nil {
		t.Fatalf("GetDevice(revoked): %v", err)
	}
	wantEqual(t, "GetDevice(revoked)", got, revoked)

	_, err = s.GetDevice(ctx, "nope")
	wantErr(t, "GetDevice unknown", err, store.ErrNotFound)
	_, err = s.GetDeviceByCredentialPrefix(ctx, "nope")
	wantErr(t, "GetDeviceByCredentialPrefix unknown", err, store.ErrNotFound)
}

func testDeviceConflict(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	d := newDevice("d1")
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	dupPrefix := newDevice("d2")
	dupPrefix.CredentialPrefix = d.CredentialPrefix
	wantErr(t, "CreateDevice taken prefix", s.CreateDevice(ctx, dupPrefix), store.ErrConflict)
	dupID := newDevice("d1")
	dupID.CredentialPrefix = "other"
	wantErr(t, "CreateDevice taken ID", s.CreateDevice(ctx, dupID), store.ErrConflict)
}

func testDeviceTouch(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	if err := s.CreateDevice(ctx, newDevice("d1")); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	for _, step := range []struct {
		at, want time.Time
	}{
		{t2, t2},
		{t1, t2},
		{t3, t3},
	} {
		if err := s.TouchDevice(ctx, "d1", step.at); err != nil {
			t.Fatalf("TouchDevice(%v): %v", step.at, err)
		}
		d, err := s.GetDevice(ctx, "d1")
		if err != nil {
			t.Fatalf("GetDevice: %v", err)
		}
		wantEqual(t, fmt.Sprintf("LastSeenAt after touch at %v", step.at), d.LastSeenAt, step.want)
	}
	wantErr(t, "TouchDevice unknown", s.TouchDevice(ctx, "nope", t3), store.ErrNotFound)
}

func mustAppend(t *testing.T, s store.Store, e store.AuditEvent) store.AuditEvent {
	t.Helper()
	id, err := s.AppendAuditEvent(ctxT(t), e)
	if err != nil {
		t.Fatalf("AppendAuditEvent: %v", err)
	}
	e.ID = id
	return e
}

func eventIDs(es []store.AuditEvent) []int64 {
	out := []int64{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func testAuditAppend(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	e1 := mustAppend(t, s, store.AuditEvent{
		Time: t0, Actor: "admin:alice", Action: "relying_party.create", RelyingPartyID: "rp-1",
		Target: "rp-1", RequestID: "req-1",
		Details: map[string]string{"name": "shop", "quote\"d": "välue\n{}", "": "empty key"},
	})
	e2 := mustAppend(t, s, store.AuditEvent{Time: t1, Actor: "system", Action: "tick"}) // no RP, no details
	e3 := mustAppend(t, s, store.AuditEvent{Time: t0, Actor: "a", Action: "b", RelyingPartyID: "rp-1", Details: map[string]string{}})
	if !(e1.ID < e2.ID && e2.ID < e3.ID) {
		t.Fatalf("IDs not increasing: %d, %d, %d", e1.ID, e2.ID, e3.ID)
	}
	got, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: 10})
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	wantEqual(t, "newest first", eventIDs(got), []int64{e3.ID, e2.ID, e1.ID})
	if len(got) != 3 {
		return
	}
	wantEqual(t, "event with details", got[2], e1)
	// Empty and nil details are the same thing.
	for _, i := range []int{0, 1} {
		if len(got[i].Details) != 0 {
			t.Errorf("event %d details = %v, want none", got[i].ID, got[i].Details)
		}
		got[i].Details = nil
	}
	e2.Details, e3.Details = nil, nil
	wantEqual(t, "event without details", got[1], e2)
	wantEqual(t, "event with empty details", got[0], e3)
}

func testAuditFilter(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	var a, b []store.AuditEvent // by relying party, oldest first
	for i := range 6 {
		at := t0.Add(time.Duration(i) * time.Second)
		a = append(a, mustAppend(t, s, store.AuditEvent{Time: at, Actor: "x", Action: "y", RelyingPartyID: "rp-a"}))
		b = append(b, mustAppend(t, s, store.AuditEvent{Time: at, Actor: "x", Action: "y", RelyingPartyID: "rp-b"}))
	}
	desc := func(es ...store.AuditEvent) []int64 {
		out := []int64{}
		for i := len(es) - 1; i >= 0; i-- {
			out = append(out, es[i].ID)
		}
		return out
	}
	cases := []struct {
		name string
		f    store.AuditFilter
		want []int64
	}{
		{"by relying party", store.AuditFilter{RelyingPartyID: "rp-a", Limit: 100}, desc(a...)},
		{"unknown relying party", store.AuditFilter{RelyingPartyID: "rp-z", Limit: 100}, []int64{}},
		{"limit", store.AuditFilter{RelyingPartyID: "rp-b", Limit: 2}, desc(b[4], b[5])},
		{"since is inclusive", store.AuditFilter{RelyingPartyID: "rp-a", Since: a[4].Time, Limit: 100}, desc(a[4], a[5])},
		{"until is exclusive", store.AuditFilter{RelyingPartyID: "rp-a", Until: a[2].Time, Limit: 100}, desc(a[0], a[1])},
		{"since and until", store.AuditFilter{Since: a[1].Time, Until: a[3].Time, Limit: 100}, desc(a[1], b[1], a[2], b[2])},
		{"before ID", store.AuditFilter{RelyingPartyID: "rp-b", BeforeID: b[3].ID, Limit: 100}, desc(b[0], b[1], b[2])},
		{"before ID and limit", store.AuditFilter{BeforeID: b[3].ID, Limit: 3}, desc(a[2], b[2], a[3])},
		{"everything", store.AuditFilter{RelyingPartyID: "rp-a", Since: a[1].Time, Until: a[5].Time, BeforeID: a[4].ID, Limit: 2}, desc(a[2], a[3])},
	}
	for _, c := range cases {
		got, err := s.ListAuditEvents(ctx, c.f)
		if err != nil {
			t.Errorf("%s: ListAuditEvents(%+v): %v", c.name, c.f, err)
			continue
		}
		wantEqual(t, c.name, eventIDs(got), c.want)
	}
	// Paging with BeforeID walks the whole log once, newest first.
	var walked []int64
	before := int64(0)
	for range 20 {
		page, err := s.ListAuditEvents(ctx, store.AuditFilter{BeforeID: before, Limit: 5})
		if err != nil {
			t.Fatalf("ListAuditEvents: %v", err)
		}
		if len(page) == 0 {
			break
		}
		walked = append(walked, eventIDs(page)...)
		before = page[len(page)-1].ID
	}
	all := make([]store.AuditEvent, 0, 12)
	for i := range a {
		all = append(all, a[i], b[i])
	}
	wantEqual(t, "paged walk", walked, desc(all...))
}

func testInTxCommit(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	var auditID int64
	err := s.InTx(ctx, func(tx store.Store) error {
		rp := store.RelyingParty{ID: "rp-1", Name: "one", CreatedAt: t0, UpdatedAt: t0}
		if err := tx.CreateRelyingParty(ctx, rp); err != nil {
			return err
		}
		// The transaction sees its own writes.
		if _, err := tx.GetRelyingParty(ctx, "rp-1"); err != nil {
			return fmt.Errorf("read own write: %w", err)
		}
		if err := tx.CreateAPIKey(ctx, newKey("rp-1", "k1", t0)); err != nil {
			return err
		}
		if err := tx.RevokeAPIKey(ctx, "k1", t1); err != nil {
			return err
		}
		var err error
		auditID, err = tx.AppendAuditEvent(ctx, store.AuditEvent{Time: t0, Actor: "a", Action: "rp.create", RelyingPartyID: "rp-1"})
		return err
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if _, err := s.GetRelyingParty(ctx, "rp-1"); err != nil {
		t.Errorf("committed relying party: %v", err)
	}
	k, err := s.GetAPIKey(ctx, "k1")
	if err != nil {
		t.Errorf("committed key: %v", err)
	}
	wantEqual(t, "committed revocation", k.RevokedAt, t1)
	evs, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: 10})
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	wantEqual(t, "committed audit", eventIDs(evs), []int64{auditID})
}

func testInTxRollback(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustRP(t, s, "rp-0")
	mustKey(t, s, newKey("rp-0", "k0", t0))
	mustAppend(t, s, store.AuditEvent{Time: t0, Actor: "a", Action: "before"})
	before, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: 10})
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	errBoom := errors.New("boom")
	err = s.InTx(ctx, func(tx store.Store) error {
		if err := tx.CreateRelyingParty(ctx, store.RelyingParty{ID: "rp-1", Name: "one", CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		if err := tx.CreateAPIKey(ctx, newKey("rp-1", "k1", t0)); err != nil {
			return err
		}
		if err := tx.RevokeAPIKey(ctx, "k0", t1); err != nil {
			return err
		}
		if err := tx.CreateDevice(ctx, newDevice("d1")); err != nil {
			return err
		}
		if _, err := tx.AppendAuditEvent(ctx, store.AuditEvent{Time: t1, Actor: "a", Action: "rolled back"}); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("InTx returned %v, want fn's error", err)
	}
	_, err = s.GetRelyingParty(ctx, "rp-1")
	wantErr(t, "rolled-back relying party", err, store.ErrNotFound)
	_, err = s.GetAPIKey(ctx, "k1")
	wantErr(t, "rolled-back key", err, store.ErrNotFound)
	_, err = s.GetDevice(ctx, "d1")
	wantErr(t, "rolled-back device", err, store.ErrNotFound)
	k0, err := s.GetAPIKey(ctx, "k0")
	if err != nil {
		t.Fatalf("GetAPIKey: %v", err)
	}
	if !k0.RevokedAt.IsZero() {
		t.Errorf("rolled-back revocation is visible: %v", k0.RevokedAt)
	}
	after, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: 10})
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	wantEqual(t, "audit after rollback", eventIDs(after), eventIDs(before))

	// The store still works after a rollback.
	if err := s.InTx(ctx, func(tx store.Store) error {
		return tx.CreateRelyingParty(ctx, store.RelyingParty{ID: "rp-1", Name: "one", CreatedAt: t0, UpdatedAt: t0})
	}); err != nil {
		t.Fatalf("InTx after rollback: %v", err)
	}
}

func testInTxNested(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	ran := false
	var nestedErr error
	err := s.InTx(ctx, func(tx store.Store) error {
		nestedErr = tx.InTx(ctx, func(store.Store) error {
			ran = true
			return nil
		})
		return nil
	})
	if err != nil {
		t.Fatalf("InTx: %v", err)
	}
	if nestedErr == nil || ran {
		t.Errorf("nested InTx: ran=%v err=%v, want an error and fn not run", ran, nestedErr)
	}
}

func testTimeRoundTrip(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// Not UTC, with nanoseconds: reads back in UTC, truncated to microseconds.
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	in := time.Date(2024, 2, 29, 23, 59, 59, 123456789, zone)
	want := time.Date(2024, 2, 29, 18, 29, 59, 123456000, time.UTC)
	old := time.Date(1969, 7, 20, 20, 17, 40, 999999999, time.UTC) // before the epoch
	oldWant := time.Date(1969, 7, 20, 20, 17, 40, 999999000, time.UTC)

	check := func(what string, got, want time.Time) {
		t.Helper()
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s = %v (%s), want %v", what, got, got.Location(), want)
		}
	}
	rp := store.RelyingParty{ID: "rp-1", Name: "one", CreatedAt: in} // UpdatedAt zero
	if err := s.CreateRelyingParty(ctx, rp); err != nil {
		t.Fatalf("CreateRelyingParty: %v", err)
	}
	got, err := s.GetRelyingParty(ctx, "rp-1")
	if err != nil {
		t.Fatalf("GetRelyingParty: %v", err)
	}
	check("CreatedAt", got.CreatedAt, want)
	if !got.UpdatedAt.IsZero() {
		t.Errorf("zero UpdatedAt read back as %v", got.UpdatedAt)
	}

	k := newKey("rp-1", "k1", old)
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, "k1", in); err != nil {
		t.Fatalf("RevokeAPIKey: %v", err)
	}
	gk, err := s.GetAPIKey(ctx, "k1")
	if err != nil {
		t.Fatalf("GetAPIKey: %v", err)
	}
	check("CreatedAt before 1970", gk.CreatedAt, oldWant)
	check("RevokedAt", gk.RevokedAt, want)
	if !gk.LastUsedAt.IsZero() {
		t.Errorf("zero LastUsedAt read back as %v", gk.LastUsedAt)
	}

	d := newDevice("d1")
	d.CreatedAt = time.Time{}
	if err := s.CreateDevice(ctx, d); err != nil {
		t.Fatalf("CreateDevice: %v", err)
	}
	gd, err := s.GetDevice(ctx, "d1")
	if err != nil {
		t.Fatalf("GetDevice: %v", err)
	}
	for what, tm := range map[string]time.Time{"CreatedAt": gd.CreatedAt, "LastSeenAt": gd.LastSeenAt, "RevokedAt": gd.RevokedAt} {
		if !tm.IsZero() {
			t.Errorf("zero device %s read back as %v", what, tm)
		}
	}

	if _, err := s.AppendAuditEvent(ctx, store.AuditEvent{Time: in, Actor: "a", Action: "b"}); err != nil {
		t.Fatalf("AppendAuditEvent: %v", err)
	}
	evs, err := s.ListAuditEvents(ctx, store.AuditFilter{Since: want, Until: want.Add(time.Microsecond), Limit: 1})
	if err != nil || len(evs) != 1 {
		t.Fatalf("ListAuditEvents around truncated time: %v, %d events", err, len(evs))
	}
	check("audit Time", evs[0].Time, want)
}

func testCancelledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	rp := store.RelyingParty{ID: "rp-1", Name: "one", CreatedAt: t0, UpdatedAt: t0}
	if err := s.CreateRelyingParty(ctx, rp); err == nil {
		t.Error("CreateRelyingParty with cancelled ctx succeeded")
	}
	if _, err := s.GetRelyingParty(ctx, "rp-1"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRelyingParty with cancelled ctx: %v, want a context error", err)
	}
	if _, err := s.ListAuditEvents(ctx, store.AuditFilter{Limit: 1}); err == nil {
		t.Error("ListAuditEvents with cancelled ctx succeeded")
	}
	if _, err := s.TakeRate(ctx, t0, store.RateLimit{Key: "k", Window: time.Hour, Max: 10}); err == nil {
		t.Error("TakeRate with cancelled ctx succeeded")
	}
	if _, err := s.SpendGuess(ctx, store.GuessBudget{Key: "k", Max: 10}, t0); err == nil {
		t.Error("SpendGuess with cancelled ctx succeeded")
	}
	if err := s.UseVerification(ctx, "v1", t0, 10); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("UseVerification with cancelled ctx: %v, want a context error", err)
	}
	ran := false
	if err := s.InTx(ctx, func(store.Store) error { ran = true; return nil }); err == nil {
		t.Error("InTx with cancelled ctx succeeded")
	}
	if ran {
		t.Error("InTx with cancelled ctx ran fn")
	}
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping with cancelled ctx succeeded")
	}
	_, err := s.GetRelyingParty(ctxT(t), "rp-1")
	wantErr(t, "relying party created with cancelled ctx", err, store.ErrNotFound)
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.InTx(ctxT(t), func(tx store.Store) error { return tx.Ping(ctxT(t)) }); err != nil {
		t.Fatalf("Ping in InTx: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(ctxT(t)); err == nil {
		t.Error("Ping after Close succeeded")
	}
	if _, err := s.GetRelyingParty(ctxT(t), "x"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRelyingParty after Close: %v, want a closed error", err)
	}
}

const racers = 16

// race runs fn in racers goroutines released at once and returns their errors.
func race(fn func(i int) error) []error { return Burst(racers, fn) }

func exactlyOneWins(t *testing.T, what string, errs []error) {
	t.Helper()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("%s: racer %d: %v, want nil or ErrConflict", what, i, err)
		}
	}
	if wins != 1 {
		t.Errorf("%s: %d racers won, want exactly 1", what, wins)
	}
}

func testConcurrentRevoke(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	mustRP(t, s, "rp-1")
	mustKey(t, s, newKey("rp-1", "k1", t0))
	errs := race(func(i int) error {
		return s.RevokeAPIKey(ctx, "k1", t1.Add(time.Duration(i)*time.Second))
	})
	exactlyOneWins(t, "RevokeAPIKey", errs)
	k, err := s.GetAPIKey(ctx, "k1")
	if err != nil {
		t.Fatalf("GetAPIKey: %v", err)
	}
	for i, err := range errs {
		if err == nil {
			wantEqual(t, "RevokedAt is the winner's", k.RevokedAt, t1.Add(time.Duration(i)*time.Second))
		}
	}
}

func testConcurrentCreateSameName(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	errs := race(func(i int) error {
		return s.CreateRelyingParty(ctx, store.RelyingParty{
			ID: fmt.Sprintf("rp-%02d", i), Name: "same", CreatedAt: t0, UpdatedAt: t0,
		})
	})
	exactlyOneWins(t, "CreateRelyingParty", errs)
	rps, err := s.ListRelyingParties(ctx, "", 100)
	if err != nil {
		t.Fatalf("ListRelyingParties: %v", err)
	}
	if len(rps) != 1 {
		t.Errorf("%d relying parties stored, want 1", len(rps))
	}
}
