package servertest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/server"
)

// FakeFCM is a local server speaking FCM HTTP v1 and Google's token
// endpoint, so the real FCM client library pushes to it offline. Push
// tokens starting with "dead-" are answered UNREGISTERED, tokens starting
// with "odd-" are refused with OddFCMText as the error message (a provider
// error no relying party should see); others succeed.
type FakeFCM struct {
	URL string
	// Pushes receives the data of every push that reached it.
	Pushes chan map[string]string
	// Received gets every push that reached it, with its alert text.
	Received chan ReceivedPush
	key      *rsa.PrivateKey
}

// OddFCMText is the error text the fake FCM answers "odd-" tokens with: a
// line break, markup and an internal project name, followed by the token.
const OddFCMText = "Project proj-internal-7 quota\n<b>exceeded</b> for"

// NewFakeFCM starts a fake FCM for the test.
func NewFakeFCM(t testing.TB) *FakeFCM {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &FakeFCM{Pushes: make(chan map[string]string, 1000), Received: make(chan ReceivedPush, 1000), key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"x","token_type":"Bearer","expires_in":3600}`)
	})
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Message struct {
				Token        string            `json:"token"`
				Data         map[string]string `json:"data"`
				Notification struct {
					Title string `json:"title"`
					Body  string `json:"body"`
				} `json:"notification"`
			} `json:"message"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(body.Message.Token, "odd-") {
			w.WriteHeader(http.StatusBadRequest)
			msg, _ := json.Marshal(OddFCMText + " " + body.Message.Token)
			_, _ = io.WriteString(w, `{"error":{"code":400,"message":`+string(msg)+`,"status":"FAILED_PRECONDITION"}}`)
			return
		}
		if strings.HasPrefix(body.Message.Token, "dead-") {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"code":404,"message":"not found","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`)
			return
		}
		select {
		case f.Pushes <- body.Message.Data:
		default:
		}
		select {
		case f.Received <- ReceivedPush{Provider: "fcm", Token: body.Message.Token, Title: body.Message.Notification.Title,
			Body: body.Message.Notification.Body, Data: body.Message.Data}:
		default:
		}
		_, _ = io.WriteString(w, `{"name":"projects/p/messages/1"}`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// Sender returns the real FCM client pointed at the fake.
func (f *FakeFCM) Sender(t testing.TB) push.Sender {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(f.key)
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "proj-1", "private_key_id": "kid-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "pusher@proj-1.iam.gserviceaccount.com", "client_id": "1", "token_uri": f.URL + "/token",
	})
	s, err := push.NewFCM(context.Background(), push.FCMConfig{CredentialsJSON: creds, Endpoint: f.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// WithPushSender makes the server push through s.
func WithPushSender(s push.Sender) func(*server.Options) {
	return func(o *server.Options) { o.PushSender = s }
}
