package secret

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	s, err := New("pak")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Prefix, "pak_") || !strings.HasPrefix(s.Token, s.Prefix+".") {
		t.Fatalf("token %q, prefix %q", s.Token, s.Prefix)
	}
	prefix, random, err := Parse("pak", s.Token)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if prefix != s.Prefix {
		t.Errorf("prefix %q, want %q", prefix, s.Prefix)
	}
	if !Matches(random, s.Hash) {
		t.Error("the random part does not match its own hash")
	}
	if strings.Contains(string(s.Hash), random) || len(s.Hash) != 32 {
		t.Errorf("hash %x is not a SHA-256 of the random part", s.Hash)
	}
	if Kind(s.Token) != "pak" {
		t.Errorf("Kind = %q, want pak", Kind(s.Token))
	}
}

func TestUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s, err := New("pdc")
		if err != nil {
			t.Fatal(err)
		}
		if seen[s.Prefix] || seen[s.Token] {
			t.Fatalf("repeated secret %q", s.Token)
		}
		seen[s.Prefix], seen[s.Token] = true, true
	}
}

func TestParseRefuses(t *testing.T) {
	s, err := New("pak")
	if err != nil {
		t.Fatal(err)
	}
	_, random, _ := strings.Cut(s.Token, ".")
	tests := map[string]string{
		"wrong kind":          "pdc" + strings.TrimPrefix(s.Token, "pak"),
		"kind without _":      "pak" + strings.TrimPrefix(s.Token, "pak_"),
		"no dot":              strings.Replace(s.Token, ".", "", 1),
		"short random":        s.Token[:len(s.Token)-1],
		"long random":         s.Token + "A",
		"empty":               "",
		"only prefix":         s.Prefix,
		"huge prefix":         "pak_" + strings.Repeat("a", 80) + "." + random,
		"kind as a substring": "xpak_abc." + random,
	}
	for name, token := range tests {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Parse("pak", token); !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse(%q) = %v, want ErrMalformed", token, err)
			}
		})
	}
}

func TestTamperedRandom(t *testing.T) {
	s, err := New("pak")
	if err != nil {
		t.Fatal(err)
	}
	_, random, _ := strings.Cut(s.Token, ".")
	for i := range random {
		b := []byte(random)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		if Matches(string(b), s.Hash) {
			t.Fatalf("random with byte %d changed still matches", i)
		}
	}
	other, err := New("pak")
	if err != nil {
		t.Fatal(err)
	}
	if Matches(random, other.Hash) || Matches(random, nil) || Matches("", s.Hash) {
		t.Error("a random part matches a hash that is not its own")
	}
}

func TestKind(t *testing.T) {
	for token, want := range map[string]string{
		"pak_abc.def":      "pak",
		"pdc_x":            "pdc",
		"no-underscore":    "",
		"waytoolongkind_x": "",
		"_leading":         "",
		"":                 "",
	} {
		if got := Kind(token); got != want {
			t.Errorf("Kind(%q) = %q, want %q", token, got, want)
		}
	}
}

func TestNewIDSortsByTime(t *testing.T) {
	const base = int64(1_893_553_445_000) // 2030-01-02
	var ids []string
	for i := range 50 {
		// Several IDs per millisecond, and steps across byte boundaries.
		ms := base + int64(i/3)*257
		id := NewID("rp", ms)
		if !strings.HasPrefix(id, "rp_") || len(id) != len("rp_")+26 {
			t.Fatalf("NewID = %q, want rp_ and 26 characters", id)
		}
		ids = append(ids, id)
	}
	for i := 3; i < len(ids); i++ {
		if ids[i-3] >= ids[i] {
			t.Errorf("ID of a later millisecond %q does not sort after %q", ids[i], ids[i-3])
		}
	}
	// Same millisecond: the same first 45 of 48 time bits (9 characters), random tail.
	a, b := NewID("rp", base), NewID("rp", base)
	if a == b || a[:len("rp_")+9] != b[:len("rp_")+9] {
		t.Errorf("IDs of one millisecond %q, %q: want a shared time prefix and different tails", a, b)
	}
	// Sorting strings sorts by time across a wide range.
	var wide []string
	for _, ms := range []int64{0, 1, 255, 256, 65535, 1 << 32, base, 1<<48 - 1} {
		wide = append(wide, NewID("k", ms))
	}
	if !slices.IsSorted(wide) {
		t.Errorf("IDs over time are not sorted: %v", wide)
	}
}
