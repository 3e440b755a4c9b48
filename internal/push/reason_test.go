package push

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// oddProviderText is provider error text that must never reach a relying
// party: a JSON-escaped line break, markup and an internal project name.
const oddProviderText = `Project proj-internal-7\n<b>quota</b> exceeded for`

// checkReason asserts that err maps to want, and that what a relying party
// would be shown of it (Detail, and Message after ParseDetail) is the fixed
// sentence, whatever the provider wrote.
func checkReason(t *testing.T, err error, want Reason) {
	t.Helper()
	got := ReasonOf(err)
	if got != want {
		t.Errorf("ReasonOf(%v) = %q, want %q", err, got, want)
	}
	d := got.Detail()
	if back := ParseDetail(d); back != got {
		t.Errorf("ParseDetail(%q) = %q, want %q", d, back, got)
	}
	if msg := ParseDetail(d).Message(); msg != messages[want] || strings.ContainsAny(msg, "\n<>") {
		t.Errorf("message %q, want the fixed sentence for %q", msg, want)
	}
	for _, leak := range []string{"proj-internal", "quota", "<b>", "tok-", "fcm", "apns", "status"} {
		if strings.Contains(d, leak) {
			t.Errorf("detail %q holds provider text %q", d, leak)
		}
	}
}

func TestReasonOfGenericErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Reason
	}{
		{nil, ReasonUnspecified},
		{fmt.Errorf("%w: fcm: gone", ErrTokenDead), ReasonTokenInvalid},
		{fmt.Errorf("%w: platform %q", ErrNoSender, "IOS"), ReasonNotConfigured},
		{temporary(errors.New("connection reset"), 0), ReasonProviderUnavailable},
		{errors.New("something else"), ReasonRejected},
		{fmt.Errorf("push: giving up after 3 attempts: %w", withReason(ReasonRateLimited, temporary(errors.New("429"), 0))), ReasonRateLimited},
	} {
		if got := ReasonOf(tc.err); got != tc.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestParseDetailIgnoresOtherText(t *testing.T) {
	for _, d := range []string{"", "push failed: push: fcm: " + oddProviderText, "the push token is dead: x", "REJECTED_NOT: x"} {
		if r := ParseDetail(d); r != ReasonUnspecified {
			t.Errorf("ParseDetail(%q) = %q, want unspecified", d, r)
		}
	}
	if r := ParseDetail(ReasonQueueFailed.Detail()); r != ReasonQueueFailed {
		t.Errorf("ParseDetail(QUEUE_FAILED detail) = %q", r)
	}
}

func TestLogErrShortensToken(t *testing.T) {
	const tok = "aabbccddeeff00112233445566778899"
	got := logErr(errors.New("provider says: bad token "+tok), tok)
	if strings.Contains(got, tok) || !strings.Contains(got, redactToken(tok)) {
		t.Errorf("logErr = %q", got)
	}
}
