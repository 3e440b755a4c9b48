package sms

import (
	"context"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTwilio checks every request exactly as the Messages API expects it
// and answers with the given status, headers and body.
func fakeTwilio(t *testing.T, wantForm url.Values, status int, header map[string]string, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != http.MethodPost {
			t.Errorf("method %s, want POST", r.Method)
		}
		if r.URL.Path != "/2010-04-01/Accounts/ACtest123/Messages.json" || r.URL.RawQuery != "" {
			t.Errorf("path %s?%s", r.URL.Path, r.URL.RawQuery)
		}
		if user, pass, ok := r.BasicAuth(); !ok || user != "ACtest123" || pass != testToken {
			t.Errorf("basic auth %q %q %v", user, pass, ok)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
			t.Errorf("content type %q", ct)
		}
		if a := r.Header.Get("Accept"); a != "application/json" {
			t.Errorf("accept %q", a)
		}
		raw, _ := io.ReadAll(r.Body)
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			t.Errorf("form: %v", err)
		}
		if !maps.EqualFunc(form, wantForm, slices.Equal) {
			t.Errorf("form %v, want %v", form, wantForm)
		}
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestTwilioSend(t *testing.T) {
	fromForm := url.Values{"To": {testTo}, "From": {"+3197010000000"}, "Body": {testBody}}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		cfg    func(*TwilioConfig)
		form   url.Values
		status int
		header map[string]string
		body   string
		wantID string
		want   *wantErr
	}{
		{name: "created with From", form: fromForm, status: 201,
			body: `{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}`, wantID: "SM0123456789abcdef0123456789abcdef"},
		{name: "created with messaging service",
			cfg:    func(c *TwilioConfig) { c.From, c.MessagingServiceSID = "", "MGservice" },
			form:   url.Values{"To": {testTo}, "MessagingServiceSid": {"MGservice"}, "Body": {testBody}},
			status: 201, body: `{"sid":"SMmss"}`, wantID: "SMmss"},
		{name: "both From and service are sent",
			cfg:    func(c *TwilioConfig) { c.MessagingServiceSID = "MGservice" },
			form:   url.Values{"To": {testTo}, "From": {"+3197010000000"}, "MessagingServiceSid": {"MGservice"}, "Body": {testBody}},
			status: 201, body: `{"sid":"SMboth"}`, wantID: "SMboth"},
		{name: "invalid number is permanent and scrubbed", form: fromForm, status: 400,
			body: `{"code": 21211, "message": "The 'To' number +31612345678 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}`,
			want: &wantErr{status: 400, code: "21211", contains: []string{"twilio", "400", "21211", "The 'To' number +31*******78 is not a valid phone number."}}},
		{name: "echoed body and token are scrubbed", form: fromForm, status: 400,
			body: `{"code": 21617, "message": "Body '` + strings.ReplaceAll(testBody, `"`, `\"`) + `' too long for ` + testToken + ` and 31612345678", "status": 400}`,
			want: &wantErr{status: 400, code: "21617", contains: []string{"[body]", "[redacted]", "+31*******78"}}},
		{name: "bad credentials are permanent", form: fromForm, status: 401,
			body: `{"code": 20003, "message": "Authenticate", "status": 401}`,
			want: &wantErr{status: 401, code: "20003", contains: []string{"Authenticate"}}},
		{name: "500 is temporary", form: fromForm, status: 500, body: `<html>oops</html>`,
			want: &wantErr{status: 500, temporary: true, contains: []string{"internal server error", "temporary"}}},
		{name: "429 honours Retry-After", form: fromForm, status: 429, header: map[string]string{"Retry-After": "7"},
			body: `{"code": 20429, "message": "Too Many Requests", "status": 429}`,
			want: &wantErr{status: 429, code: "20429", temporary: true, retryAfter: 7 * time.Second, contains: []string{"retry after 7s"}}},
		{name: "503 honours Retry-After date", form: fromForm, status: 503,
			header: map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)},
			want:   &wantErr{status: 503, temporary: true, retryAfter: 90 * time.Second}},
		{name: "created without sid is not retried", form: fromForm, status: 201, body: `{}`,
			want: &wantErr{status: 201, code: "bad_response"}},
		{name: "created with garbage is not retried", form: fromForm, status: 201, body: `not json`,
			want: &wantErr{status: 201, code: "bad_response"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, calls := fakeTwilio(t, tt.form, tt.status, tt.header, tt.body)
			cfg := TwilioConfig{AccountSID: "ACtest123", AuthToken: testToken, From: "+3197010000000", BaseURL: srv.URL + "/", HTTPClient: srv.Client()}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			tw, err := NewTwilio(cfg)
			if err != nil {
				t.Fatal(err)
			}
			tw.doer.now = func() time.Time { return now }
			id, err := tw.Send(context.Background(), testMsg)
			checkErr(t, err, tt.want)
			if id != tt.wantID {
				t.Errorf("id %q, want %q", id, tt.wantID)
			}
			if calls.Load() != 1 {
				t.Errorf("%d calls", calls.Load())
			}
		})
	}
}

