package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"
)

// FCMConfig configures the FCM sender. Credentials come from CredentialsJSON,
// else CredentialsFile (both a service-account key), else Application
// Default Credentials.
type FCMConfig struct {
	CredentialsFile string
	CredentialsJSON []byte
	// ProjectID is the Firebase project; empty takes it from the credentials.
	ProjectID string
	// Endpoint replaces https://fcm.googleapis.com/v1 (tests, proxies).
	Endpoint string
	// HTTPClient, when set, is used as is: it must add authorization itself
	// (credentials are then ignored). For tests and unusual set-ups.
	HTTPClient *http.Client
	// Now gives the time the TTL is computed from; nil means time.Now.
	Now func() time.Time
}

// FCM sends through Firebase Cloud Messaging's HTTP v1 API with the
// firebase-admin-go SDK, which handles OAuth tokens and retries a 503 a few
// times itself.
type FCM struct {
	client *messaging.Client
	now    func() time.Time
}

// NewFCM builds an FCM sender. It does not contact FCM.
func NewFCM(ctx context.Context, cfg FCMConfig) (*FCM, error) {
	var opts []option.ClientOption
	switch {
	case cfg.HTTPClient != nil:
		opts = append(opts, option.WithHTTPClient(cfg.HTTPClient))
	case len(cfg.CredentialsJSON) > 0:
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, cfg.CredentialsJSON))
	case cfg.CredentialsFile != "":
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, cfg.CredentialsFile))
	}
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(strings.TrimSuffix(cfg.Endpoint, "/")))
	}
	// The client library's own telemetry would trace on the global
	// provider, which pushauth neither sets nor reads; push.Traced makes
	// the send's span on the server's provider instead.
	opts = append(opts, option.WithTelemetryDisabled())
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: cfg.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("push: fcm: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("push: fcm: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &FCM{client: client, now: now}, nil
}

// Name returns "fcm".
func (*FCM) Name() string { return "fcm" }

// Send pushes j: high priority so a dozing Android phone wakes for it, a TTL
// of the time the request has left (FCM drops it after that), and the
// request id as collapse key so a resend replaces rather than stacks. iOS
// apps on FCM get the same through APNs headers.
func (f *FCM) Send(ctx context.Context, j Job) error {
	left := j.ExpiresAt.Sub(f.now())
	if left <= 0 {
		return ErrExpired
	}
	ttl := left.Truncate(time.Second)
	if ttl < left {
		ttl += time.Second // whole seconds, rounded up: never a TTL of 0 ("now or never")
	}
	n := NewNotification(j)
	msg := &messaging.Message{
		Token:        j.PushToken,
		Data:         map[string]string{DataRequestID: j.RequestID, DataKind: j.Kind},
		Notification: &messaging.Notification{Title: n.Title, Body: n.Body},
		Android: &messaging.AndroidConfig{
			CollapseKey: j.RequestID,
			Priority:    "high",
			TTL:         &ttl,
		},
		APNS: &messaging.APNSConfig{Headers: map[string]string{
			"apns-priority":    "10",
			"apns-push-type":   "alert",
			"apns-collapse-id": j.RequestID,
			"apns-expiration":  strconv.FormatInt(j.ExpiresAt.Unix(), 10),
		}},
	}
	if tp := j.Trace.Traceparent; tp != "" {
		msg.Data[DataTraceparent] = tp
	}
	_, err := f.client.Send(ctx, msg)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return temporary(fmt.Errorf("push: fcm: %w", ctx.Err()), 0)
	}
	return classifyFCM(err)
}

// classifyFCM maps an SDK error to the package's error classes and a
// Reason.
func classifyFCM(err error) error {
	c := fcmClass(err)
	return withReason(fcmReason(err, errors.Is(c, ErrTokenDead)), c)
}

// fcmClass maps an SDK error to the package's error classes.
func fcmClass(err error) error {
	resp := errorutils.HTTPResponse(err)
	wrapped := fmt.Errorf("push: fcm: %w", err)
	switch {
	case messaging.IsUnregistered(err):
		return fmt.Errorf("%w: fcm: %v", ErrTokenDead, err)
	case messaging.IsInvalidArgument(err) || errorutils.IsInvalidArgument(err):
		if badTokenField(resp) || strings.Contains(strings.ToLower(err.Error()), "registration token") {
			return fmt.Errorf("%w: fcm: %v", ErrTokenDead, err)
		}
		return wrapped
	case messaging.IsQuotaExceeded(err), messaging.IsUnavailable(err), messaging.IsInternal(err),
		errorutils.IsResourceExhausted(err), errorutils.IsUnavailable(err), errorutils.IsInternal(err),
		errorutils.IsDeadlineExceeded(err):
		return temporary(wrapped, retryAfter(resp, time.Now()))
	case resp == nil && errorutils.IsUnknown(err):
		// A transport failure (connection reset, token endpoint down, ...):
		// the SDK gives no response, and the network may well recover.
		return temporary(wrapped, 0)
	}
	return wrapped
}

// badTokenField reports whether an INVALID_ARGUMENT response blames the
// token (a google.rpc.BadRequest field violation on message.token) rather
// than the message we built.
func badTokenField(resp *http.Response) bool {
	if resp == nil || resp.Body == nil {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return false
	}
	var e struct {
		Error struct {
			Details []struct {
				FieldViolations []struct {
					Field string `json:"field"`
				} `json:"fieldViolations"`
			} `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	for _, d := range e.Error.Details {
		for _, v := range d.FieldViolations {
			if v.Field == "message.token" {
				return true
			}
		}
	}
	return false
}

// retryAfter reads a Retry-After header (seconds or an HTTP date).
func retryAfter(resp *http.Response, now time.Time) time.Duration {
	if resp == nil {
		return 0
	}
	return parseRetryAfter(resp.Header.Get("Retry-After"), now)
}

func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
