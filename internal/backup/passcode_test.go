package backup

import (
	"testing"

	"github.com/pushauth/pushauth/internal/fault"
)

func TestCheckPasscode(t *testing.T) {
	s := &Service{cfg: DefaultConfig()}
	tests := []struct {
		in string
		ok bool
	}{
		{"4831", true}, {"90210", true}, {"123456789012", false}, {"0000", false}, {"1234", false}, {"4321", false},
		{"8901", false}, {"2109", false}, {"1212", false}, {"2580", false}, {"483", false}, {"48a1", false},
		{"", false}, {"4831482", true}, {"1234567890123", false}, {"٤٨٣١", false},
	}
	for _, tt := range tests {
		err := s.CheckPasscode(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("CheckPasscode(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
		if err != nil {
			if fe, ok := fault.As(err); !ok || fe.Field != "passcode" {
				t.Errorf("CheckPasscode(%q): %v does not name the field", tt.in, err)
			}
		}
	}
}

// FuzzCheckPasscode: only digit strings of the allowed length can pass, and
// every refusal names the passcode field.
func FuzzCheckPasscode(f *testing.F) {
	for _, s := range []string{"4831", "0000", "1234", "12a4", "", "99999999999999", "\x00\x00\x00\x00"} {
		f.Add(s)
	}
	s := &Service{cfg: DefaultConfig()}
	f.Fuzz(func(t *testing.T, in string) {
		err := s.CheckPasscode(in)
		if err == nil {
			if len(in) < 4 || len(in) > 12 {
				t.Fatalf("accepted %q of length %d", in, len(in))
			}
			for _, c := range in {
				if c < '0' || c > '9' {
					t.Fatalf("accepted non-digit passcode %q", in)
				}
			}
			return
		}
		if fe, ok := fault.As(err); !ok || fe.Kind != fault.InvalidArgument || fe.Field != "passcode" {
			t.Fatalf("refusal %v", err)
		}
	})
}
