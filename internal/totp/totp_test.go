package totp

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"

	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/store"
)

func testService(t testing.TB, now time.Time) (*Service, store.TOTPFactor, string) {
	t.Helper()
	keys, err := keyring.New(bytes.Repeat([]byte{7}, keyring.MasterSize))
	if err != nil {
		t.Fatal(err)
	}
	s := New(DefaultConfig(), nil, keys, func() time.Time { return now }, nil)
	key, err := s.newSeed("Mijn Portal", "jan")
	if err != nil {
		t.Fatal(err)
	}
	f := store.TOTPFactor{ID: "otp_1", SealedSecret: keys.Seal(SealPurpose, []byte("otp_1"), []byte(key.Secret()))}
	return s, f, key.Secret()
}

func TestMatchWindow(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s, f, sec := testService(t, now)
	step := now.Unix() / 30
	for _, off := range []int64{-2, -1, 0, 1, 2} {
		code, err := ptotp.GenerateCodeCustom(sec, time.Unix((step+off)*30, 0), ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.match(f, code)
		if err != nil {
			t.Fatal(err)
		}
		want := off >= -1 && off <= 1
		if ok != want || (ok && got != step+off) {
			t.Errorf("offset %d: ok=%v step=%d", off, ok, got)
		}
	}
}

// FuzzMatch: arbitrary input never panics and is accepted only if it is the
// 6-digit code of a step within the window.
func FuzzMatch(f *testing.F) {
	for _, s := range []string{"123456", "", "12345", "1234567", "abcdef", "٠١٢٣٤٥", "000000\x00"} {
		f.Add(s)
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s, factor, _ := testService(f, now)
	f.Fuzz(func(t *testing.T, code string) {
		_, ok, err := s.match(factor, code)
		if err != nil {
			t.Fatal(err)
		}
		if ok && len(code) != 6 {
			t.Fatalf("accepted %q", code)
		}
	})
}

// TestSeedBoundToFactor: a sealed seed copied into another factor's row
// does not open there, so a database writer cannot graft a known seed onto
// someone else's factor.
func TestSeedBoundToFactor(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s, f, sec := testService(t, now)
	code, err := ptotp.GenerateCodeCustom(sec, now, ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.match(f, code); !ok || err != nil {
		t.Fatalf("own row: ok=%v err=%v", ok, err)
	}
	copied := f
	copied.ID = "otp_2"
	if _, ok, err := s.match(copied, code); ok || !errors.Is(err, keyring.ErrUnseal) {
		t.Fatalf("seed copied to another factor: ok=%v err=%v", ok, err)
	}
}
