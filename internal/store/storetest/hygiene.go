package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
	check("DeleteBackup of a missing backup", s.DeleteBackup(ctx, number, 1), store.ErrNotFound)
	check("PutBackup at a missing version", s.PutBackup(ctx, newBackup(number, "d1"), 3), store.ErrConflict)
	_, err = s.LatestVerification(ctx, number)
	check("LatestVerification of an unknown number", err, store.ErrNotFound)

	// Failures other than "not found": the context is already cancelled.
	check("PutBackup, cancelled", s.PutBackup(cancelled, newBackup(number, "d1"), 0), nil)
	_, err = s.GetBackup(cancelled, number)
	check("GetBackup, cancelled", err, nil)
	// Limit keys hold numbers ("sms:number:+31…", "backup:+31…").
	_, err = s.TakeRate(cancelled, t0, store.RateLimit{Key: "sms:number:" + number, Window: time.Hour, Max: 5})
	check("TakeRate, cancelled", err, nil)
	_, err = s.CountRate(cancelled, "verify-fail:"+number, t0, time.Hour)
	check("CountRate, cancelled", err, nil)
	_, err = s.SpendGuess(cancelled, store.GuessBudget{Key: "backup:" + number, Max: 5}, t0)
	check("SpendGuess, cancelled", err, nil)
	_, err = s.GetGuesses(cancelled, "backup:"+number)
	check("GetGuesses, cancelled", err, nil)
	if err := s.ResetGuesses(cancelled, "backup:"+number, t0); err != nil {
		check("ResetGuesses, cancelled", err, nil)
	}
	_, err = s.TakeRate(ctx, t0, store.RateLimit{Key: "sms:number:" + number, Window: time.Hour, Max: 0})
	check("TakeRate refused", err, store.ErrLimited)
}
