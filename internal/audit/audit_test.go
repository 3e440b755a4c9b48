package audit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/requestid"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

// TestWrite: an entry is stamped with the given time and the request id of
// the call, and it lives and dies with the transaction it is written in.
func TestWrite(t *testing.T) {
	for _, b := range []struct {
		name   string
		newURL func(testing.TB) string
	}{{"sqlite", storetest.NewSQLiteURL}, {"postgres", storetest.NewPostgresURL}} {
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			st := storetest.OpenMigrated(t, b.newURL(t))
			at := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
			rctx := requestid.With(ctx, "rid-1")
			for _, tt := range []struct {
				name   string
				fail   bool
				action string
			}{
				{"committed with its change", false, "thing.done"},
				{"rolled back with its change", true, "thing.undone"},
			} {
				t.Run(tt.name, func(t *testing.T) {
					errRollback := errors.New("roll back")
					err := st.InTx(rctx, func(tx store.Store) error {
						if err := audit.Write(rctx, tx, at, audit.Entry{Actor: audit.ActorAdmin, Action: tt.action, RelyingPartyID: "rp_1",
							Target: "x", Details: map[string]string{"k": "v"}}); err != nil {
							return err
						}
						if tt.fail {
							return errRollback
						}
						return nil
					})
					if tt.fail != errors.Is(err, errRollback) || (!tt.fail && err != nil) {
						t.Fatalf("InTx: %v", err)
					}
				})
			}
			evs, err := st.ListAuditEvents(ctx, store.AuditFilter{RelyingPartyID: "rp_1", Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 {
				t.Fatalf("%d events, want only the committed one: %+v", len(evs), evs)
			}
			e := evs[0]
			if e.Action != "thing.done" || e.Actor != "admin" || e.Target != "x" || e.RequestID != "rid-1" || !e.Time.Equal(at) || e.Details["k"] != "v" {
				t.Fatalf("event %+v", e)
			}
		})
	}
}
