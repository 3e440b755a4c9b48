package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func master(b byte) []byte { return bytes.Repeat([]byte{b}, MasterSize) }

func b64(b byte) string { return base64.StdEncoding.EncodeToString(master(b)) }

func mustParse(t *testing.T, s string) *Keyring {
	t.Helper()
	k, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k, err := New(master(1))
	if err != nil {
		t.Fatal(err)
	}
	sealed := k.Seal("totp", []byte("otp_1"), []byte("secret"))
	got, err := k.Open("totp", []byte("otp_1"), sealed)
	if err != nil || string(got) != "secret" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := k.Open("backup", []byte("otp_1"), sealed); !errors.Is(err, ErrUnseal) {
		t.Fatalf("opened under another purpose: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := k.Open("totp", []byte("otp_1"), sealed); !errors.Is(err, ErrUnseal) {
		t.Fatalf("opened tampered data: %v", err)
	}
	other, _ := New(master(2))
	if _, err := other.Open("totp", nil, k.Seal("totp", nil, []byte("x"))); !errors.Is(err, ErrUnseal) {
		t.Fatal("opened under another key")
	}
	if bytes.Equal(k.Hash("a", "x"), k.Hash("b", "x")) || !k.Matches("a", "x", k.Hash("a", "x")) {
		t.Fatal("keyed hashes do not separate purposes")
	}
}

// TestSealBindsRow: a seal copied to another row does not open there, and
// the purpose/AAD boundary cannot be shifted.
func TestSealBindsRow(t *testing.T) {
	k := mustParse(t, "k1:"+b64(1))
	sealed := k.Seal("totp-seed", []byte("otp_1"), []byte("seed"))
	for _, tc := range []struct {
		purpose string
		aad     string
	}{{"totp-seed", "otp_2"}, {"totp-seed", ""}, {"totp-seedotp_1", ""}, {"totp-see", "dotp_1"}} {
		if _, err := k.Open(tc.purpose, []byte(tc.aad), sealed); !errors.Is(err, ErrUnseal) {
			t.Errorf("opened as (%q, %q): %v", tc.purpose, tc.aad, err)
		}
	}
	// Stripping the header does not turn it into a legacy seal.
	if _, err := k.Open("totp-seed", []byte("otp_1"), sealed[3+len("k1"):]); !errors.Is(err, ErrUnseal) {
		t.Errorf("header-less copy opened: %v", err)
	}
	// Renaming the key in the header does not open either.
	k2 := mustParse(t, "k2:"+b64(1))
	renamed := append([]byte{sealMagic, sealVersion, 2, 'k', '2'}, sealed[3+len("k1"):]...)
	if _, err := k2.Open("totp-seed", []byte("otp_1"), renamed); !errors.Is(err, ErrUnseal) {
		t.Errorf("seal with a renamed key id opened: %v", err)
	}
}

// legacySeal is Seal as it was before key ids and row binding: no header,
// purpose as the only associated data.
func legacySeal(t *testing.T, m []byte, purpose string, plaintext []byte) []byte {
	t.Helper()
	a, err := gcm(m, "pushauth seal v1")
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, a.NonceSize())
	_, _ = rand.Read(nonce)
	return a.Seal(nonce, nonce, plaintext, []byte(purpose))
}

