package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/pushauth/pushauth/internal/store"
)

// testListSealed pages through both sealed kinds in row-key order.
func testListSealed(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	for i := range 5 {
		b := newBackup(fmt.Sprintf("+3161234567%d", i), "d1")
		b.SealedShare = []byte{byte(i), 0xfe}
		mustBackup(t, s, b, 0)
		f := newTOTPFactor(fmt.Sprintf("f%d", i), "rp-1", "alice", t0)
		f.SealedSecret = []byte{byte(i), 0xef}
		mustTOTPFactor(t, s, f)
	}
	for _, kind := range []string{store.SealBackupShare, store.SealTOTPSecret} {
		var keys []string
		after := ""
		for page := 0; ; page++ {
			got, err := s.ListSealed(ctx, kind, after, 2)
			if err != nil {
				t.Fatalf("ListSealed(%s, %q): %v", kind, after, err)
			}
			if len(got) == 0 {
				break
			}
			if len(got) > 2 || page > 3 {
				t.Fatalf("ListSealed(%s) page %d: %d values", kind, page, len(got))
			}
			for _, v := range got {
				if len(v.Value) != 2 || v.Value[0] != byte(len(keys)) {
					t.Errorf("ListSealed(%s): value of %q = % x", kind, v.Key, v.Value)
				}
				keys = append(keys, v.Key)
			}
			after = got[len(got)-1].Key
		}
		if len(keys) != 5 {
			t.Errorf("ListSealed(%s) paged through %d rows, want 5: %q", kind, len(keys), keys)
		}
	}
	if _, err := s.ListSealed(ctx, "api_keys", "", 10); err == nil {
		t.Error("ListSealed of an unknown kind did not fail")
	}
}

// testReplaceSealed: the value is replaced only while it is still the one
// read.
func testReplaceSealed(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	b := mustBackup(t, s, newBackup("+31612345678", "d1"), 0)
	mustTOTPFactor(t, s, newTOTPFactor("f1", "rp-1", "alice", t0))
	f := getTOTPFactor(t, s, "f1")

	if err := s.ReplaceSealed(ctx, store.SealBackupShare, b.PhoneNumber, b.SealedShare, []byte("new share")); err != nil {
		t.Fatalf("ReplaceSealed(backup): %v", err)
	}
	got, err := s.GetBackup(ctx, b.PhoneNumber)
	if err != nil || string(got.SealedShare) != "new share" || got.Version != b.Version || !bytes.Equal(got.Blob, b.Blob) {
		t.Fatalf("backup after ReplaceSealed: %+v, %v (only the share changes, not the version)", got, err)
	}
	wantErr(t, "ReplaceSealed with a stale value", s.ReplaceSealed(ctx, store.SealBackupShare, b.PhoneNumber, b.SealedShare, []byte("x")), store.ErrConflict)
	wantErr(t, "ReplaceSealed of a missing backup", s.ReplaceSealed(ctx, store.SealBackupShare, "+31600000000", b.SealedShare, []byte("x")), store.ErrNotFound)

	if err := s.ReplaceSealed(ctx, store.SealTOTPSecret, "f1", f.SealedSecret, []byte("new seed")); err != nil {
		t.Fatalf("ReplaceSealed(totp): %v", err)
	}
	f.SealedSecret = []byte("new seed")
	wantEqual(t, "factor after ReplaceSealed", getTOTPFactor(t, s, "f1"), f)
	wantErr(t, "ReplaceSealed of a missing factor", s.ReplaceSealed(ctx, store.SealTOTPSecret, "f9", []byte("a"), []byte("b")), store.ErrNotFound)
	if err := s.ReplaceSealed(ctx, "devices", "f1", nil, nil); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReplaceSealed of an unknown kind: %v", err)
	}
}

// testConcurrentReplaceSealed: of many re-sealers (two replicas' jobs, or
// a job and the app replacing its backup), one wins.
func testConcurrentReplaceSealed(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	b := mustBackup(t, s, newBackup("+31612345678", "d1"), 0)
	errs := race(func(i int) error {
		return s.ReplaceSealed(ctx, store.SealBackupShare, b.PhoneNumber, b.SealedShare, fmt.Appendf(nil, "share %d", i))
	})
	exactlyOneWins(t, "ReplaceSealed", errs)
	got, err := s.GetBackup(ctx, b.PhoneNumber)
	for i, e := range errs {
		if e == nil && (err != nil || string(got.SealedShare) != fmt.Sprintf("share %d", i)) {
			t.Errorf("share after the winner %d: %q, %v", i, got.SealedShare, err)
		}
	}
}
