package servertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/server"
)

// ReceivedPush is a push as a (fake) provider received it: what the lock
// screen shows and the data the app gets.
type ReceivedPush struct {
	Provider    string // "fcm" or "apns"
	Token       string
	Title, Body string
	Data        map[string]string
}

// FakeAPNs is a local HTTP/2 TLS server speaking Apple's provider API, so the
// real APNs client pushes to it offline. Every push succeeds.
type FakeAPNs struct {
	// Received gets every push that reached it.
	Received chan ReceivedPush
	srv      *httptest.Server
	key      *ecdsa.PrivateKey
}

// NewFakeAPNs starts a fake APNs for the test.
func NewFakeAPNs(t testing.TB) *FakeAPNs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	f := &FakeAPNs{Received: make(chan ReceivedPush, 1000), key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /3/device/{token}", func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		p := ReceivedPush{Provider: "apns", Token: r.PathValue("token"), Data: map[string]string{}}
		for k, v := range body {
			if s, ok := v.(string); ok {
				p.Data[k] = s
			}
		}
		if aps, ok := body["aps"].(map[string]any); ok {
			if alert, ok := aps["alert"].(map[string]any); ok {
				p.Title, _ = alert["title"].(string)
				p.Body, _ = alert["body"].(string)
			}
		}
		select {
		case f.Received <- p:
		default:
		}
		w.Header().Set("apns-id", "11111111-2222-3333-4444-555555555555")
		w.WriteHeader(http.StatusOK)
	})
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// Sender returns the real APNs client pointed at the fake.
func (f *FakeAPNs) Sender(t testing.TB) push.Sender {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(f.key)
	if err != nil {
		t.Fatal(err)
	}
	s, err := push.NewAPNs(push.APNsConfig{
		KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), KeyID: "KEYID12345", TeamID: "TEAMID6789",
		Topic: "nl.example.authenticator", Host: f.srv.URL, HTTPClient: f.srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// WithPushProviders makes the server push through a router over fcm and
// apns, as pushauthd does with both configured: Android and FCM tokens to
// fcm, iOS APNs tokens (hex) to apns.
func WithPushProviders(fcm, apns push.Sender) func(*server.Options) {
	return func(o *server.Options) { o.PushSender = push.NewRouter(push.RouterConfig{FCM: fcm, APNs: apns}) }
}
