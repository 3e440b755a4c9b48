package push

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestAlert(t *testing.T) {
	for _, tc := range []struct{ kind, locale, rp, title, body string }{
		{KindLogin, "", "", "Login request", "Open the app to approve or deny it."},
		{KindLogin, "en-GB", "Mijn Portal", "Login request", "Mijn Portal asks you to approve a login. Open the app to approve or deny it."},
		{KindLogin, "nl", "Mijn Portal", "Verzoek om goedkeuring", "Mijn Portal vraagt je goedkeuring om in te loggen. Open de app om het verzoek goed te keuren of af te wijzen."},
		{KindLogin, "nl_BE", "", "Verzoek om goedkeuring", "Open de app om het verzoek goed te keuren of af te wijzen."},
		{KindLogin, " NL-nl", "X", "Verzoek om goedkeuring", "X vraagt je goedkeuring om in te loggen. Open de app om het verzoek goed te keuren of af te wijzen."},
		{KindPairing, "de-DE", "Mijn Portal", "Connect account", "Mijn Portal asks to connect your account. Open the app to approve or deny it."},
		{KindPairing, "nl-NL", "Mijn Portal", "Account verbinden", "Mijn Portal vraagt om je account te verbinden. Open de app om het verzoek goed te keuren of af te wijzen."},
		{KindPairing, "nld", "", "Connect account", "Open the app to approve or deny it."},
	} {
		title, body := Alert(tc.kind, tc.locale, tc.rp)
		if title != tc.title || body != tc.body {
			t.Errorf("Alert(%s, %q, %q) = %q, %q; want %q, %q", tc.kind, tc.locale, tc.rp, title, body, tc.title, tc.body)
		}
	}
	n := NewNotification(job("n"))
	if n.Title != "Login request" || n.RequestID != "n" {
		t.Errorf("NewNotification = %+v", n)
	}
}

func TestJobValidate(t *testing.T) {
	if err := job("ok").Validate(); err != nil {
		t.Fatalf("valid job: %v", err)
	}
	for name, mut := range map[string]func(*Job){
		"request id": func(j *Job) { j.RequestID = "" },
		"device id":  func(j *Job) { j.DeviceID = "" },
		"token":      func(j *Job) { j.PushToken = "" },
		"platform":   func(j *Job) { j.Platform = "android" },
		"kind":       func(j *Job) { j.Kind = "LOGOUT" },
		"expiry":     func(j *Job) { j.ExpiresAt = time.Time{} },
	} {
		j := job("x")
		mut(&j)
		if j.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := time.Second, 30*time.Second
	for attempt, ceil := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		5: 16 * time.Second, 6: 30 * time.Second, 40: 30 * time.Second} {
		var maxSeen time.Duration
		for range 2000 {
			d := backoff(attempt, lo, hi)
			if d < 0 || d > ceil {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", attempt, d, ceil)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < ceil/2 {
			t.Errorf("backoff(%d) never above %v: jitter does not span [0, %v]", attempt, maxSeen, ceil)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		"-3":                            0,
		"soon":                          0,
		"Tue, 01 Jan 2030 00:01:00 GMT": time.Minute,
		"Mon, 31 Dec 2029 00:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestTemporaryError(t *testing.T) {
	base := errors.New("boom")
	err := error(&TemporaryError{Err: base, RetryAfter: time.Second})
	if !IsTemporary(err) || !errors.Is(err, base) || IsTemporary(base) {
		t.Error("TemporaryError does not classify or unwrap")
	}
}

func TestRouter(t *testing.T) {
	fcm := senderFunc{name: "fcm"}
	apns := senderFunc{name: "apns"}
	apnsToken := strings.Repeat("ab", 32)
	fcmToken := "dGVzdA:APA91bH-example_token"
	route := func(r *Router, platform, token string) string {
		j := job("r")
		j.Platform, j.PushToken = platform, token
		s, err := r.Route(j)
		if err != nil {
			if !errors.Is(err, ErrNoSender) {
				t.Errorf("Route error %v does not wrap ErrNoSender", err)
			}
			return "none"
		}
		return s.Name()
	}
	both := NewRouter(RouterConfig{FCM: fcm, APNs: apns})
	onlyFCM := NewRouter(RouterConfig{FCM: fcm})
	var nilAPNs *APNs
	onlyAPNs := NewRouter(RouterConfig{APNs: apns, FCM: (*FCM)(nil)})
	none := NewRouter(RouterConfig{APNs: nilAPNs})
	for _, tc := range []struct {
		r               *Router
		platform, token string
		want            string
	}{
		{both, PlatformAndroid, fcmToken, "fcm"},
		{both, PlatformIOS, apnsToken, "apns"},
		{both, PlatformIOS, fcmToken, "fcm"}, // an iOS app using FCM
		{onlyFCM, PlatformIOS, apnsToken, "fcm"},
		{onlyFCM, PlatformAndroid, fcmToken, "fcm"},
		{onlyAPNs, PlatformIOS, fcmToken, "apns"},
		{onlyAPNs, PlatformAndroid, fcmToken, "none"},
		{none, PlatformAndroid, fcmToken, "log"},
		{none, PlatformIOS, apnsToken, "log"},
	} {
		if got := route(tc.r, tc.platform, tc.token); got != tc.want {
			t.Errorf("route(%s, %.10s…) = %s, want %s", tc.platform, tc.token, got, tc.want)
		}
	}
}

func TestLogSenderHidesToken(t *testing.T) {
	var buf bytes.Buffer
	s := NewLogSender(slog.New(slog.NewTextHandler(&buf, nil)))
	j := job("l")
	j.PushToken = "secret-token-value-0123456789"
	if err := s.Send(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, j.PushToken) || !strings.Contains(out, "approval_id=l") || !strings.Contains(out, "device_id=dev-l") {
		t.Errorf("log = %q", out)
	}
}
