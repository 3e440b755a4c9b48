package push

import (
	"errors"
	"net/http"
	"strings"

	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"github.com/sideshow/apns2"
)

// Reason says why a push did not go out, in terms a relying party can act
// on. It is what the domain stores and what login servers see: the
// provider's own text (which may quote tokens, project names or anything
// else) stays in the server's log. This file is the one place provider
// errors are mapped to reasons.
type Reason string

// Reasons, spelled as the proto's DeliveryFailureReason without its prefix.
const (
	ReasonUnspecified         Reason = ""
	ReasonTokenInvalid        Reason = "TOKEN_INVALID"
	ReasonProviderUnavailable Reason = "PROVIDER_UNAVAILABLE"
	ReasonRateLimited         Reason = "RATE_LIMITED"
	ReasonRejected            Reason = "REJECTED"
	ReasonNotConfigured       Reason = "NOT_CONFIGURED"
	ReasonQueueFailed         Reason = "QUEUE_FAILED"
	ReasonMuted               Reason = "MUTED"
)

// messages are the fixed sentences shown for each reason.
var messages = map[Reason]string{
	ReasonTokenInvalid:        "the push token is dead or invalid; the app sees the request when opened",
	ReasonProviderUnavailable: "the push service is unavailable; the app sees the request when opened",
	ReasonRateLimited:         "the push service asked to slow down; the app sees the request when opened",
	ReasonRejected:            "the push service refused the push; the app sees the request when opened",
	ReasonNotConfigured:       "push is not configured for this phone's platform; the app sees the request when opened",
	ReasonQueueFailed:         "the push could not be queued; the app sees the request when opened",
	ReasonMuted:               "pushes muted after a fraud report; the app still lists the request",
}

// Message is the fixed, safe sentence for r.
func (r Reason) Message() string {
	if m, ok := messages[r]; ok {
		return m
	}
	return "the push could not be delivered; the app sees the request when opened"
}

// Detail is how a delivery detail records r: the code, then the fixed
// sentence, e.g. "TOKEN_INVALID: the push token is no longer valid; …".
func (r Reason) Detail() string {
	if r == ReasonUnspecified {
		return r.Message()
	}
	return string(r) + ": " + r.Message()
}

// ParseDetail returns the Reason a delivery detail records, and
// ReasonUnspecified for anything else (e.g. details stored by older
// versions, which may hold provider text and must not be shown).
func ParseDetail(detail string) Reason {
	code, _, _ := strings.Cut(detail, ":")
	if _, ok := messages[Reason(code)]; ok {
		return Reason(code)
	}
	return ReasonUnspecified
}

// ReasonOf classifies an error from a Sender.
func ReasonOf(err error) Reason {
	var re *reasonError
	switch {
	case err == nil:
		return ReasonUnspecified
	case errors.As(err, &re):
		return re.reason
	case errors.Is(err, ErrTokenDead):
		return ReasonTokenInvalid
	case errors.Is(err, ErrNoSender):
		return ReasonNotConfigured
	case IsTemporary(err):
		return ReasonProviderUnavailable
	}
	return ReasonRejected
}

// reasonError attaches a Reason to a sender's error without changing its
// text or what it wraps.
type reasonError struct {
	reason Reason
	err    error
}

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

// withReason wraps classified (the error Send returns) with reason.
func withReason(reason Reason, classified error) error {
	if classified == nil {
		return nil
	}
	return &reasonError{reason: reason, err: classified}
}

// fcmReason maps an error of the FCM SDK.
func fcmReason(err error, tokenDead bool) Reason {
	switch {
	case tokenDead:
		return ReasonTokenInvalid
	case messaging.IsQuotaExceeded(err), errorutils.IsResourceExhausted(err):
		return ReasonRateLimited
	case messaging.IsSenderIDMismatch(err), messaging.IsThirdPartyAuthError(err),
		errorutils.IsUnauthenticated(err), errorutils.IsPermissionDenied(err):
		return ReasonNotConfigured
	case messaging.IsUnavailable(err), messaging.IsInternal(err), errorutils.IsUnavailable(err),
		errorutils.IsInternal(err), errorutils.IsDeadlineExceeded(err),
		errorutils.HTTPResponse(err) == nil && errorutils.IsUnknown(err):
		return ReasonProviderUnavailable
	}
	return ReasonRejected
}

// apnsReason maps an APNs response that was not a success.
func apnsReason(status int, reason string) Reason {
	switch {
	case status == http.StatusGone, reason == apns2.ReasonBadDeviceToken,
		reason == apns2.ReasonUnregistered, reason == apns2.ReasonExpiredToken:
		return ReasonTokenInvalid
	case status == http.StatusTooManyRequests:
		return ReasonRateLimited
	case status == http.StatusForbidden, reason == apns2.ReasonBadTopic,
		reason == apns2.ReasonTopicDisallowed, reason == apns2.ReasonMissingTopic:
		return ReasonNotConfigured
	case status >= 500, reason == apns2.ReasonIdleTimeout, reason == apns2.ReasonShutdown:
		return ReasonProviderUnavailable
	}
	return ReasonRejected
}
