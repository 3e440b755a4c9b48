package httpapi_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// client is a login server with nothing but an HTTP client.
type client struct {
	t     *testing.T
	base  string
	token string
}

type response struct {
	code   int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (c client) do(method, path string, body any, headers ...string) response {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(servertest.Context(c.t), method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	out := response{code: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out.body); err != nil {
			c.t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, raw)
		}
	}
	return out
}

// ok does a call that must succeed and returns its JSON body.
func (c client) ok(method, path string, body any) map[string]any {
	c.t.Helper()
	r := c.do(method, path, body)
	if r.code != http.StatusOK {
		c.t.Fatalf("%s %s = %d %s", method, path, r.code, r.raw)
	}
	return r.body
}

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		mm, _ := v.(map[string]any)
		v = mm[p]
	}
	s, _ := v.(string)
	return s
}

// A login server with only an HTTP client does a whole login: it pairs a
// phone, creates an approval, waits for it (long poll and NDJSON stream),
// and verifies the signed decision with the device's key.
func TestLoginOverHTTP(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		admin := client{t: t, base: ts.HTTPURL, token: ts.AdminToken}
		rp := admin.ok("POST", "/v1/admin/relying-parties", map[string]any{"name": "portal", "displayName": "Portal"})
		rpID := str(rp, "relyingParty", "id")
		key := admin.ok("POST", "/v1/admin/relying-parties/"+rpID+"/api-keys", map[string]any{"description": "php"})
		login := client{t: t, base: ts.HTTPURL, token: str(key, "secret")}
		if who := login.ok("GET", "/v1/whoami", nil); str(who, "relyingParty", "id") != rpID {
			t.Fatalf("whoami = %v", who)
		}

		// The app's side (gRPC, as the app speaks it).
		phone := servertest.NewPhone(t, false)
		ts.Register(t, phone, "+31612345678")
		ph, err := ts.Device.CreatePairingPhrase(ts.WithToken(servertest.Context(t), phone.Credential), &pushauthv1.CreatePairingPhraseRequest{})
		if err != nil {
			t.Fatal(err)
		}

		claim := login.ok("POST", "/v1/pairings", map[string]any{"phrase": ph.GetPhrase(), "userRef": "jan", "accountLabel": "jan@example.nl"})
		pairID := str(claim, "requestId")
		if _, err := ts.Decide(t, phone, ts.Pending(t, phone), pushauthv1.Decision_DECISION_APPROVE, ""); err != nil {
			t.Fatalf("approve pairing: %v", err)
		}
		if got := login.ok("GET", "/v1/requests/"+pairID+":await", nil); str(got, "request", "status") != "REQUEST_STATUS_APPROVED" {
			t.Fatalf("pairing await = %v", got)
		}

		created := login.ok("POST", "/v1/approvals", map[string]any{
			"userRef": "jan",
			"context": map[string]any{"appName": "Portal", "ipAddress": "192.0.2.7", "browser": "Firefox"},
		})
		id := str(created, "requestId")
		if id == "" || str(created, "numberMatching") == "" {
			t.Fatalf("CreateApproval = %v", created)
		}
		// A zero timeout answers with the state as it is.
		if got := login.ok("GET", "/v1/requests/"+id+":await?timeout=0s", nil); str(got, "request", "status") != "REQUEST_STATUS_PENDING" {
			t.Fatalf("await 0s = %v", got)
		}

		// The stream, read line by line while the phone decides.
		lines := make(chan map[string]any, 16)
		streamErr := make(chan error, 1)
		req, _ := http.NewRequestWithContext(servertest.Context(t), "GET", ts.HTTPURL+"/v1/requests/"+id+":wait", nil)
		req.Header.Set("Authorization", "Bearer "+login.token)
		go func() {
			defer close(lines)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				streamErr <- err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
				streamErr <- fmt.Errorf("stream answered %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
				return
			}
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				var m map[string]any
				if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
					streamErr <- fmt.Errorf("line %q: %v", sc.Text(), err)
					return
				}
				lines <- m
			}
			streamErr <- sc.Err()
		}()
		// The first line (progress: queued) proves the stream is open
		// before the decision.
		first, ok := <-lines
		if !ok || first["result"] == nil {
			t.Fatalf("first stream line = %v (%v)", first, <-streamErr)
		}

		dr := ts.Pending(t, phone)
		answer := ""
		if dr.GetNumberMatching() != pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NONE {
			answer = str(created, "number")
		}
		if _, err := ts.Decide(t, phone, dr, pushauthv1.Decision_DECISION_APPROVE, answer); err != nil {
			t.Fatalf("approve login: %v", err)
		}

		var last map[string]any
		for m := range lines {
			last = m
		}
		if err := <-streamErr; err != nil {
			t.Fatalf("stream: %v", err)
		}
		if got := str(last, "result", "result", "status"); got != "REQUEST_STATUS_APPROVED" {
			t.Fatalf("last stream line = %v", last)
		}

		final := login.ok("GET", "/v1/requests/"+id+":await?timeout=30s", nil)
		r, _ := final["request"].(map[string]any)
		if str(r, "status") != "REQUEST_STATUS_APPROVED" {
			t.Fatalf("await = %v", final)
		}
		// Verify the signed decision as a login server would.
		payload, _ := base64.StdEncoding.DecodeString(str(r, "signedDecision", "payload"))
		sig, _ := base64.StdEncoding.DecodeString(str(r, "signedDecision", "signature"))
		dev := str(r, "signedDecision", "deviceId")
		keyResp := login.ok("GET", "/v1/devices/"+dev+"/key", nil)
		der, _ := base64.StdEncoding.DecodeString(str(keyResp, "publicKey"))
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			t.Fatalf("device key: %v", err)
		}
		digest := sha256.Sum256(payload)
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], sig) {
			t.Fatal("the signed decision does not verify with the device key")
		}
		for _, want := range []string{"request_id=" + id + "\n", "decision=APPROVE\n", "relying_party_id=" + rpID + "\n", "user_ref=jan\n"} {
			if !bytes.Contains(payload, []byte(want)) {
				t.Errorf("signed payload lacks %q:\n%s", want, payload)
			}
		}
	})
}

