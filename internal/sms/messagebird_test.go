package sms

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeMessageBird checks every request exactly as POST /messages expects it.
func fakeMessageBird(t *testing.T, status int, header map[string]string, body string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Method != http.MethodPost {
			t.Errorf("method %s, want POST", r.Method)
		}
		if r.URL.Path != "/messages" || r.URL.RawQuery != "" {
			t.Errorf("path %s?%s", r.URL.Path, r.URL.RawQuery)
		}
		if a := r.Header.Get("Authorization"); a != "AccessKey "+testKey {
			t.Errorf("authorization %q", a)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("content type %q", ct)
		}
		if a := r.Header.Get("Accept"); a != "application/json" {
			t.Errorf("accept %q", a)
		}
		raw, _ := io.ReadAll(r.Body)
		var got map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Errorf("json %q: %v", raw, err)
		}
		want := map[string]any{
			"recipients": []any{"31612345678"},
			"originator": "PushAuth",
			"body":       testBody,
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("payload %v, want %v", got, want)
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

func TestMessageBirdSend(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header map[string]string
		body   string
		wantID string
		want   *wantErr
	}{
		{name: "created", status: 201,
			body:   `{"id":"49e40bae0b374f1ca5e3d04d46edc7c1","href":"https://rest.messagebird.com/messages/49e40bae0b374f1ca5e3d04d46edc7c1","recipients":{"totalCount":1}}`,
			wantID: "49e40bae0b374f1ca5e3d04d46edc7c1"},
		{name: "no recipients is permanent", status: 422,
			body: `{"errors":[{"code":9,"description":"no (correct) recipients found","parameter":"recipients"}]}`,
			want: &wantErr{status: 422, code: "9", contains: []string{"messagebird", "422", "code 9", `no (correct) recipients found (parameter "recipients")`}}},
		{name: "all errors are kept, first code wins", status: 400,
			body: `{"errors":[{"code":25,"description":"not enough balance","parameter":null},{"code":10,"description":"bad originator","parameter":"originator"}]}`,
			want: &wantErr{status: 400, code: "25", contains: []string{"not enough balance; bad originator"}}},
		{name: "bad key is permanent and scrubbed", status: 401,
			body: `{"errors":[{"code":2,"description":"Request not allowed (incorrect access_key ` + testKey + `) for 31612345678","parameter":"access_key"}]}`,
			want: &wantErr{status: 401, code: "2", contains: []string{"[redacted]", "+31*******78"}}},
		{name: "echoed body is scrubbed", status: 400,
			body: `{"errors":[{"code":"body_invalid","description":"` + testBody + `","parameter":"body"}]}`,
			want: &wantErr{status: 400, code: "body_invalid", contains: []string{"[body]"}}},
		{name: "500 is temporary", status: 500, body: `{"errors":[{"code":99,"description":"internal error"}]}`,
			want: &wantErr{status: 500, code: "99", temporary: true}},
		{name: "502 without json is temporary", status: 502, body: `<html>bad gateway</html>`,
			want: &wantErr{status: 502, temporary: true, contains: []string{"bad gateway"}}},
		{name: "429 honours Retry-After", status: 429, header: map[string]string{"Retry-After": "7"},
			body: `{"errors":[{"code":429,"description":"too many requests"}]}`,
			want: &wantErr{status: 429, code: "429", temporary: true, retryAfter: 7e9}},
		{name: "created without id", status: 201, body: `{"href":"x"}`,
			want: &wantErr{status: 201, code: "bad_response"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, calls := fakeMessageBird(t, tt.status, tt.header, tt.body)
			mb, err := NewMessageBird(MessageBirdConfig{AccessKey: testKey, Originator: "PushAuth", BaseURL: srv.URL, HTTPClient: srv.Client()})
			if err != nil {
				t.Fatal(err)
			}
			id, err := mb.Send(context.Background(), testMsg)
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

func TestMessageBirdNetworkFailure(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	mb, err := NewMessageBird(MessageBirdConfig{AccessKey: testKey, Originator: "PushAuth", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = mb.Send(context.Background(), testMsg)
	checkErr(t, err, &wantErr{code: "network", temporary: true})
}

func TestMessageBirdRejectsBadMessageWithoutCalling(t *testing.T) {
	srv, calls := fakeMessageBird(t, 500, nil, "")
	mb, err := NewMessageBird(MessageBirdConfig{AccessKey: testKey, Originator: "PushAuth", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Message{{To: "31612345678", Body: testBody}, {To: testTo}} {
		if _, err := mb.Send(context.Background(), m); err == nil || IsTemporary(err) {
			t.Errorf("%v: err %v, want permanent", m, err)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d provider calls", calls.Load())
	}
}

func TestNewMessageBirdConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     MessageBirdConfig
		wantErr []string
	}{
		{"alphanumeric originator", MessageBirdConfig{AccessKey: testKey, Originator: "PushAuth"}, nil},
		{"numeric originator", MessageBirdConfig{AccessKey: testKey, Originator: "+31612345678"}, nil},
		{"11 characters", MessageBirdConfig{AccessKey: testKey, Originator: "ABCDEFGHIJK"}, nil},
		{"no key", MessageBirdConfig{Originator: "PushAuth"}, []string{"AccessKey is required"}},
		{"no originator", MessageBirdConfig{AccessKey: testKey}, []string{"Originator is required"}},
		{"long sender id", MessageBirdConfig{AccessKey: testKey, Originator: "ABCDEFGHIJKL"}, []string{"longer than 11"}},
		{"long number", MessageBirdConfig{AccessKey: testKey, Originator: "+123456789012345678"}, []string{"longer than 17"}},
		{"bad base", MessageBirdConfig{AccessKey: testKey, Originator: "X", BaseURL: "rest.messagebird.com"}, []string{"BaseURL"}},
		{"all bad", MessageBirdConfig{BaseURL: "://"}, []string{"AccessKey", "Originator", "BaseURL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mb, err := NewMessageBird(tt.cfg)
			if tt.wantErr == nil {
				if err != nil || mb == nil {
					t.Fatalf("NewMessageBird: %v", err)
				}
				if mb.endpoint != DefaultMessageBirdBaseURL+"/messages" || mb.Name() != "messagebird" {
					t.Errorf("endpoint %s name %s", mb.endpoint, mb.Name())
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("%v does not wrap ErrInvalidConfig", err)
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
