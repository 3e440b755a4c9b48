package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidConfig is wrapped by every configuration error of the
// constructors, so callers can tell a bad config from other failures.
var ErrInvalidConfig = errors.New("invalid config")

// defaultTimeout bounds one provider call when the config brings no client:
// http.DefaultClient has no timeout, and a hung provider must not hold a
// registration request forever.
const defaultTimeout = 15 * time.Second

// maxResponse bounds how much of a provider response is read.
const maxResponse = 64 << 10

// maxRetryAfterHeader clamps absurd Retry-After values.
const maxRetryAfterHeader = 24 * time.Hour

func configError(provider string, problems []string) error {
	return fmt.Errorf("sms %s: %w: %s", provider, ErrInvalidConfig, strings.Join(problems, "; "))
}

// normalizeBaseURL checks a configured base URL and drops a trailing slash.
// The URL itself is never echoed in errors: it could carry userinfo.
func normalizeBaseURL(raw, def string) (string, bool) {
	if strings.TrimSpace(raw) == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	return strings.TrimRight(raw, "/"), true
}

func clientOrDefault(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: defaultTimeout}
}

// httpDoer is the request plumbing both providers share: it turns transport
// failures and HTTP statuses into scrubbed *Error values.
type httpDoer struct {
	provider string
	client   *http.Client
	secrets  []string // removed from any text that reaches an Error
	now      func() time.Time
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (d *httpDoer) do(ctx context.Context, req *http.Request, m Message) (*response, error) {
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, d.networkError(ctx, err, m)
	}
	defer resp.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
	r := &response{status: resp.StatusCode, header: resp.Header, body: body}
	if rerr != nil && resp.StatusCode/100 == 2 {
		// The provider accepted the message but we lost the answer: sending
		// again could deliver two SMS, so this is not temporary.
		return nil, &Error{Provider: d.provider, Status: resp.StatusCode, Code: "bad_response",
			Message: "reading the response failed: " + scrub(rerr.Error(), m, d.secrets...), cause: rerr}
	}
	return r, nil
}

// networkError classifies a failure before any response arrived. Only the
// inner error is kept: *url.Error would carry the request URL.
func (d *httpDoer) networkError(ctx context.Context, err error, m Message) *Error {
	cause := err
	if ue, ok := errors.AsType[*url.Error](err); ok {
		cause = ue.Err
	}
	e := &Error{Provider: d.provider, Code: "network", Temporary: true, cause: cause}
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(ctx.Err(), context.Canceled):
		e.Code, e.Message, e.Temporary = "canceled", "request canceled", false
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		e.Code, e.Message = "timeout", "request timed out"
	default:
		e.Message = "request failed: " + scrub(cause.Error(), m, d.secrets...)
	}
	return e
}

// statusError builds the error for a non-2xx response from the provider's
// own code and text.
func (d *httpDoer) statusError(r *response, code, text string, m Message) *Error {
	e := &Error{
		Provider:  d.provider,
		Status:    r.status,
		Code:      code,
		Message:   scrub(text, m, d.secrets...),
		Temporary: temporaryStatus(r.status),
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(r.status))
	}
	if e.Temporary {
		e.RetryAfter = parseRetryAfter(r.header.Get("Retry-After"), d.now())
	}
	return e
}

// noID is a 2xx without a usable message id. Not temporary: the provider may
// have queued the SMS, and a retry could send it twice.
func (d *httpDoer) noID(r *response) *Error {
	return &Error{Provider: d.provider, Status: r.status, Code: "bad_response", Message: "success response without a message id"}
}

// jsonCode reads a provider error code given as a JSON number or string.
func jsonCode(raw json.RawMessage) string {
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && len(s) <= 64 {
		return s
	}
	return ""
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfterHeader/time.Second) {
			return maxRetryAfterHeader
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		d := t.Sub(now)
		if d <= 0 {
			return 0
		}
		return min(d, maxRetryAfterHeader)
	}
	return 0
}
