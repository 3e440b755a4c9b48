package cluster

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"

	"github.com/pushauth/pushauth/internal/push"
)

// FakeFCM is an FCM HTTP v1 endpoint with Google's OAuth token endpoint,
// so every replica's real FCM client pushes to it over loopback. It hands
// each push to the simulated phone that registered the token and counts
// the deliveries of each request id, which is how duplicated pushes show.
type FakeFCM struct {
	URL string
	srv *httptest.Server
	key *rsa.PrivateKey

	mu     sync.Mutex
	phones map[string]chan string // push token -> request ids pushed to it
	counts map[string]int         // request id -> pushes delivered
}

// phoneBuffer is how many undelivered pushes a simulated phone holds.
const phoneBuffer = 256

func newFakeFCM() (*FakeFCM, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	f := &FakeFCM{key: key, phones: map[string]chan string{}, counts: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"harness","token_type":"Bearer","expires_in":3600}`)
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
		id := body.Message.Data[push.DataRequestID]
		f.mu.Lock()
		f.counts[id]++
		ch := f.phones[body.Message.Token]
		f.mu.Unlock()
		if ch != nil {
			select {
			case ch <- id:
			default:
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"name":"projects/harness/messages/1"}`)
	})
	f.srv = httptest.NewServer(mux)
	f.URL = f.srv.URL
	return f, nil
}

// Close stops the endpoint.
func (f *FakeFCM) Close() { f.srv.Close() }

// phone registers a push token and returns the channel its pushes arrive on.
func (f *FakeFCM) phone(token string) <-chan string {
	ch := make(chan string, phoneBuffer)
	f.mu.Lock()
	f.phones[token] = ch
	f.mu.Unlock()
	return ch
}

// Pushes is how many pushes of request id reached FCM.
func (f *FakeFCM) Pushes(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[id]
}

// writeCredentials writes a service-account file whose token endpoint is
// the fake, for pushauthd's fcm_credentials_file.
func (f *FakeFCM) writeCredentials(path string) error {
	der, err := x509.MarshalPKCS8PrivateKey(f.key)
	if err != nil {
		return err
	}
	creds, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "harness", "private_key_id": "kid-1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "pusher@harness.iam.gserviceaccount.com", "client_id": "1", "token_uri": f.URL + "/token",
	})
	return os.WriteFile(path, creds, 0o600)
}
