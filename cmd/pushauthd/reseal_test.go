package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/keyring/keyringtest"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/sqlstore"
	"github.com/pushauth/pushauth/internal/totp"
)

// TestResealSubcommand walks the operator's rotation: data under k1, the
// new key k2 put first, pushauthd reseal, then k1 dropped.
func TestResealSubcommand(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		key := func(id string) string { return keyringtest.Setting(id) }
		getenv, environ := env(nil)
		cmd := func(setting string, args ...string) (int, string, string) {
			var stdout, stderr bytes.Buffer
			args = append(args, "--database-url", url, "--secret-key", setting, "--data-dir", t.TempDir())
			code := run(context.Background(), args, getenv, environ, &stdout, &stderr, nil)
			return code, stdout.String(), stderr.String()
		}
		if code, _, errs := cmd(key("k1"), "reseal"); code != 1 || !strings.Contains(errs, "migrate up") {
			t.Fatalf("reseal before migrating: exit %d, %s", code, errs)
		}
		if code, _, errs := cmd(key("k1"), "migrate", "up"); code != 0 {
			t.Fatalf("migrate up: %s", errs)
		}
		st, err := sqlstore.Open(t.Context(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		k1 := keyringtest.Ring(t, "k1")
		addFactor := func(id string, k *keyring.Keyring) {
			t.Helper()
			if err := st.CreateTOTPFactor(t.Context(), store.TOTPFactor{ID: id, RelyingPartyID: "rp-1", UserRef: "alice",
				Kind: store.TOTPKindApp, Label: "app", Status: store.TOTPActive, CreatedAt: time.Now(),
				SealedSecret: k.Seal(totp.SealPurpose, []byte(id), []byte("seed"))}); err != nil {
				t.Fatal(err)
			}
		}
		addFactor("otp_1", k1)
		addFactor("otp_2", k1)

		code, out, errs := cmd(key("k2")+","+key("k1"), "reseal")
		if code != 0 || !strings.Contains(out, "TOTP seeds: 2 checked, 2 re-sealed") || !strings.Contains(errs, "re-sealing under key k2") {
			t.Fatalf("reseal: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}
		code, out, errs = cmd(key("k2"), "reseal")
		if code != 0 || !strings.Contains(out, "TOTP seeds: 2 checked, 0 re-sealed, 2 already current") {
			t.Fatalf("reseal with k1 dropped: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}

		k9 := keyringtest.Ring(t, "k9")
		addFactor("otp_3", k9)
		code, out, errs = cmd(key("k2"), "reseal")
		if code != 1 || !strings.Contains(out, "1 failed") || !strings.Contains(errs, `key id \"k9\"`) || !strings.Contains(errs, "keep those keys") {
			t.Fatalf("reseal with a value under a missing key: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}
	})
}
