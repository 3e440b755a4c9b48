package main

import (
	"bufio"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// The whole journey through the portal's handlers: link the app with its
// two words, sign in again with the number, the settings.
func TestJourney(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, dbURL string) {
		w := newTestWorld(t, dbURL)
		b := w.browser(t)
		ctx := servertest.Context(t)

		login := b.get("/")
		login.want(t, "/login", "Gebruikersnaam", `href="?lang=en"`)
		for h, want := range map[string]string{
			"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Cache-Control": "no-store",
		} {
			if got := login.h.Get(h); got != want {
				t.Errorf("%s: %q, want %q", h, got, want)
			}
		}
		w.link(t, b, "jan").want(t, "/home", "Jan de Vries")

		// Sign out, and in again: the phone is asked, the page shows the
		// number, the phone types it.
		b.post(b.get("/home"), "/logout", nil).want(t, "/login")
		if r := b.get("/home"); r.path != "/login" {
			t.Fatalf("after sign-out /home is %s", r.path)
		}
		wait := b.signIn("jan")
		wait.want(t, "/wait", "Typ dit getal in de app", `src="/static/wait.js"`)
		number := wait.number(t)
		dr := w.nextLogin(t)
		if dr.GetNumberMatching() != pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER || dr.GetContext().GetAppName() != "Mijn Portal" {
			t.Fatalf("request as shown: %v", dr)
		}
		if dr.GetContext().GetIpAddress() != "127.0.0.1" {
			t.Errorf("the phone shows IP %q", dr.GetContext().GetIpAddress())
		}
		if _, err := w.app.Approve(ctx, dr, number); err != nil {
			t.Fatal(err)
		}
		b.get("/result").want(t, "/home", "Je bent ingelogd als")

		// Settings: the phone is listed; English on request.
		b.lang = "en"
		settings := b.get("/settings?lang=en")
		settings.want(t, "/settings", "Linked phones", "Test phone", "android")
	})
}

func TestRefusals(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, dbURL string) {
		w := newTestWorld(t, dbURL)
		b := w.browser(t)
		ctx := servertest.Context(t)
		w.link(t, b, "jan").want(t, "/home")
		b.post(b.get("/home"), "/logout", nil)

		// Denied on the phone.
		b.signIn("jan").want(t, "/wait")
		if _, err := w.app.Deny(ctx, w.nextLogin(t)); err != nil {
			t.Fatal(err)
		}
		refused := b.get("/result")
		refused.want(t, "/result", `data-outcome="denied"`, "Inloggen geweigerd")
		if r := b.get("/home"); r.path != "/login" {
			t.Fatalf("a denied login reached %s", r.path)
		}

		// Right after, the user is backed off: the page says how long.
		backoff := b.post(b.signIn("jan"), "/approve", nil) // sign-in itself already tries
		backoff.want(t, "/approve", `data-outcome="backoff"`, "seconden")

		// A wrong number.
		w.ts.Clock.Advance(30 * time.Second)
		wait := b.signIn("jan")
		wait.want(t, "/wait")
		wrong := "00"
		if wait.number(t) == wrong {
			wrong = "11"
		}
		if _, err := w.app.Approve(ctx, w.nextLogin(t), wrong); err != nil {
			t.Fatal(err)
		}
		b.get("/result").want(t, "/result", `data-outcome="mismatch"`, "Verkeerd getal")

		// Expiry: nobody answers.
		w.ts.Clock.Advance(time.Minute)
		b.signIn("jan").want(t, "/wait")
		w.nextLogin(t)
		w.ts.Clock.Advance(31 * time.Second)
		if _, err := w.ts.Server.Engine.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		b.get("/result").want(t, "/result", `data-outcome="expired"`, "Opnieuw proberen")

		// Fraud reported.
		w.ts.Clock.Advance(2 * time.Minute)
		b.signIn("jan").want(t, "/wait")
		if _, err := w.app.Answer(ctx, w.nextLogin(t), phone.Answer{Decision: pushauthv1.Decision_DECISION_REPORT_FRAUD}); err != nil {
			t.Fatal(err)
		}
		fraud := b.get("/result")
		fraud.want(t, "/result", `data-outcome="fraud"`, "Wijzig je wachtwoord")
		if strings.Contains(fraud.body, `id="retry"`) {
			t.Error("the fraud page offers to try again")
		}

		// Unknown words; wrong password; a form without its CSRF token.
		page := b.signIn("piet")
		page.want(t, "/link")
		b.post(page, "/link", url.Values{"words": {"mango tulip"}}).want(t, "/link", "Deze woorden kennen we niet")
		b.post(b.get("/login"), "/login", url.Values{"username": {"jan"}, "password": {"wrong"}}).want(t, "/login", "klopt niet")
		if r := b.postRaw("/login", url.Values{"username": {"jan"}, "password": {testPassword}}); r.code != http.StatusForbidden {
			t.Fatalf("a POST without CSRF token: %d", r.code)
		}
	})
}