func TestLegacySealsOpen(t *testing.T) {
	old := legacySeal(t, master(1), "backup-key-share", []byte("share"))
	// The same key, bare or given an id, and after a rotation.
	for i, setting := range []string{b64(1), "k0:" + b64(1), "old:" + b64(1), "k2:" + b64(2) + ",k1:" + b64(1)} {
		k := mustParse(t, setting)
		got, err := k.Open("backup-key-share", []byte("+31612345678"), old)
		if err != nil || string(got) != "share" {
			t.Errorf("setting %d: legacy Open = %q, %v", i, got, err)
		}
		if _, err := k.Open("totp-seed", nil, old); !errors.Is(err, ErrUnseal) {
			t.Errorf("setting %d: legacy seal opened under another purpose: %v", i, err)
		}
	}
	if _, err := mustParse(t, b64(2)).Open("backup-key-share", nil, old); !errors.Is(err, ErrUnseal) {
		t.Errorf("legacy seal opened under another key: %v", err)
	}
	// A legacy nonce that happens to look like a header (of a known or an
	// unknown key) still opens.
	a, err := gcm(master(1), "pushauth seal v1")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"k0", "zz"} {
		nonce := append([]byte{sealMagic, sealVersion, 2}, id...)
		nonce = append(nonce, make([]byte, a.NonceSize()-len(nonce))...)
		s := a.Seal(bytes.Clone(nonce), nonce, []byte("x"), []byte("p"))
		if got, err := mustParse(t, b64(1)).Open("p", nil, s); err != nil || string(got) != "x" {
			t.Fatalf("legacy seal with a nonce like a header of %s: %q, %v", id, got, err)
		}
	}
	// Legacy keyed hashes are unchanged: HMAC under the same subkey.
	k := mustParse(t, "k0:"+b64(1))
	h := k.Hash("sms-code", "v:123456")
	if !mustParse(t, "k9:"+b64(9)+","+b64(1)).Matches("sms-code", "v:123456", h) {
		t.Error("hash made before rotation does not match after")
	}
}

// TestRotation walks an operator's rotation: seal with k1, add k2 first,
// then drop k1.
func TestRotation(t *testing.T) {
	k1 := mustParse(t, "k1:"+b64(1))
	sealed := k1.Seal("totp-seed", []byte("otp_1"), []byte("seed"))
	verifier := k1.Hash("backup-passcode", "+31612345678:2468")
	phrase := k1.Hash("pairing-phrase", "apple tree")

	rotated := mustParse(t, "k2:"+b64(2)+",k1:"+b64(1))
	if got, err := rotated.Open("totp-seed", []byte("otp_1"), sealed); err != nil || string(got) != "seed" {
		t.Fatalf("after rotation, old seal: %q, %v", got, err)
	}
	if !rotated.Matches("backup-passcode", "+31612345678:2468", verifier) {
		t.Fatal("after rotation, old verifier does not match")
	}
	if rotated.Matches("backup-passcode", "+31612345678:1357", verifier) {
		t.Fatal("after rotation, a wrong passcode matches")
	}
	if hs := rotated.Hashes("pairing-phrase", "apple tree"); len(hs) != 2 || !bytes.Equal(hs[1], phrase) || bytes.Equal(hs[0], phrase) {
		t.Fatal("Hashes does not give the new key's hash first and the old key's after")
	}

	// New data uses k2: k2 alone opens and matches it, k1 alone does not.
	fresh := rotated.Seal("totp-seed", []byte("otp_2"), []byte("seed2"))
	if !bytes.HasPrefix(fresh, []byte{sealMagic, sealVersion, 2, 'k', '2'}) {
		t.Fatalf("new seal does not name k2: % x", fresh[:5])
	}
	k2 := mustParse(t, "k2:"+b64(2))
	if got, err := k2.Open("totp-seed", []byte("otp_2"), fresh); err != nil || string(got) != "seed2" {
		t.Fatalf("k2 alone: %q, %v", got, err)
	}
	if _, err := k1.Open("totp-seed", []byte("otp_2"), fresh); !errors.Is(err, ErrUnseal) || !strings.Contains(err.Error(), `"k2"`) {
		t.Fatalf("k1 alone opening k2's seal: %v", err)
	}
	if !bytes.Equal(rotated.Hash("x", "v"), k2.Hash("x", "v")) {
		t.Fatal("new hashes are not made with k2")
	}

	// Dropping k1: its seals fail, naming the missing key; its hashes no
	// longer match.
	_, err := k2.Open("totp-seed", []byte("otp_1"), sealed)
	if !errors.Is(err, ErrUnseal) || !strings.Contains(err.Error(), `key id "k1"`) {
		t.Fatalf("k1's seal after dropping k1: %v", err)
	}
	if k2.Matches("backup-passcode", "+31612345678:2468", verifier) {
		t.Fatal("k1's verifier matches without k1")
	}
}

