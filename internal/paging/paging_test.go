package paging

import (
	"encoding/base64"
	"testing"

	"github.com/pushauth/pushauth/internal/fault"
)

func TestRoundTrip(t *testing.T) {
	for _, pos := range []string{"rp_06we16r153npw0ebxtj06jg90m", "12345", "with:colon", "ü"} {
		tok := Encode("rp", pos)
		got, err := Decode("rp", tok)
		if err != nil || got != pos {
			t.Errorf("Decode(Encode(%q)) = %q, %v", pos, got, err)
		}
	}
	if got, err := Decode("rp", ""); got != "" || err != nil {
		t.Errorf(`Decode("") = %q, %v; want the first page`, got, err)
	}
}

func TestRefused(t *testing.T) {
	tests := map[string]string{
		"foreign list":      Encode("audit", "17"),
		"list prefix only":  Encode("rpx", "17"),
		"empty position":    Encode("rp", ""),
		"not base64":        "%%%",
		"padded base64":     base64.URLEncoding.EncodeToString([]byte("rp:abcd")), // "=" padded,
		"no list":           base64.RawURLEncoding.EncodeToString([]byte("abc")),
		"raw position text": "rp:abc",
	}
	for name, tok := range tests {
		t.Run(name, func(t *testing.T) {
			pos, err := Decode("rp", tok)
			fe, ok := fault.As(err)
			if !ok || fe.Kind != fault.InvalidArgument || fe.Field != "page_token" {
				t.Fatalf("Decode(%q) = %q, %v; want InvalidArgument on page_token", tok, pos, err)
			}
			if pos != "" {
				t.Errorf("refused token still gave position %q", pos)
			}
		})
	}
}

func TestSize(t *testing.T) {
	tests := []struct {
		requested, def, max int32
		want                int
	}{
		{0, 50, 500, 50},
		{-3, 50, 500, 50},
		{1, 50, 500, 1},
		{500, 50, 500, 500},
		{501, 50, 500, 500},
	}
	for _, tt := range tests {
		if got := Size(tt.requested, tt.def, tt.max); got != tt.want {
			t.Errorf("Size(%d, %d, %d) = %d, want %d", tt.requested, tt.def, tt.max, got, tt.want)
		}
	}
}
