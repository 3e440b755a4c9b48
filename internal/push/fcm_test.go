package push

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeFCM speaks just enough of FCM HTTP v1 and Google's OAuth token endpoint
// for the real SDK and auth library to work offline. The push token picks the
// response.
type fakeFCM struct {
	t   testing.TB
	srv *httptest.Server
	key *rsa.PrivateKey

	mu         sync.Mutex
	sends      []fcmSend
	tokenCalls int
}

type fcmSend struct {
	path, auth string
	body       map[string]any
}

func newFakeFCM(t testing.TB) *fakeFCM {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFCM{t: t, key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", f.send)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// credentials is a service-account key file whose token_uri is the fake.
func (f *fakeFCM) credentials() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(f.key)
	if err != nil {
		f.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "proj-1",
		"private_key_id": "kid-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "pusher@proj-1.iam.gserviceaccount.com",
		"client_id":      "1234",
		"token_uri":      f.srv.URL + "/token",
	})
	return b
}

// token checks the signed JWT assertion with the service account's public
// key and hands out an access token.
func (f *fakeFCM) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.tokenCalls++
	f.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.t.Errorf("grant_type = %q", g)
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		f.t.Errorf("assertion is not a JWT")
		http.Error(w, "bad assertion", 400)
		return
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&f.key.PublicKey, crypto.SHA256, sum[:], sig); err != nil {
		f.t.Errorf("assertion signature: %v", err)
	}
	var claims map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(raw, &claims)
	if claims["iss"] != "pusher@proj-1.iam.gserviceaccount.com" || claims["aud"] != f.srv.URL+"/token" {
		f.t.Errorf("assertion claims = %v", claims)
	}
	if s, _ := claims["scope"].(string); !strings.Contains(s, "https://www.googleapis.com/auth/firebase.messaging") &&
		!strings.Contains(s, "https://www.googleapis.com/auth/cloud-platform") {
		f.t.Errorf("assertion scope = %q", s)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"access_token":"x-access","token_type":"Bearer","expires_in":3600}`)
}

func (f *fakeFCM) send(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.t.Errorf("send body: %v", err)
	}
	f.mu.Lock()
	f.sends = append(f.sends, fcmSend{path: r.URL.Path, auth: r.Header.Get("Authorization"), body: body})
	f.mu.Unlock()
	msg, _ := body["message"].(map[string]any)
	tok, _ := msg["token"].(string)
	w.Header().Set("Content-Type", "application/json")
	fcmErr := func(code int, status, errorCode, extra string) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, `{"error":{"code":`+itoa(code)+`,"message":"`+status+` from fake","status":"`+status+
			`","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"`+errorCode+`"}`+extra+`]}}`)
	}
	switch tok {
	case "tok-unregistered":
		fcmErr(404, "NOT_FOUND", "UNREGISTERED", "")
	case "tok-malformed":
		fcmErr(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
			`,{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"The registration token is not a valid FCM registration token"}]}`)
	case "tok-badmessage":
		fcmErr(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
			`,{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.android.ttl","description":"Invalid value"}]}`)
	case "tok-unavailable":
		// Longer than the SDK's own 2-minute retry cap, so it hands the
		// error straight back instead of sleeping.
		w.Header().Set("Retry-After", "300")
		fcmErr(503, "UNAVAILABLE", "UNAVAILABLE", "")
	case "tok-quota":
		w.Header().Set("Retry-After", "7")
		fcmErr(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "")
	case "tok-internal":
		fcmErr(500, "INTERNAL", "INTERNAL", "")
	case "tok-mismatch":
		fcmErr(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "")
	case "tok-odd":
		// Provider text no relying party should see: a line break, markup,
		// a project name and the token itself.
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"error":{"code":400,"message":"`+oddProviderText+` tok-odd","status":"FAILED_PRECONDITION"}}`)
	default:
		_, _ = io.WriteString(w, `{"name":"projects/`+r.PathValue("project")+`/messages/1"}`)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func (f *fakeFCM) lastSend(t *testing.T) fcmSend {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sends) == 0 {
		t.Fatal("no send reached the fake FCM")
	}
	return f.sends[len(f.sends)-1]
}

func (f *fakeFCM) sendCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sends)
}

var fcmNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestFCM(t testing.TB, f *fakeFCM) *FCM {
	t.Helper()
	s, err := NewFCM(context.Background(), FCMConfig{
		CredentialsJSON: f.credentials(),
		Endpoint:        f.srv.URL + "/v1",
		Now:             func() time.Time { return fcmNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fcmJob(token string) Job {
	return Job{RequestID: "req-1", DeviceID: "dev-1", Platform: PlatformAndroid, PushToken: token,
		Kind: KindLogin, Locale: "nl-NL", RelyingParty: "Mijn Portal", ExpiresAt: fcmNow.Add(90*time.Second + 300*time.Millisecond)}
}

func TestFCMSendsMinimalMessage(t *testing.T) {
	f := newFakeFCM(t)
	s := newTestFCM(t, f)
	if err := s.Send(t.Context(), fcmJob("tok-ok")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := f.lastSend(t)
	if got.path != "/v1/projects/proj-1/messages:send" {
		t.Errorf("path = %q (project id should come from the credentials)", got.path)
	}
	if got.auth != "Bearer x-access" {
		t.Errorf("Authorization = %q, want the token from the fake token endpoint", got.auth)
	}
	want := map[string]any{
		"token": "tok-ok",
		"data":  map[string]any{"request_id": "req-1", "kind": "LOGIN"},
		"notification": map[string]any{
			"title": "Verzoek om goedkeuring",
			"body":  "Mijn Portal vraagt je goedkeuring om in te loggen. Open de app om het verzoek goed te keuren of af te wijzen.",
		},
		"android": map[string]any{"priority": "high", "ttl": "91s", "collapse_key": "req-1"},
		"apns": map[string]any{"headers": map[string]any{
			"apns-priority":    "10",
			"apns-push-type":   "alert",
			"apns-collapse-id": "req-1",
			"apns-expiration":  itoa(int(fcmJob("").ExpiresAt.Unix())),
		}},
	}
	gotJSON, _ := json.Marshal(got.body["message"])
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("message =\n%s\nwant\n%s", gotJSON, wantJSON)
	}

	// The access token is cached, not fetched per push.
	if err := s.Send(t.Context(), fcmJob("tok-ok")); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	calls := f.tokenCalls
	f.mu.Unlock()
	if calls != 1 {
		t.Errorf("token endpoint called %d times, want 1", calls)
	}
}

func TestFCMErrors(t *testing.T) {
	f := newFakeFCM(t)
	s := newTestFCM(t, f)
	for _, tc := range []struct {
		token      string
		dead, temp bool
		retryAfter time.Duration
		reason     Reason
	}{
		{token: "tok-unregistered", dead: true, reason: ReasonTokenInvalid},
		{token: "tok-malformed", dead: true, reason: ReasonTokenInvalid},
		{token: "tok-badmessage", reason: ReasonRejected},
		{token: "tok-mismatch", reason: ReasonNotConfigured},
		{token: "tok-unavailable", temp: true, retryAfter: 300 * time.Second, reason: ReasonProviderUnavailable},
		{token: "tok-quota", temp: true, retryAfter: 7 * time.Second, reason: ReasonRateLimited},
		{token: "tok-internal", temp: true, reason: ReasonProviderUnavailable},
		{token: "tok-odd", reason: ReasonRejected},
	} {
		t.Run(tc.token, func(t *testing.T) {
			before := f.sendCount()
			err := s.Send(t.Context(), fcmJob(tc.token))
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if n := f.sendCount() - before; n != 1 {
				t.Errorf("%d requests, want 1", n)
			}
			if got := errors.Is(err, ErrTokenDead); got != tc.dead {
				t.Errorf("ErrTokenDead = %v, want %v (%v)", got, tc.dead, err)
			}
			if got := IsTemporary(err); got != tc.temp {
				t.Errorf("IsTemporary = %v, want %v (%v)", got, tc.temp, err)
			}
			var te *TemporaryError
			if errors.As(err, &te) && te.RetryAfter != tc.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", te.RetryAfter, tc.retryAfter)
			}
			if tc.token != "tok-odd" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("error %q names the token", err)
			}
			checkReason(t, err, tc.reason)
		})
	}
}

func TestFCMExpiredJobIsNotSent(t *testing.T) {
	f := newFakeFCM(t)
	s := newTestFCM(t, f)
	j := fcmJob("tok-ok")
	j.ExpiresAt = fcmNow
	if err := s.Send(t.Context(), j); !errors.Is(err, ErrExpired) {
		t.Fatalf("Send = %v, want ErrExpired", err)
	}
	if n := f.sendCount(); n != 0 {
		t.Errorf("%d requests, want 0", n)
	}
}
