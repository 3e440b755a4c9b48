package pairing

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/fault"
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

// TestClaimGuessLimits: unknown phrases spend the budgets of the user (per
// relying party), of the end-user address and of the relying party; a
// found phrase gives its try back; while a budget is spent even the right
// phrase is refused, and it opens again as the window rolls on.
func TestClaimGuessLimits(t *testing.T) {
	for _, backend := range []struct {
		name   string
		newURL func(testing.TB) string
	}{{"sqlite", storetest.NewSQLiteURL}, {"postgres", storetest.NewPostgresURL}} {
		t.Run(backend.name, func(t *testing.T) {
			limits := Limits{FailedPerUserHour: 3, FailedPerAddressHour: 5, FailedPerRelyingPartyHour: 7}
			for _, tt := range []struct {
				name string
				// guesses are (relying party, user, address) of the wrong claims
				// made first; then rp_1/jan claims the right phrase from claimAddr.
				guesses   [][3]string
				claimAddr string
				refused   bool
			}{
				{"two wrong for the user: the right phrase is found", repeat(2, "rp_1", "jan", "192.0.2.1"), "192.0.2.1", false},
				{"three wrong for the user: refused", repeat(3, "rp_1", "jan", "192.0.2.1"), "192.0.2.9", true},
				{"three wrong for another user: found", repeat(3, "rp_1", "piet", "192.0.2.1"), "192.0.2.9", false},
				{"three wrong for the user elsewhere: found", repeat(3, "rp_2", "jan", "192.0.2.1"), "192.0.2.9", false},
				{"five wrong from the address, over users: refused", append(repeat(2, "rp_1", "a", "192.0.2.1"), repeat(3, "rp_2", "b", "192.0.2.1")...), "192.0.2.1", true},
				{"seven wrong at the relying party, over users and addresses: refused",
					append(append(repeat(2, "rp_1", "a", "192.0.2.1"), repeat(2, "rp_1", "b", "192.0.2.2")...), append(repeat(2, "rp_1", "c", "192.0.2.3"), repeat(1, "rp_1", "d", "192.0.2.4")...)...),
					"192.0.2.9", true},
			} {
				t.Run(tt.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
					defer cancel()
					st := storetest.OpenMigrated(t, backend.newURL(t))
					now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
					clock := func() time.Time { return now }
					keys, err := keyring.Parse("k1:" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, keyring.MasterSize)))
					if err != nil {
						t.Fatal(err)
					}
					p := New(st, keys, clock, 2*time.Hour, limits, nil)
					phrase, _, err := p.Create(ctx, "dev_1")
					if err != nil {
						t.Fatal(err)
					}
					// A found phrase gives its try back: claims of other,
					// live phrases never count.
					for i := range 4 {
						other, _, err := p.Create(ctx, "dev_other_"+string(rune('a'+i)))
						if err != nil {
							t.Fatal(err)
						}
						if _, err := p.Claim(ctx, "rp_1", "jan", other, tt.claimAddr); err != nil {
							t.Fatalf("claim of a live phrase %d: %v", i, err)
						}
					}
					for _, g := range tt.guesses {
						_, err := p.Claim(ctx, g[0], g[1], "not a phrase", g[2])
						wantKind(t, err, fault.NotFound, "unknown or expired pairing phrase")
						now = now.Add(time.Minute)
					}
					dev, err := p.Claim(ctx, "rp_1", "jan", phrase, tt.claimAddr)
					if !tt.refused {
						if err != nil || dev != "dev_1" {
							t.Fatalf("right phrase: %q %v", dev, err)
						}
						return
					}
					fe := wantKind(t, err, fault.ResourceExhausted, "too many unknown pairing phrases; try again in ")
					// The first wrong guess leaves the window an hour after it.
					if want := time.Hour - time.Duration(len(tt.guesses))*time.Minute; fe.RetryAfter != want {
						t.Fatalf("retry after %v, want %v", fe.RetryAfter, want)
					}
					now = now.Add(fe.RetryAfter)
					if dev, err := p.Claim(ctx, "rp_1", "jan", phrase, tt.claimAddr); err != nil || dev != "dev_1" {
						t.Fatalf("right phrase once the window rolled on: %q %v", dev, err)
					}
				})
			}
		})
	}
}

func repeat(n int, rp, user, addr string) [][3]string {
	out := make([][3]string, n)
	for i := range out {
		out[i] = [3]string{rp, user, addr}
	}
	return out
}

func wantKind(t *testing.T, err error, kind fault.Kind, contains string) *fault.Error {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok || fe.Kind != kind || !strings.Contains(fe.Message, contains) {
		t.Fatalf("got %v, want %v containing %q", err, kind, contains)
	}
	return fe
}
