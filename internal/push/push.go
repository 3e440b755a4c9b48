// Package push delivers "you have a request" notifications to phones.
//
// A login or pairing request enqueues one Job per target device on a
// JetStream work queue (Queue); workers in every replica take jobs and hand
// them to a Sender: FCM (Android, and iOS apps that use FCM), APNs (iOS
// direct) or, in development, a LogSender, chosen per job by a Router.
//
// A push carries only the request id, the kind and a localised alert naming
// the relying party, never the user or the request's context: the app
// fetches the details over its authenticated channel, so nothing sensitive
// passes through Google or Apple.
//
// Senders classify failures so the queue knows what to do: ErrTokenDead (the
// token will never work again: mark it dead), TemporaryError (retry with
// backoff until the request expires) or any other error (give up on this job).
package push

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/tracing"
)

// Platforms and kinds, spelled as the domain and the JSON jobs spell them.
const (
	PlatformAndroid = "ANDROID"
	PlatformIOS     = "IOS"

	KindLogin   = "LOGIN"
	KindPairing = "PAIRING"
)

// Keys of the data the app receives with a push. They are the whole custom
// payload: the app looks the request up by id.
const (
	DataRequestID = "request_id"
	DataKind      = "kind"
	// DataTraceparent is sent only while tracing: the W3C traceparent of
	// the send, for the app to send back (as gRPC metadata or an HTTP
	// header) with its calls about the request. It holds random ids only.
	DataTraceparent = "traceparent"
)

