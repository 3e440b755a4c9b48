package pairing

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

// TestClaimAcrossKeyRotation: a phrase shown just before the server key was
// rotated (or by a replica not yet rotated) is still found afterwards.
func TestClaimAcrossKeyRotation(t *testing.T) {
	for _, backend := range []struct {
		name   string
		newURL func(testing.TB) string
	}{{"sqlite", storetest.NewSQLiteURL}, {"postgres", storetest.NewPostgresURL}} {
		t.Run(backend.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			st := storetest.OpenMigrated(t, backend.newURL(t))
			now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
			clock := func() time.Time { return now }
			k1 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, keyring.MasterSize))
			k2 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, keyring.MasterSize))
			before, err := keyring.Parse("k1:" + k1)
			if err != nil {
				t.Fatal(err)
			}
			after, err := keyring.Parse("k2:" + k2 + ",k1:" + k1)
			if err != nil {
				t.Fatal(err)
			}
			phrase, _, err := New(st, before, clock, 10*time.Minute, DefaultLimits(), nil).Create(ctx, "dev_old")
			if err != nil {
				t.Fatal(err)
			}
			rotated := New(st, after, clock, 10*time.Minute, DefaultLimits(), nil)
			if dev, err := rotated.Claim(ctx, "rp_1", "jan", phrase, ""); err != nil || dev != "dev_old" {
				t.Fatalf("phrase made under k1, claimed under k2,k1: %q, %v", dev, err)
			}
			fresh, _, err := rotated.Create(ctx, "dev_new")
			if err != nil {
				t.Fatal(err)
			}
			if dev, err := rotated.Claim(ctx, "rp_1", "piet", fresh, ""); err != nil || dev != "dev_new" {
				t.Fatalf("phrase made under k2, claimed under k2,k1: %q, %v", dev, err)
			}
		})
	}
}