func TestParseKeys(t *testing.T) {
	keys, err := ParseKeys(" k2:" + b64(2) + " , k1:" + base64.RawURLEncoding.EncodeToString(master(1)) + ",")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != "k2" || keys[1].ID != "k1" || !bytes.Equal(keys[1].Master, master(1)) {
		t.Fatalf("keys = %+v", keys)
	}
	if keys, err := ParseKeys(b64(1)); err != nil || len(keys) != 1 || keys[0].ID != DefaultID {
		t.Fatalf("bare key: %+v, %v", keys, err)
	}

	secret := base64.StdEncoding.EncodeToString([]byte("sixteen byte key"))
	_, err = ParseKeys("bad id:" + b64(1) + ",k1:not base64!,k2:" + secret + ",k3:" + b64(3) + ",k3:" + b64(4) + "," + b64(5) + "," + b64(6))
	if err == nil {
		t.Fatal("want errors")
	}
	msg := err.Error()
	for _, want := range []string{
		"key 1: the id before ':' must be",
		"key 2 (k1): not base64",
		"key 3 (k2): must decode to 32 bytes, got 16",
		`key 5: id "k3" is used twice`,
		`key 7: id "k0" is used twice (a key without an id gets id k0)`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n != 5 {
		t.Errorf("want 5 lines, got %d:\n%s", n, msg)
	}
	if strings.Contains(msg, secret) || strings.Contains(msg, b64(1)) {
		t.Error("key material in the error")
	}
	if _, err := ParseKeys(" , "); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Errorf("empty setting: %v", err)
	}
}

func TestParseMaster(t *testing.T) {
	if _, err := ParseMaster("AAAA"); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := ParseMaster("not base64!"); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestHas(t *testing.T) {
	k := mustParse(t, "k2:"+b64(2)+",k1:"+b64(1))
	if !k.Has(master(1)) || k.Has(master(3)) {
		t.Fatal("Has")
	}
	if got := strings.Join(k.IDs(), ","); got != "k2,k1" {
		t.Fatalf("IDs = %s", got)
	}
}

// TestReseal: what an older key or the legacy format sealed comes out
// sealed under the first key, bound to the same purpose and row, and opens
// once the older key is dropped; a current seal is left as it is.
func TestReseal(t *testing.T) {
	k1 := mustParse(t, "k1:"+b64(1))
	rotated := mustParse(t, "k2:"+b64(2)+",k1:"+b64(1))
	k2 := mustParse(t, "k2:"+b64(2))
	for name, old := range map[string][]byte{
		"older key": k1.Seal("totp-seed", []byte("otp_1"), []byte("seed")),
		"legacy":    legacySeal(t, master(1), "totp-seed", []byte("seed")),
	} {
		next, current, err := rotated.Reseal("totp-seed", []byte("otp_1"), old)
		if err != nil || current {
			t.Fatalf("%s: Reseal = current %v, %v", name, current, err)
		}
		if got, err := k2.Open("totp-seed", []byte("otp_1"), next); err != nil || string(got) != "seed" {
			t.Fatalf("%s: re-sealed value under k2 alone: %q, %v", name, got, err)
		}
		if _, err := k2.Open("totp-seed", []byte("otp_2"), next); !errors.Is(err, ErrUnseal) {
			t.Fatalf("%s: re-sealed value opens in another row: %v", name, err)
		}
		again, current, err := rotated.Reseal("totp-seed", []byte("otp_1"), next)
		if err != nil || !current || !bytes.Equal(again, next) {
			t.Fatalf("%s: second Reseal = current %v, changed %v, %v", name, current, !bytes.Equal(again, next), err)
		}
	}
	// A value sealed under a key the ring lacks, or for another row, is
	// not re-sealed.
	if _, _, err := k2.Reseal("totp-seed", []byte("otp_1"), k1.Seal("totp-seed", []byte("otp_1"), []byte("s"))); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Reseal without the sealing key: %v", err)
	}
	if _, _, err := rotated.Reseal("totp-seed", []byte("otp_9"), k1.Seal("totp-seed", []byte("otp_1"), []byte("s"))); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Reseal for another row: %v", err)
	}
}