// Live progress over server-sent events, then "done".
func TestEvents(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, dbURL string) {
		w := newTestWorld(t, dbURL)
		b := w.browser(t)
		w.link(t, b, "jan")
		b.post(b.get("/home"), "/logout", nil)
		number := b.signIn("jan").number(t)

		req, err := http.NewRequestWithContext(servertest.Context(t), http.MethodGet, w.web.URL+"/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := b.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Fatalf("Content-Type %q", ct)
		}
		lines := bufio.NewScanner(resp.Body)
		next := func() (string, string) {
			var event, data string
			for lines.Scan() {
				switch l := lines.Text(); {
				case strings.HasPrefix(l, "event: "):
					event = strings.TrimPrefix(l, "event: ")
				case strings.HasPrefix(l, "data: "):
					data = strings.TrimPrefix(l, "data: ")
				case l == "" && event != "":
					return event, data
				}
			}
			t.Fatalf("the stream ended: %v", lines.Err())
			return "", ""
		}
		dr := w.nextLogin(t) // the phone opens it: "seen"
		for {
			if ev, data := next(); ev == "progress" && data == "seen" {
				break
			}
		}
		if _, err := w.app.Approve(servertest.Context(t), dr, number); err != nil {
			t.Fatal(err)
		}
		for {
			ev, data := next()
			if ev == "done" {
				if data != "/result" {
					t.Fatalf("done goes to %q", data)
				}
				break
			}
		}
		b.get("/result").want(t, "/home")
	})
}

var secretShown = regexp.MustCompile(`id="secret">([A-Z2-7]+)<`)

// Enrol an authenticator app in the settings, then sign in with its code.
func TestAuthenticatorApp(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, dbURL string) {
		w := newTestWorld(t, dbURL)
		b := w.browser(t)
		w.link(t, b, "jan").want(t, "/home")

		settings := b.get("/settings")
		settings.want(t, "/settings", "Er is geen authenticator-app ingesteld")
		enroll := b.post(settings, "/settings/enroll-app", nil)
		enroll.want(t, "/settings", `src="data:image/png;base64,`, "Scan deze QR-code")
		m := secretShown.FindStringSubmatch(enroll.body)
		if m == nil {
			t.Fatalf("no secret shown:\n%s", enroll.body)
		}
		b.post(enroll, "/settings/confirm-app", url.Values{"code": {"000000"}}).want(t, "/settings/confirm-app", "Deze code klopt niet")
		done := b.post(enroll, "/settings/confirm-app", url.Values{"code": {w.totpCode(t, m[1])}})
		done.want(t, "/settings", "De authenticator-app is ingesteld", "jan@example.nl")
		b.post(done, "/logout", nil)

		// Sign in with a code instead of the phone.
		w.ts.Clock.Advance(30 * time.Second)
		wait := b.signIn("jan")
		wait.want(t, "/wait", `href="/totp"`)
		totp := b.get("/totp")
		totp.want(t, "/totp", "Code uit je authenticator-app")
		b.post(totp, "/totp", url.Values{"code": {"123456"}}).want(t, "/totp", "Deze code klopt niet")
		b.post(totp, "/totp", url.Values{"code": {w.totpCode(t, m[1])}}).want(t, "/home", "Jan de Vries")

		// Remove the app and the phone.
		settings = b.get("/settings")
		f := regexp.MustCompile(`name="factor" value="([^"]+)"`).FindStringSubmatch(settings.body)
		d := regexp.MustCompile(`name="device" value="([^"]+)"`).FindStringSubmatch(settings.body)
		if f == nil || d == nil {
			t.Fatalf("settings lack the app or the phone:\n%s", settings.body)
		}
		b.post(settings, "/settings/remove-app", url.Values{"factor": {f[1]}}).want(t, "/settings", "Verwijderd.")
		b.post(settings, "/settings/remove-phone", url.Values{"device": {d[1]}}).want(t, "/settings", "Er is geen telefoon gekoppeld")
	})
}

func TestSessionCookie(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, dbURL string) {
		w := newTestWorld(t, dbURL)
		resp, err := w.web.Client().Get(w.web.URL + "/login")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		cs := resp.Cookies()
		if len(cs) != 1 || cs[0].Name != sessionCookie || !cs[0].HttpOnly || !cs[0].Secure || cs[0].SameSite != http.SameSiteLaxMode {
			t.Fatalf("cookies: %+v", cs)
		}
	})
}

func TestFmtWait(t *testing.T) {
	nl, en := &session{lang: langNL}, &session{lang: langEN}
	for _, c := range []struct {
		s    *session
		d    time.Duration
		want string
	}{
		{nl, 10 * time.Second, "10 seconden"}, {en, 1 * time.Second, "1 second"}, {en, 1500 * time.Millisecond, "2 seconds"},
		{nl, 5 * time.Minute, "5 minuten"}, {en, 3 * time.Hour, "3 hours"}, {nl, 24 * time.Hour, "24 uur"},
	} {
		if got := fmtWait(c.s, c.d); got != c.want {
			t.Errorf("fmtWait(%s, %v) = %q, want %q", c.s.lang, c.d, got, c.want)
		}
	}
}

// Every key a template uses exists in both languages.
func TestMessagesComplete(t *testing.T) {
	for key := range messages[langNL] {
		if _, ok := messages[langEN][key]; !ok {
			t.Errorf("%q has no English text", key)
		}
	}
	for key := range messages[langEN] {
		if _, ok := messages[langNL][key]; !ok {
			t.Errorf("%q has no Dutch text", key)
		}
	}
	uses := regexp.MustCompile(`\.T\.([a-z_]+)`)
	entries, err := webFS.ReadDir("web")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, _ := webFS.ReadFile("web/" + e.Name())
		for _, m := range uses.FindAllStringSubmatch(string(b), -1) {
			if _, ok := messages[langNL][m[1]]; !ok {
				t.Errorf("%s uses %q, which has no text", e.Name(), m[1])
			}
		}
	}
}
