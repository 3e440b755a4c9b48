package push

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPNs is a local HTTP/2 TLS server speaking Apple's provider API. The
// device token picks the response.
type fakeAPNs struct {
	t   testing.TB
	srv *httptest.Server
	pub *ecdsa.PublicKey

	mu    sync.Mutex
	calls []apnsCall
	// verified is the last provider token that passed checkAuth: apns2
	// reuses one for up to an hour, so checking each again would only
	// make the benchmark measure ECDSA verification in the fake.
	verified string
}

type apnsCall struct {
	token  string
	header http.Header
	body   map[string]any
}

func newFakeAPNs(t testing.TB, pub *ecdsa.PublicKey) *fakeAPNs {
	t.Helper()
	f := &fakeAPNs{t: t, pub: pub}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /3/device/{token}", f.push)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPNs) push(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		f.t.Errorf("request over %s, APNs needs HTTP/2", r.Proto)
	}
	var body map[string]any
	raw, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		f.t.Errorf("payload %q: %v", raw, err)
	}
	tok := r.PathValue("token")
	f.mu.Lock()
	f.calls = append(f.calls, apnsCall{token: tok, header: r.Header.Clone(), body: body})
	f.mu.Unlock()
	if reason := f.checkAuth(r.Header.Get("Authorization")); reason != "" {
		f.t.Errorf("authorization: %s", reason)
		w.WriteHeader(403)
		_, _ = io.WriteString(w, `{"reason":"InvalidProviderToken"}`)
		return
	}
	w.Header().Set("apns-id", "11111111-2222-3333-4444-555555555555")
	switch tok {
	case "dead-unregistered":
		w.WriteHeader(410)
		_, _ = io.WriteString(w, `{"reason":"Unregistered","timestamp":1700000000000}`)
	case "dead-baddevicetoken":
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"reason":"BadDeviceToken"}`)
	case "busy":
		w.Header().Set("Retry-After", "12")
		w.WriteHeader(429)
		_, _ = io.WriteString(w, `{"reason":"TooManyRequests"}`)
	case "down":
		w.WriteHeader(503)
		_, _ = io.WriteString(w, `{"reason":"ServiceUnavailable"}`)
	case "wrong-topic":
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"reason":"DeviceTokenNotForTopic"}`)
	case "bad-topic":
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"reason":"BadTopic"}`)
	case "odd":
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"reason":"`+oddProviderText+`"}`)
	default:
		w.WriteHeader(200)
	}
}

// checkAuth verifies the provider token: an ES256 JWT by the test key with
// the key id and team id Apple expects. It returns "" when all is well.
func (f *fakeAPNs) checkAuth(h string) string {
	f.mu.Lock()
	seen := h == f.verified
	f.mu.Unlock()
	if seen {
		return ""
	}
	if reason := f.verifyJWT(h); reason != "" {
		return reason
	}
	f.mu.Lock()
	f.verified = h
	f.mu.Unlock()
	return ""
}

func (f *fakeAPNs) verifyJWT(h string) string {
	jwt, ok := strings.CutPrefix(h, "bearer ")
	if !ok {
		return "not a bearer token: " + h
	}
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "not a JWT"
	}
	var header, claims map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		return "undecodable JWT"
	}
	if header["alg"] != "ES256" || header["kid"] != "KEYID12345" {
		return "header " + string(hb)
	}
	if claims["iss"] != "TEAMID6789" {
		return "claims " + string(cb)
	}
	iat, _ := claims["iat"].(float64)
	if d := time.Since(time.Unix(int64(iat), 0)); d < -time.Minute || d > time.Hour {
		return "iat " + string(cb)
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if len(sig) != 64 {
		return "signature is not r||s"
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(f.pub, sum[:], r, s) {
		return "bad signature"
	}
	return ""
}

func (f *fakeAPNs) last(t *testing.T) apnsCall {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("no push reached the fake APNs")
	}
	return f.calls[len(f.calls)-1]
}

