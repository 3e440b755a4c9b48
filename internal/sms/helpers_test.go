package sms

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const (
	testTo    = "+31612345678"
	testCode  = "482913"
	testToken = "s3cr3t-auth-token-value"
	testKey   = "live_AbCdEfGhIjKlMnOp"
)

var testBody = Render("en", TemplateData{AppName: "PushAuth", Code: testCode, Link: "https://auth.example.com/v/AAECAwQFBgcICQoLDA0ODw", TTLMinutes: 10})

var testMsg = Message{To: testTo, Body: testBody}

// assertNoLeak fails if s holds the number (in any usual spelling), the
// body, the code or one of the secrets.
func assertNoLeak(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, bad := range append([]string{testTo, "31612345678", "612345678", "0612345678", testBody, testCode, testToken, testKey}, secrets...) {
		if bad != "" && strings.Contains(s, bad) {
			t.Errorf("%q leaks %q", s, bad)
		}
	}
}

// wantErr describes the *Error a case expects; nil means success.
type wantErr struct {
	status     int
	code       string
	temporary  bool
	retryAfter time.Duration
	contains   []string // substrings of Error()
}

func checkErr(t *testing.T, err error, w *wantErr) {
	t.Helper()
	if w == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatal("no error")
	}
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("error %T %v is not an *Error", err, err)
	}
	if e.Status != w.status || e.Code != w.code || e.Temporary != w.temporary || e.RetryAfter != w.retryAfter {
		t.Errorf("got status=%d code=%q temporary=%v retryAfter=%v, want status=%d code=%q temporary=%v retryAfter=%v",
			e.Status, e.Code, e.Temporary, e.RetryAfter, w.status, w.code, w.temporary, w.retryAfter)
	}
	if IsTemporary(err) != w.temporary {
		t.Errorf("IsTemporary = %v, want %v", IsTemporary(err), w.temporary)
	}
	for _, c := range w.contains {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q lacks %q", err.Error(), c)
		}
	}
	assertNoLeak(t, err.Error())
	assertNoLeak(t, e.Message)
}