// Errors are google.rpc.Status JSON with the HTTP status of their code,
// the request id and, where gRPC sends RetryInfo, Retry-After.
func TestErrorsOverHTTP(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url, func(o *server.Options) {
			o.Limits.APIKeyRate = 1
			o.Limits.APIKeyBurst = 2
		})
		rp := ts.CreateRelyingParty(t, "portal", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		anon := client{t: t, base: ts.HTTPURL}
		login := client{t: t, base: ts.HTTPURL, token: key}

		r := anon.do("GET", "/v1/whoami", nil, "X-Request-Id", "req-abc-123")
		if r.code != http.StatusUnauthorized || r.body["code"] != float64(16) || r.body["message"] == "" {
			t.Errorf("no credentials = %d %s", r.code, r.raw)
		}
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
		}
		if got := r.header.Get("X-Request-Id"); got != "req-abc-123" {
			t.Errorf("X-Request-Id = %q, want the client's", got)
		}
		if !ts.Logs.Contains("req-abc-123") {
			t.Error("the server log does not name the client's request id")
		}

		r = login.do("POST", "/v1/approvals", map[string]any{"userRef": ""})
		if r.code != http.StatusBadRequest || r.body["code"] != float64(3) {
			t.Fatalf("empty user_ref = %d %s", r.code, r.raw)
		}
		details, _ := r.body["details"].([]any)
		if len(details) == 0 || !strings.Contains(string(r.raw), "type.googleapis.com/google.rpc.BadRequest") || !strings.Contains(string(r.raw), "user_ref") {
			t.Errorf("InvalidArgument details = %s", r.raw)
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id on an error")
		}

		r = login.do("GET", "/v1/requests/req_nope", nil)
		if r.code != http.StatusNotFound || r.body["code"] != float64(5) {
			t.Errorf("unknown request = %d %s", r.code, r.raw)
		}
		// The burst of 2 is spent (the clock is frozen): the next call is
		// refused with the delay as Retry-After.
		r = login.do("GET", "/v1/whoami", nil)
		if r.code != http.StatusTooManyRequests || r.body["code"] != float64(8) || r.header.Get("Retry-After") != "1" {
			t.Errorf("over the rate = %d Retry-After %q %s", r.code, r.header.Get("Retry-After"), r.raw)
		}
		if !strings.Contains(string(r.raw), "google.rpc.RetryInfo") {
			t.Errorf("no RetryInfo in %s", r.raw)
		}

		r = anon.do("GET", "/v1/no-such-thing", nil)
		if r.code != http.StatusNotFound || r.body["code"] != float64(5) {
			t.Errorf("unknown path = %d %s", r.code, r.raw)
		}
		r = anon.do("POST", "/v1/approvals", nil)
		if r.code != http.StatusUnauthorized {
			t.Errorf("POST without credentials = %d %s", r.code, r.raw)
		}
		// Body that is not JSON.
		req, _ := http.NewRequestWithContext(servertest.Context(t), "POST", ts.HTTPURL+"/v1/approvals", strings.NewReader("{nope"))
		req.Header.Set("Authorization", "Bearer "+ts.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("malformed JSON = %d", resp.StatusCode)
		}
	})
}
