package bench

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
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pushauth/pushauth/internal/push"
)

// fakeFCM is a local FCM HTTP v1 endpoint plus Google's OAuth token
// endpoint, so the real FCM client (push.NewFCM, firebase-admin-go) sends to
// it over loopback exactly as it would to fcm.googleapis.com. Every push is
// answered 200 and handed, by its device token, to the simulated phone that
// registered that token: the phone learns of a request the real way.
type fakeFCM struct {
	url string
	key *rsa.PrivateKey

	mu     sync.RWMutex
	phones map[string]chan string // push token -> request ids pushed to it

	sent    atomic.Int64 // pushes answered 200
	dropped atomic.Int64 // pushes to unknown tokens or full phone buffers
}

// phoneBuffer is how many undelivered pushes a simulated phone holds; a
// phone has at most a stale pairing push and its current login in flight.
const phoneBuffer = 64

func newFakeFCM(tb testing.TB) *fakeFCM {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	f := &fakeFCM{key: key, phones: map[string]chan string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"bench","token_type":"Bearer","expires_in":3600}`)
	})
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Message struct {
				Token string            `json:"token"`
				Data  map[string]string `json:"data"`
			} `json:"message"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, `{"error":{"code":400,"message":"bad json","status":"INVALID_ARGUMENT"}}`, http.StatusBadRequest)
			return
		}
		f.mu.RLock()
		ch := f.phones[body.Message.Token]
		f.mu.RUnlock()
		delivered := false
		if ch != nil {
			select {
			case ch <- body.Message.Data[push.DataRequestID]:
				delivered = true
			default:
			}
		}
		if !delivered {
			f.dropped.Add(1)
		}
		f.sent.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"projects/bench/messages/1"}`)
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// phone registers a push token and returns the channel its pushes arrive on.
func (f *fakeFCM) phone(token string) <-chan string {
	ch := make(chan string, phoneBuffer)
	f.mu.Lock()
	f.phones[token] = ch
	f.mu.Unlock()
	return ch
}

// sender is the production FCM client, authenticating with a service
// account whose token endpoint is the fake, and sending to the fake.
func (f *fakeFCM) sender(tb testing.TB) push.Sender {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(f.key)
	if err != nil {
		tb.Fatal(err)
	}
	creds, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "bench", "private_key_id": "kid-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "pusher@bench.iam.gserviceaccount.com", "client_id": "1", "token_uri": f.url + "/token",
	})
	s, err := push.NewFCM(context.Background(), push.FCMConfig{CredentialsJSON: creds, Endpoint: f.url + "/v1"})
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