func TestTwilioTransportFailures(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	past, cancelPast := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancelPast()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name string
		url  string
		ctx  context.Context
		want *wantErr
	}{
		{"connection refused", closedURL, context.Background(), &wantErr{code: "network", temporary: true, contains: []string{"request failed"}}},
		{"deadline exceeded", closedURL, past, &wantErr{code: "timeout", temporary: true}},
		{"canceled", closedURL, canceled, &wantErr{code: "canceled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw, err := NewTwilio(TwilioConfig{AccountSID: "ACtest123", AuthToken: testToken, From: "+3197010000000", BaseURL: tt.url})
			if err != nil {
				t.Fatal(err)
			}
			_, err = tw.Send(tt.ctx, testMsg)
			checkErr(t, err, tt.want)
			assertNoLeak(t, err.Error(), "ACtest123", "/Messages.json")
			if tt.ctx.Err() != nil && !errors.Is(err, tt.ctx.Err()) {
				t.Errorf("%v does not wrap %v", err, tt.ctx.Err())
			}
		})
	}
}

func TestTwilioRejectsBadMessageWithoutCalling(t *testing.T) {
	srv, calls := fakeTwilio(t, nil, 500, nil, "")
	tw, err := NewTwilio(TwilioConfig{AccountSID: "ACtest123", AuthToken: testToken, From: "x", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Message{
		{To: "0612345678", Body: testBody},
		{To: "+31612345678&From=evil", Body: testBody},
		{To: "", Body: testBody},
		{To: testTo, Body: "  "},
	} {
		_, err := tw.Send(context.Background(), m)
		if err == nil || IsTemporary(err) {
			t.Errorf("%v: err %v, want permanent", m, err)
		}
		if err != nil {
			assertNoLeak(t, err.Error(), "evil")
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d provider calls for invalid messages", calls.Load())
	}
}

func TestNewTwilioConfig(t *testing.T) {
	ok := TwilioConfig{AccountSID: "ACx", AuthToken: testToken, From: "+3197010000000"}
	tests := []struct {
		name    string
		mod     func(*TwilioConfig)
		wantErr []string // each must appear; nil means valid
	}{
		{"valid with From", func(*TwilioConfig) {}, nil},
		{"valid with service only", func(c *TwilioConfig) { c.From, c.MessagingServiceSID = "", "MGx" }, nil},
		{"valid http base", func(c *TwilioConfig) { c.BaseURL = "http://localhost:8080/proxy/" }, nil},
		{"no sid", func(c *TwilioConfig) { c.AccountSID = " " }, []string{"AccountSID is required"}},
		{"no token", func(c *TwilioConfig) { c.AuthToken = "" }, []string{"AuthToken is required"}},
		{"no sender", func(c *TwilioConfig) { c.From = "" }, []string{"From or MessagingServiceSID is required"}},
		{"relative base", func(c *TwilioConfig) { c.BaseURL = "api.twilio.com" }, []string{"BaseURL"}},
		{"base with query", func(c *TwilioConfig) { c.BaseURL = "https://api.twilio.com/?x=1" }, []string{"BaseURL"}},
		{"everything missing", func(c *TwilioConfig) { *c = TwilioConfig{BaseURL: "ftp://u:" + testToken + "@h"} },
			[]string{"AccountSID", "AuthToken", "From or MessagingServiceSID", "BaseURL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			tw, err := NewTwilio(cfg)
			if tt.wantErr == nil {
				if err != nil || tw == nil {
					t.Fatalf("NewTwilio: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%v does not wrap ErrInvalidConfig", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
			assertNoLeak(t, err.Error())
		})
	}
}

func TestTwilioEndpointAndName(t *testing.T) {
	tw, err := NewTwilio(TwilioConfig{AccountSID: "ACx", AuthToken: "t", From: "f"})
	if err != nil {
		t.Fatal(err)
	}
	if tw.endpoint != "https://api.twilio.com/2010-04-01/Accounts/ACx/Messages.json" {
		t.Errorf("endpoint %s", tw.endpoint)
	}
	if tw.Name() != "twilio" {
		t.Errorf("name %s", tw.Name())
	}
	if tw.doer.client == http.DefaultClient || tw.doer.client.Timeout == 0 {
		t.Error("default client has no timeout")
	}
}
