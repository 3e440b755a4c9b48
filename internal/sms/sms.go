// Package sms sends the verification SMS (a 6-digit code and a link) through
// an HTTP provider. Everything here assumes the body is a secret and the
// number is personal data: neither ever appears in an error string or a log
// value produced by this package.
package sms

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/pii"
)

// Message is one SMS.
type Message struct {
	To   string // E.164, e.g. "+31612345678"
	Body string
}

// String masks the number and hides the body, so printing a Message with %v
// by mistake leaks neither.
func (m Message) String() string {
	return "sms to " + pii.MaskPhone(m.To) + " (" + strconv.Itoa(len(m.Body)) + " bytes)"
}

// LogValue keeps the code out of logs when a Message is passed to slog.
func (m Message) LogValue() slog.Value {
	return slog.GroupValue(slog.String("phone", pii.MaskPhone(m.To)), slog.Int("body_len", len(m.Body)))
}

// Sender sends an SMS through one provider.
type Sender interface {
	// Send hands m to the provider and returns the provider's message id.
	// Errors are *Error (possibly wrapped); see IsTemporary.
	Send(ctx context.Context, m Message) (providerMessageID string, err error)
	// Name names the provider for logs, metrics and audit ("twilio").
	Name() string
}

// Error is a failed send. Message is the provider's explanation with the
// number, the body and the credentials removed, so the whole Error is safe to
// log and to store in the audit log.
type Error struct {
	Provider   string
	Status     int    // HTTP status; 0 when no response arrived
	Code       string // the provider's error code, or one of ours ("network", "invalid_recipient", ...)
	Message    string
	Temporary  bool          // retrying later may succeed
	RetryAfter time.Duration // the provider's Retry-After, 0 if none

	cause error // for errors.Is(err, context.Canceled) and the like
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("sms ")
	b.WriteString(e.Provider)
	b.WriteString(":")
	if e.Status != 0 {
		b.WriteString(" HTTP ")
		b.WriteString(strconv.Itoa(e.Status))
	}
	if e.Code != "" {
		b.WriteString(" code ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Temporary {
		b.WriteString(" (temporary")
		if e.RetryAfter > 0 {
			b.WriteString(", retry after ")
			b.WriteString(e.RetryAfter.String())
		}
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the underlying cause (a network or context error), if any.
// It never carries the request URL, body or credentials.
func (e *Error) Unwrap() error { return e.cause }

// IsTemporary reports whether sending again later may succeed: network
// errors, timeouts, HTTP 5xx, 408 and 429. Other 4xx (a bad number, bad
// credentials) are permanent, and so is a cancelled context.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Temporary
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	_, ok := errors.AsType[net.Error](err)
	return ok
}

// temporaryStatus is the HTTP classification shared by all providers.
func temporaryStatus(status int) bool {
	return status >= 500 || status == 429 || status == 408
}

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// validE164 checks the number before it leaves the process, so a malformed
// number costs no provider call and cannot be a form-injection vector.
func validE164(s string) bool { return e164.MatchString(s) }

// checkMessage is the validation every provider does first.
func checkMessage(provider string, m Message) error {
	if !validE164(m.To) {
		return &Error{Provider: provider, Code: "invalid_recipient", Message: "recipient " + pii.MaskPhone(m.To) + " is not an E.164 number"}
	}
	if strings.TrimSpace(m.Body) == "" {
		return &Error{Provider: provider, Code: "empty_body", Message: "message body is empty"}
	}
	return nil
}

// digitRun matches anything that could be a phone number or a code: six or
// more digits, possibly separated by spaces, dashes or brackets. (Not dots, so
// IP addresses in network errors survive.)
var digitRun = regexp.MustCompile(`\+?[0-9](?:[ ()\-]*[0-9]){5,}`)

// maxErrorMessage bounds provider text kept in an Error.
const maxErrorMessage = 300

// scrub removes from provider text (which may echo the request) the number,
// the body, the credentials and anything else that looks like a number or a
// code, and keeps it to one short line.
func scrub(s string, m Message, secrets ...string) string {
	if s == "" {
		return ""
	}
	var pairs []string
	if b := strings.TrimSpace(m.Body); b != "" {
		pairs = append(pairs, b, "[body]")
	}
	for _, sec := range secrets {
		if sec != "" {
			pairs = append(pairs, sec, "[redacted]")
		}
	}
	if m.To != "" {
		masked := pii.MaskPhone(m.To)
		pairs = append(pairs, m.To, masked)
		if d := strings.TrimPrefix(m.To, "+"); d != "" {
			pairs = append(pairs, d, masked)
		}
	}
	if len(pairs) > 0 {
		s = strings.NewReplacer(pairs...).Replace(s)
	}
	s = digitRun.ReplaceAllString(s, "[number]")
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > maxErrorMessage {
		s = string(r[:maxErrorMessage]) + "..."
	}
	return s
}
