package push

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"
)

// APNsConfig configures the APNs sender with token (.p8 key) auth, which
// unlike certificates does not expire yearly and serves all of a team's apps.
type APNsConfig struct {
	KeyFile string // path of the .p8 key (PKCS#8 EC P-256, PEM)
	KeyPEM  []byte // or its contents; wins over KeyFile
	KeyID   string // the key's id in the Apple developer account
	TeamID  string
	Topic   string // the app's bundle id
	// Production selects api.push.apple.com; otherwise the sandbox, which
	// development builds of the app register with.
	Production bool
	// Host replaces the APNs host, e.g. "https://127.0.0.1:8443" (tests).
	Host string
	// HTTPClient, when set, replaces the default HTTP/2 client (tests: a
	// client trusting a local TLS server). It must speak HTTP/2.
	HTTPClient *http.Client
}

// APNs sends to iOS devices directly through Apple's HTTP/2 provider API with
// sideshow/apns2.
type APNs struct {
	client *apns2.Client
	topic  string
}

// NewAPNs builds an APNs sender. It checks the key by signing a provider
// token, but does not contact Apple.
func NewAPNs(cfg APNsConfig) (*APNs, error) {
	if cfg.KeyID == "" || cfg.TeamID == "" || cfg.Topic == "" {
		return nil, errors.New("push: apns: key id, team id and topic are required")
	}
	keyPEM := cfg.KeyPEM
	if len(keyPEM) == 0 && cfg.KeyFile == "" {
		return nil, errors.New("push: apns: no .p8 key configured")
	}
	var (
		tok = &token.Token{KeyID: cfg.KeyID, TeamID: cfg.TeamID}
		err error
	)
	if len(keyPEM) > 0 {
		tok.AuthKey, err = token.AuthKeyFromBytes(keyPEM)
	} else {
		tok.AuthKey, err = token.AuthKeyFromFile(cfg.KeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("push: apns: key: %w", err)
	}
	if _, err := tok.Generate(); err != nil { // GenerateIfExpired would hide this error
		return nil, fmt.Errorf("push: apns: signing provider token: %w", err)
	}
	client := apns2.NewTokenClient(tok)
	switch {
	case cfg.Host != "":
		client.Host = strings.TrimSuffix(cfg.Host, "/")
	case cfg.Production:
		client.Production()
	default:
		client.Development()
	}
	hc := client.HTTPClient
	if cfg.HTTPClient != nil {
		hc = cfg.HTTPClient
	}
	// A copy with a transport that captures Retry-After, which apns2's
	// Response does not expose.
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hcCopy := *hc
	hcCopy.Transport = retryAfterCapture{base: base}
	client.HTTPClient = &hcCopy
	return &APNs{client: client, topic: cfg.Topic}, nil
}

// Name returns "apns".
func (*APNs) Name() string { return "apns" }

// Send pushes j as a visible alert: priority 10 (deliver now), expiration at
// the request's expiry (Apple stores and retries until then, not after), and
// the request id as collapse id so a resend replaces rather than stacks.
func (a *APNs) Send(ctx context.Context, j Job) error {
	n := NewNotification(j)
	body := payload.NewPayload().
		AlertTitle(n.Title).AlertBody(n.Body).
		Custom(DataRequestID, j.RequestID).Custom(DataKind, j.Kind)
	if tp := j.Trace.Traceparent; tp != "" {
		body.Custom(DataTraceparent, tp)
	}
	note := &apns2.Notification{
		DeviceToken: j.PushToken,
		Topic:       a.topic,
		CollapseID:  j.RequestID,
		Priority:    apns2.PriorityHigh,
		Expiration:  j.ExpiresAt,
		PushType:    apns2.PushTypeAlert,
		Payload:     body,
	}
	var after time.Duration
	resp, err := a.client.PushWithContext(context.WithValue(ctx, retryAfterKey{}, &after), note)
	if err != nil {
		if ctx.Err() != nil {
			return temporary(fmt.Errorf("push: apns: %w", ctx.Err()), 0)
		}
		// Network, TLS or HTTP/2 trouble: the next attempt may well work.
		// The error quotes the URL, whose path is the device token.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = strings.ReplaceAll(ue.URL, j.PushToken, redactToken(j.PushToken))
		}
		return temporary(fmt.Errorf("push: apns: %w", err), 0)
	}
	return classifyAPNs(resp, after)
}

// classifyAPNs maps an APNs response to the package's error classes and a
// Reason.
func classifyAPNs(r *apns2.Response, after time.Duration) error {
	if r.Sent() {
		return nil
	}
	return withReason(apnsReason(r.StatusCode, r.Reason), apnsClass(r, after))
}

// apnsClass maps a failed APNs response to the package's error classes.
func apnsClass(r *apns2.Response, after time.Duration) error {
	err := fmt.Errorf("push: apns: status %d %s", r.StatusCode, r.Reason)
	switch {
	case r.StatusCode == http.StatusGone,
		r.Reason == apns2.ReasonBadDeviceToken,
		r.Reason == apns2.ReasonUnregistered,
		r.Reason == apns2.ReasonExpiredToken:
		return fmt.Errorf("%w: apns: status %d %s", ErrTokenDead, r.StatusCode, r.Reason)
	case r.StatusCode == http.StatusTooManyRequests,
		r.StatusCode >= 500,
		r.Reason == apns2.ReasonIdleTimeout,
		r.Reason == apns2.ReasonShutdown:
		return temporary(err, after)
	}
	return err
}

type retryAfterKey struct{}

// retryAfterCapture copies a response's Retry-After into the *time.Duration
// the request's context carries. RoundTrip runs in the caller's goroutine,
// so the write is seen by the caller without locking.
type retryAfterCapture struct{ base http.RoundTripper }

func (c retryAfterCapture) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(r)
	if err == nil {
		if p, ok := r.Context().Value(retryAfterKey{}).(*time.Duration); ok {
			*p = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
	}
	return resp, err
}

// CloseIdleConnections lets apns2's Client.CloseIdleConnections reach the
// wrapped transport.
func (c retryAfterCapture) CloseIdleConnections() {
	if ci, ok := c.base.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}
