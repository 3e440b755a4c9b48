package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pushauth/pushauth/internal/store"
)

// testErrorsHideNumbers checks that the store's error strings, which end up
// in logs, never hold a full phone number: a missing backup, a missing
// verification, and failures of calls keyed by a number.
func testErrorsHideNumbers(t *testing.T, s store.Store) {
	const number = "+31612345678"
	ctx := ctxT(t)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	check := func(what string, err error, want error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("%s = %v, want %v", what, err, want)
		}
		if msg := err.Error(); strings.Contains(msg, number) || strings.Contains(msg, strings.TrimPrefix(number, "+")) || strings.Contains(msg, "612345678") {
			t.Errorf("%s: error %q holds the phone number", what, msg)
		}
	}
	_, err := s.GetBackup(ctx, number)
	check("GetBackup of a missing backup", err, store.ErrNotFound)
	check("DeleteBackup of a missing backup", s.DeleteBackup(ctx, number), store.ErrNotFound)
	_, err = s.AddBackupFailure(ctx, number, nil)
	check("AddBackupFailure of a missing backup", err, store.ErrNotFound)
	check("ResetBackupFailures of a missing backup", s.ResetBackupFailures(ctx, number), store.ErrNotFound)
	_, err = s.LatestVerification(ctx, number)
	check("LatestVerification of an unknown number", err, store.ErrNotFound)

	// Failures other than "not found": the context is already cancelled.
	check("PutBackup, cancelled", s.PutBackup(cancelled, newBackup(number, "d1")), nil)
	_, err = s.GetBackup(cancelled, number)
	check("GetBackup, cancelled", err, nil)
	// Counter keys hold numbers ("sms:number:+31…").
	_, err = s.IncrementCounter(cancelled, "sms:number:"+number+":1h0m0s", t0, 5)
	check("IncrementCounter, cancelled", err, nil)
	_, err = s.CounterValue(cancelled, "verify-fail:"+number, t0)
	check("CounterValue, cancelled", err, nil)
}
