package keyring

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	k, err := New(bytes.Repeat([]byte{1}, MasterSize))
	if err != nil {
		t.Fatal(err)
	}
	sealed := k.Seal("totp", []byte("secret"))
	got, err := k.Open("totp", sealed)
	if err != nil || string(got) != "secret" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := k.Open("backup", sealed); !errors.Is(err, ErrUnseal) {
		t.Fatalf("opened under another purpose: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := k.Open("totp", sealed); !errors.Is(err, ErrUnseal) {
		t.Fatalf("opened tampered data: %v", err)
	}
	other, _ := New(bytes.Repeat([]byte{2}, MasterSize))
	if _, err := other.Open("totp", k.Seal("totp", []byte("x"))); !errors.Is(err, ErrUnseal) {
		t.Fatal("opened under another key")
	}
	if bytes.Equal(k.Hash("a", "x"), k.Hash("b", "x")) || !k.Matches("a", "x", k.Hash("a", "x")) {
		t.Fatal("keyed hashes do not separate purposes")
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
