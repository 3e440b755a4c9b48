package pii

import "testing"

func TestMaskPhone(t *testing.T) {
	for in, want := range map[string]string{
		"+31612345678":   "+31*******78",
		"+4915112345678": "+49*********78",
		"+3161":          "***",
		"":               "***",
	} {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}
