package registration

import (
	"strings"
	"testing"

	"github.com/pushauth/pushauth/internal/fault"
)

func TestParsePhone(t *testing.T) {
	eu := []string{"NL", "BE", "DE"}
	tests := []struct {
		in, region string
		allowed    []string
		want       string
		wantField  string
	}{
		{in: "06 12345678", region: "NL", want: "+31612345678"},
		{in: "06-1234 5678", region: "nl", want: "+31612345678"},
		{in: "+31 6 1234 5678", want: "+31612345678"},
		{in: "+31 6 1234 5678", region: "DE", allowed: eu, want: "+31612345678"},
		{in: "0031 6 12345678", want: "+31612345678"},
		{in: "0031 6 12345678", region: "NL", want: "+31612345678"},
		{in: "+32 470 12 34 56", allowed: eu, want: "+32470123456"},
		{in: "+1 201 555 0123", want: "+12015550123"},
		{in: "020 123 4567", region: "NL", wantField: "phone_number"}, // Amsterdam landline
		{in: "+32 470 12 34 56", allowed: []string{"NL"}, wantField: "phone_number"},
		{in: "06 12345678", wantField: "phone_number"}, // no country
		{in: "06 12345678", region: "XX", wantField: "default_region"},
		{in: "12", region: "NL", wantField: "phone_number"},
		{in: "hello", region: "NL", wantField: "phone_number"},
		{in: "   ", region: "NL", wantField: "phone_number"},
	}
	for _, tt := range tests {
		t.Run(tt.in+"/"+tt.region, func(t *testing.T) {
			got, err := ParsePhone(tt.in, tt.region, tt.allowed)
			if tt.wantField != "" {
				fe, ok := fault.As(err)
				if !ok || fe.Kind != fault.InvalidArgument || fe.Field != tt.wantField {
					t.Fatalf("got %+v, %v; want InvalidArgument on %s", got, err, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.E164 != tt.want {
				t.Fatalf("got %s, want %s", got.E164, tt.want)
			}
		})
	}
}

// FuzzParsePhone: any input either fails with InvalidArgument or yields an
// E.164 number that parses back to itself.
func FuzzParsePhone(f *testing.F) {
	for _, s := range []string{"06 12345678", "+31 6 1234 5678", "0031612345678", "+", "00", "+999999999999999", "０６１２３４５６７８", "06\x00123"} {
		f.Add(s, "NL")
	}
	f.Fuzz(func(t *testing.T, in, region string) {
		p, err := ParsePhone(in, region, nil)
		if err != nil {
			if fe, ok := fault.As(err); !ok || fe.Kind != fault.InvalidArgument {
				t.Fatalf("error is not InvalidArgument: %v", err)
			}
			return
		}
		if !strings.HasPrefix(p.E164, "+") || len(p.E164) > 16 {
			t.Fatalf("not E.164: %q", p.E164)
		}
		again, err := ParsePhone(p.E164, "", nil)
		if err != nil || again.E164 != p.E164 {
			t.Fatalf("E.164 %q does not parse back: %+v %v", p.E164, again, err)
		}
	})
}