// newP8 returns a fresh APNs auth key as Apple ships it: PKCS#8 EC P-256 PEM.
func newP8(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func newTestAPNs(t testing.TB) (*APNs, *fakeAPNs) {
	t.Helper()
	key, p8 := newP8(t)
	f := newFakeAPNs(t, &key.PublicKey)
	s, err := NewAPNs(APNsConfig{
		KeyPEM: p8, KeyID: "KEYID12345", TeamID: "TEAMID6789", Topic: "nl.example.authenticator",
		Host: f.srv.URL, HTTPClient: f.srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

func apnsJob(token string) Job {
	return Job{RequestID: "req-9", DeviceID: "dev-9", Platform: PlatformIOS, PushToken: token,
		Kind: KindPairing, Locale: "en", ExpiresAt: time.Unix(1900000000, 0)}
}

func TestAPNsSendsAlert(t *testing.T) {
	s, f := newTestAPNs(t)
	if err := s.Send(t.Context(), apnsJob("aabbcc")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	c := f.last(t)
	if c.token != "aabbcc" {
		t.Errorf("device token = %q", c.token)
	}
	for h, want := range map[string]string{
		"apns-topic":       "nl.example.authenticator",
		"apns-collapse-id": "req-9",
		"apns-priority":    "10",
		"apns-expiration":  strconv.FormatInt(1900000000, 10),
		"apns-push-type":   "alert",
	} {
		if got := c.header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	want := `{"aps":{"alert":{"body":"Open the app to approve or deny it.","title":"Connect account"}},"kind":"PAIRING","request_id":"req-9"}`
	if got, _ := json.Marshal(c.body); string(got) != want {
		t.Errorf("payload =\n%s\nwant\n%s", got, want)
	}
}

func TestAPNsErrors(t *testing.T) {
	s, _ := newTestAPNs(t)
	for _, tc := range []struct {
		token      string
		dead, temp bool
		retryAfter time.Duration
		reason     Reason
	}{
		{token: "dead-unregistered", dead: true, reason: ReasonTokenInvalid},
		{token: "dead-baddevicetoken", dead: true, reason: ReasonTokenInvalid},
		{token: "busy", temp: true, retryAfter: 12 * time.Second, reason: ReasonRateLimited},
		{token: "down", temp: true, reason: ReasonProviderUnavailable},
		{token: "wrong-topic", reason: ReasonRejected},
		{token: "bad-topic", reason: ReasonNotConfigured},
		{token: "odd", reason: ReasonRejected},
	} {
		t.Run(tc.token, func(t *testing.T) {
			err := s.Send(t.Context(), apnsJob(tc.token))
			if err == nil {
				t.Fatal("Send succeeded")
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
			checkReason(t, err, tc.reason)
		})
	}
}

func TestAPNsUnreachableIsTemporary(t *testing.T) {
	s, f := newTestAPNs(t)
	f.srv.Close()
	const token = "aabbccddeeff00112233445566778899"
	err := s.Send(t.Context(), apnsJob(token))
	if !IsTemporary(err) {
		t.Fatalf("Send = %v, want a temporary error", err)
	}
	// The transport error quotes the URL, whose path is the token.
	if strings.Contains(err.Error(), token) {
		t.Errorf("error %q holds the device token", err)
	}
	checkReason(t, err, ReasonProviderUnavailable)
}

func TestNewAPNsKeyFile(t *testing.T) {
	_, p8 := newP8(t)
	path := filepath.Join(t.TempDir(), "AuthKey_KEYID12345.p8")
	if err := os.WriteFile(path, p8, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewAPNs(APNsConfig{KeyFile: path, KeyID: "KEYID12345", TeamID: "T", Topic: "b"}); err != nil {
		t.Fatalf("NewAPNs(key file): %v", err)
	}
	if _, err := NewAPNs(APNsConfig{KeyPEM: []byte("not a key"), KeyID: "K", TeamID: "T", Topic: "b"}); err == nil {
		t.Error("NewAPNs accepted a bad key")
	}
	if _, err := NewAPNs(APNsConfig{KeyPEM: p8, TeamID: "T", Topic: "b"}); err == nil {
		t.Error("NewAPNs accepted a missing key id")
	}
}