// Job is one push to one device. It is the message body on the work queue,
// so it holds everything a worker in any replica needs without a database
// read.
type Job struct {
	RequestID string `json:"request_id"`
	DeviceID  string `json:"device_id"`
	Platform  string `json:"platform"` // PlatformAndroid or PlatformIOS
	PushToken string `json:"push_token"`
	Kind      string `json:"kind"`   // KindLogin or KindPairing
	Locale    string `json:"locale"` // BCP 47, e.g. "nl-NL"; picks the alert language
	// RelyingParty is the relying party's display name, named in the alert.
	RelyingParty string    `json:"relying_party,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
	// Trace is the W3C trace context (traceparent, tracestate) of whoever
	// made the job, set only while tracing: in the push outbox it carries
	// the creating call's trace across the commit; on the queue it travels
	// in the message headers instead; a sender gets its client span's, and
	// FCM and APNs put its traceparent in the push data (DataTraceparent)
	// so the app can continue the trace in its answer.
	Trace tracing.Stored `json:"trace,omitzero"`
}

// ID is the job's identity, "<request id>:<device id>": one push per request
// and device. The queue de-duplicates on it.
func (j Job) ID() string { return j.RequestID + ":" + j.DeviceID }

// Validate reports the first missing or unknown field, so a bad job fails at
// Enqueue rather than in a worker.
func (j Job) Validate() error {
	switch {
	case j.RequestID == "":
		return errors.New("push: job: request id is empty")
	case j.DeviceID == "":
		return errors.New("push: job: device id is empty")
	case j.PushToken == "":
		return errors.New("push: job: push token is empty")
	case j.Platform != PlatformAndroid && j.Platform != PlatformIOS:
		return fmt.Errorf("push: job: unknown platform %q", j.Platform)
	case j.Kind != KindLogin && j.Kind != KindPairing:
		return fmt.Errorf("push: job: unknown kind %q", j.Kind)
	case j.ExpiresAt.IsZero():
		return errors.New("push: job: expiry is not set")
	}
	return nil
}

// Notification is a Job with the text shown to the user.
type Notification struct {
	Job
	Title, Body string
}

// NewNotification adds the localised alert for j's kind, locale and
// relying party.
func NewNotification(j Job) Notification {
	title, body := Alert(j.Kind, j.Locale, j.RelyingParty)
	return Notification{Job: j, Title: title, Body: body}
}

// alerts are the lock-screen texts by language and kind: a title, and a
// body with and without the relying party's name. The Dutch follows the
// wording users know from the customer manual ("verzoek om goedkeuring",
// "goedkeuren", "account verbinden").
var alerts = map[string]map[string][3]string{
	"en": {
		KindLogin:   {"Login request", "%s asks you to approve a login. Open the app to approve or deny it.", "Open the app to approve or deny it."},
		KindPairing: {"Connect account", "%s asks to connect your account. Open the app to approve or deny it.", "Open the app to approve or deny it."},
	},
	"nl": {
		KindLogin:   {"Verzoek om goedkeuring", "%s vraagt je goedkeuring om in te loggen. Open de app om het verzoek goed te keuren of af te wijzen.", "Open de app om het verzoek goed te keuren of af te wijzen."},
		KindPairing: {"Account verbinden", "%s vraagt om je account te verbinden. Open de app om het verzoek goed te keuren of af te wijzen.", "Open de app om het verzoek goed te keuren of af te wijzen."},
	},
}

// AlertLanguages lists the languages alerts are written in; any other
// locale gets English.
func AlertLanguages() []string { return []string{"en", "nl"} }

// Alert returns the lock-screen text for a kind in a locale (Dutch for
// "nl…", English otherwise), naming the relying party by its display name
// when it is known. It never names the user, the account or anything of
// the login's context, since lock screens and push providers can read it.
func Alert(kind, locale, relyingParty string) (title, body string) {
	texts, ok := alerts[lang(locale)]
	if !ok {
		texts = alerts["en"]
	}
	t, ok := texts[kind]
	if !ok {
		t = texts[KindLogin]
	}
	if relyingParty == "" {
		return t[0], t[2]
	}
	return t[0], fmt.Sprintf(t[1], relyingParty)
}

func lang(locale string) string {
	l, _, _ := strings.Cut(strings.ReplaceAll(strings.TrimSpace(locale), "_", "-"), "-")
	return strings.ToLower(l)
}

// Sender delivers one push. Its error says what the queue should do; see
// ErrTokenDead and TemporaryError. Implementations are safe for concurrent
// use.
type Sender interface {
	Send(ctx context.Context, j Job) error
	// Name identifies the provider in logs and metrics ("fcm", "apns", "log").
	Name() string
}

var (
	// ErrTokenDead is wrapped by errors meaning the push token will never
	// work again (app uninstalled, token rotated or malformed): the domain
	// marks it dead so no more pushes go to it.
	ErrTokenDead = errors.New("push: token is dead")
	// ErrExpired is wrapped when a job's request expired before it could be
	// sent: a late push would only show a request that can no longer be
	// answered.
	ErrExpired = errors.New("push: request expired")
	// ErrNoSender is wrapped when no configured provider can reach the
	// device's platform.
	ErrNoSender = errors.New("push: no sender for this device")
)

// TemporaryError is a failure worth retrying (provider overloaded,
// unavailable, network trouble). RetryAfter is the provider's requested
// delay, zero when it named none.
type TemporaryError struct {
	Err        error
	RetryAfter time.Duration
}

func (e *TemporaryError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%v (temporary, retry after %s)", e.Err, e.RetryAfter)
	}
	return fmt.Sprintf("%v (temporary)", e.Err)
}

func (e *TemporaryError) Unwrap() error { return e.Err }

// IsTemporary reports whether err is, or wraps, a *TemporaryError.
func IsTemporary(err error) bool {
	var t *TemporaryError
	return errors.As(err, &t)
}

// temporary wraps err as a TemporaryError.
func temporary(err error, retryAfter time.Duration) error {
	return &TemporaryError{Err: err, RetryAfter: retryAfter}
}

// redactToken shortens a push token for logs: enough to tell tokens apart,
// too little to push to.
func redactToken(t string) string {
	if len(t) <= 8 {
		return fmt.Sprintf("…(%d)", len(t))
	}
	return fmt.Sprintf("%s…(%d)", t[:6], len(t))
}

// isNil reports whether s is nil, including a nil pointer in a non-nil
// interface (a common slip when wiring optional senders).
func isNil(s Sender) bool {
	if s == nil {
		return true
	}
	v := reflect.ValueOf(s)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Interface, reflect.Chan:
		return v.IsNil()
	}
	return false
}
