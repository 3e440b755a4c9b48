package approval

import (
	"strings"
	"testing"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/store"
)

func TestSingleLine(t *testing.T) {
	for _, s := range []string{"", "Utrecht, NL", "Zürich – CH ✍", "Firefox op Windows 11 (x64)"} {
		if !SingleLine(s) {
			t.Errorf("SingleLine(%q) = false", s)
		}
	}
	for _, s := range []string{"a\nb", "a\rb", "a\x00b", "a\tb", "a\x7fb", "a\u0085b", "a\u009fb", "a\u2028b", "a\u2029b"} {
		if SingleLine(s) {
			t.Errorf("SingleLine(%q) = true", s)
		}
	}
}

// wantInvalid asserts err is InvalidArgument naming field.
func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	fe, ok := fault.As(err)
	if !ok || fe.Kind != fault.InvalidArgument || fe.Field != field {
		t.Fatalf("got %v, want InvalidArgument naming %s", err, field)
	}
}

// The domain refuses what the protos refuse, whoever calls it.
func TestDomainChecks(t *testing.T) {
	wantInvalid(t, checkContext(store.RequestContext{Location: "Utrecht\u2028decision=APPROVE"}), "context.location")
	wantInvalid(t, checkContext(store.RequestContext{AppName: "a\nb"}), "context.app_name")
	wantInvalid(t, checkSingleLine("user_ref", "ok", "account_label", "jan\u0085"), "account_label")
	if err := checkContext(store.RequestContext{AppName: "Mijn Portal", IPAddress: "2001:db8::1", Location: "Zürich"}); err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, checkRuleID(Response{AutoApproved: true, LocationRuleID: "x\ndecision=APPROVED"}), "location_rule_id")
	wantInvalid(t, checkRuleID(Response{AutoApproved: true, LocationRuleID: strings.Repeat("a", 65)}), "location_rule_id")
	wantInvalid(t, checkRuleID(Response{LocationRuleID: "home"}), "location_rule_id")
	for _, r := range []Response{{}, {AutoApproved: true}, {AutoApproved: true, LocationRuleID: "home-1_A"}} {
		if err := checkRuleID(r); err != nil {
			t.Errorf("checkRuleID(%+v) = %v", r, err)
		}
	}
}
