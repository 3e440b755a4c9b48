package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	ptotp "github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pushauth/pushauth/client"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// testWorld is a pushauth server, the portal in front of it, and a phone.
type testWorld struct {
	ts     *servertest.TestServer
	portal *portal
	web    *httptest.Server
	app    *phone.Device
	logs   *servertest.LogBuffer
}

// testPassword is every demo user's password.
const testPassword = "correct horse"

// newTestWorld starts pushauth (number matching on, 30-second requests),
// the portal over TLS with users jan and piet, and registers a phone.
func newTestWorld(t *testing.T, dbURL string) *testWorld {
	t.Helper()
	ts := servertest.New(t, dbURL)
	rp := ts.CreateRelyingParty(t, "mijn-portal", &pushauthv1.RelyingPartyPolicy{
		NumberMatching: pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER,
		ApprovalTtl:    durationpb.New(30 * time.Second),
	})
	_, key := ts.CreateAPIKey(t, rp.GetId())
	c, err := client.Dial(client.Config{Addrs: []string{ts.Addr}, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	us := users{}
	for _, u := range []*user{
		{Username: "jan", Name: "Jan de Vries", Email: "jan@example.nl", PasswordHash: string(hash)},
		{Username: "piet", Name: "Piet Jansen", PasswordHash: string(hash)},
	} {
		if err := us.add(u); err != nil {
			t.Fatal(err)
		}
	}
	logs := &servertest.LogBuffer{}
	p, err := newPortal(c, us, "Mijn Portal", slog.New(slog.NewTextHandler(logs, nil)), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewTLSServer(p.handler())
	t.Cleanup(web.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("portal log:\n%s", logs.String())
		}
	})
	ph := servertest.NewPhone(t, false)
	ts.Register(t, ph, "+31612345678")
	return &testWorld{ts: ts, portal: p, web: web, app: ph.App(ts), logs: logs}
}

// browser is a cookie-keeping HTTP client of the portal.
type browser struct {
	t    *testing.T
	w    *testWorld
	c    *http.Client
	lang string
}

func (w *testWorld) browser(t *testing.T) *browser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := w.web.Client()
	c.Jar = jar
	return &browser{t: t, w: w, c: c, lang: "nl"}
}

// response is a page as the browser got it, after redirects.
type response struct {
	code int
	path string
	body string
	h    http.Header
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	req.Header.Set("Accept-Language", b.lang)
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return response{code: resp.StatusCode, path: resp.Request.URL.Path, body: string(body), h: resp.Header}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, err := http.NewRequestWithContext(servertest.Context(b.t), http.MethodGet, b.w.web.URL+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// post submits a form of the page last shown at from, with its CSRF token.
func (b *browser) post(from response, path string, form url.Values) response {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(from.body)
	if m == nil {
		b.t.Fatalf("no CSRF token on %s:\n%s", from.path, from.body)
	}
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", m[1])
	return b.postRaw(path, form)
}

func (b *browser) postRaw(path string, form url.Values) response {
	b.t.Helper()
	req, err := http.NewRequestWithContext(servertest.Context(b.t), http.MethodPost, b.w.web.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// signIn posts the password of user.
func (b *browser) signIn(user string) response {
	b.t.Helper()
	return b.post(b.get("/login"), "/login", url.Values{"username": {user}, "password": {testPassword}})
}

// want checks the page's path and that it holds every string.
func (r response) want(t *testing.T, path string, has ...string) {
	t.Helper()
	if r.path != path {
		t.Fatalf("at %s (%d), want %s:\n%s", r.path, r.code, path, r.body)
	}
	for _, s := range has {
		if !strings.Contains(r.body, s) {
			t.Fatalf("%s lacks %q:\n%s", path, s, r.body)
		}
	}
}

var numberShown = regexp.MustCompile(`id="number">([0-9]+)<`)

// number is the number the wait page shows.
func (r response) number(t *testing.T) string {
	t.Helper()
	m := numberShown.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no number on %s:\n%s", r.path, r.body)
	}
	return m[1]
}

// link links the phone to user through the portal: sign-in, the two words,
// the phone's approval.
func (w *testWorld) link(t *testing.T, b *browser, user string) response {
	t.Helper()
	page := b.signIn(user)
	page.want(t, "/link", "twee woorden")
	words, _, err := w.app.PairingPhrase(servertest.Context(t))
	if err != nil {
		t.Fatal(err)
	}
	page = b.post(page, "/link", url.Values{"words": {strings.ToUpper(words)}})
	page.want(t, "/wait", "Bevestig op je telefoon")
	dr, err := w.app.Next(servertest.Context(t), pushauthv1.RequestKind_REQUEST_KIND_PAIRING)
	if err != nil {
		t.Fatal(err)
	}
	if dr.GetAccountLabel() != "jan@example.nl" && user == "jan" || dr.GetContext().GetAppName() != "Mijn Portal" {
		t.Fatalf("pairing request as shown: %v", dr)
	}
	if _, err := w.app.Approve(servertest.Context(t), dr, ""); err != nil {
		t.Fatal(err)
	}
	return b.get("/result")
}

// nextLogin is the login request the phone got.
func (w *testWorld) nextLogin(t *testing.T) *pushauthv1.DeviceRequest {
	t.Helper()
	dr, err := w.app.Next(servertest.Context(t), pushauthv1.RequestKind_REQUEST_KIND_LOGIN)
	if err != nil {
		t.Fatal(err)
	}
	return dr
}

// totpCode is the code of secret at the server's time.
func (w *testWorld) totpCode(t *testing.T, secret string) string {
	t.Helper()
	c, err := ptotp.GenerateCodeCustom(secret, w.ts.Clock.Now(), ptotp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
