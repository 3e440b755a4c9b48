package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// screenshotsEnv names a directory to write each step's screenshot to (for
// docs/portal.md); unset, none are written.
const screenshotsEnv = "PUSHAUTH_PORTAL_SCREENSHOTS"

// chromium finds the browser. Outside CI a machine without it skips the
// test; in CI (CI=true) that is a failure, so CI never skips silently.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (CI=true): .ci/run installs Debian's chromium package")
	}
	t.Skip("chromium is not installed; apt-get install chromium to run the browser test")
	return ""
}

// TestBrowser drives headless Chromium through the journey a person takes,
// with a package phone phone answering: sign in, link the app with its two
// words, approve with the number, signed in; denied; wrong number; backed
// off; expired; enrol an authenticator app; sign in with its code; fraud.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	servertest.ForEachBackend(t, func(t *testing.T, dbURL string) {
		w := newTestWorld(t, dbURL)
		shots := ""
		if dir := os.Getenv(screenshotsEnv); dir != "" && strings.HasSuffix(t.Name(), "/sqlite") {
			shots = dir
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(exe),
			chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("ignore-certificate-errors", true), // httptest's certificate
			chromedp.Flag("accept-lang", "nl-NL,nl"),
			chromedp.UserDataDir(t.TempDir()),
			chromedp.WindowSize(800, 600),
		)
		actx, cancelA := chromedp.NewExecAllocator(servertest.Context(t), opts...)
		defer cancelA()
		ctx, cancel := chromedp.NewContext(actx)
		defer cancel()
		ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
		defer cancelT()

		run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
			t.Helper()
			if err := chromedp.Do(ctx, actions...); err != nil {
				t.Fatalf("%s: %v\nportal log:\n%s", step, err, w.logs.String())
			}
		}
		n := 0
		shot := func(name string) {
			t.Helper()
			if shots == "" {
				return
			}
			raw, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&out, img); err != nil {
				t.Fatal(err)
			}
			n++
			path := filepath.Join(shots, fmt.Sprintf("%02d-%s.png", n, name))
			if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		text := func(id string) string {
			t.Helper()
			v, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
			if err != nil {
				t.Fatalf("text of #%s: %v", id, err)
			}
			return strings.TrimSpace(v)
		}
		signIn := func(user string) {
			t.Helper()
			run("sign in "+user,
				chromedp.Navigate(w.web.URL+"/login"),
				chromedp.WaitVisible(chromedp.ID("username")),
				chromedp.SendKeys(chromedp.ID("username"), user),
				chromedp.SendKeys(chromedp.ID("password"), testPassword),
			)
		}
		submit := func(step string, then chromedp.CSS) {
			t.Helper()
			run(step, chromedp.Click(chromedp.ID("submit")), chromedp.WaitVisible(then))
		}
		seen := chromedp.WaitVisible(chromedp.CSS(`#progress li[data-kind="seen"]`))
		outcome := func(want string) chromedp.Action[chromedp.Void] {
			return chromedp.WaitVisible(chromedp.CSS(`#outcome[data-outcome="` + want + `"]`))
		}
		pctx := servertest.Context(t)

		// Sign in; no phone yet: link the app with its two words.
		run("the login page", chromedp.Navigate(w.web.URL+"/?lang=nl"), chromedp.WaitVisible(chromedp.ID("username")))
		signIn("jan")
		shot("login")
		submit("password", "#words")
		words, _, err := w.app.PairingPhrase(pctx)
		if err != nil {
			t.Fatal(err)
		}
		run("the words", chromedp.SendKeys(chromedp.ID("words"), words))
		shot("link")
		submit("link", "#progress")
		dr, err := w.app.Next(pctx, pushauthv1.RequestKind_REQUEST_KIND_PAIRING)
		if err != nil {
			t.Fatal(err)
		}
		run("pairing seen", seen)
		shot("link-confirm-on-phone")
		if _, err := w.app.Approve(pctx, dr, ""); err != nil {
			t.Fatal(err)
		}
		run("linked and signed in", chromedp.WaitVisible(chromedp.ID("welcome")))

		// Sign out and in: approve with the number the page shows.
		login := func() string {
			t.Helper()
			run("sign out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.ID("username")))
			signIn("jan")
			submit("password", "#number")
			return text("number")
		}
		number := login()
		dr = w.nextLogin(t)
		run("login seen", seen)
		shot("approve-number")
		if _, err := w.app.Approve(pctx, dr, number); err != nil {
			t.Fatal(err)
		}
		run("signed in", chromedp.WaitVisible(chromedp.ID("welcome")))
		shot("signed-in")

		// Denied on the phone.
		login()
		if _, err := w.app.Deny(pctx, w.nextLogin(t)); err != nil {
			t.Fatal(err)
		}
		run("refused", outcome("denied"))
		shot("denied")

		// A wrong number, then backed off.
		w.ts.Clock.Advance(30 * time.Second)
		signIn("jan")
		submit("password", "#number")
		number = text("number")
		wrong := "00"
		if strings.TrimSpace(number) == wrong {
			wrong = "11"
		}
		if _, err := w.app.Approve(pctx, w.nextLogin(t), wrong); err != nil {
			t.Fatal(err)
		}
		run("wrong number", outcome("mismatch"))
		shot("wrong-number")
		run("try again", chromedp.Click(chromedp.ID("retry")), outcome("backoff"))
		shot("backed-off")

		// Nobody answers: expired.
		w.ts.Clock.Advance(time.Minute)
		signIn("jan")
		submit("password", "#number")
		w.nextLogin(t)
		run("seen", seen)
		w.ts.Clock.Advance(31 * time.Second)
		if _, err := w.ts.Server.Engine.Sweep(pctx); err != nil {
			t.Fatal(err)
		}
		run("expired", outcome("expired"))
		shot("expired")

		// Signed in again, enrol an authenticator app in the settings.
		w.ts.Clock.Advance(2 * time.Minute)
		signIn("jan")
		submit("password", "#number")
		number = text("number")
		if _, err := w.app.Approve(pctx, w.nextLogin(t), strings.TrimSpace(number)); err != nil {
			t.Fatal(err)
		}
		run("settings", chromedp.WaitVisible(chromedp.ID("welcome")),
			chromedp.Click(chromedp.ID("settings")), chromedp.WaitVisible(chromedp.ID("enroll-button")),
			chromedp.Click(chromedp.ID("enroll-button")), chromedp.WaitVisible(chromedp.ID("qr")))
		secret := text("secret")
		shot("enrol-authenticator-app")
		run("confirm", chromedp.SendKeys(chromedp.ID("code"), w.totpCode(t, strings.TrimSpace(secret))),
			chromedp.Click(chromedp.ID("confirm")), chromedp.WaitVisible(chromedp.ID("apps")))
		shot("settings")

		// Sign in with a code from the authenticator app instead.
		w.ts.Clock.Advance(30 * time.Second)
		run("home", chromedp.Navigate(w.web.URL+"/home"), chromedp.WaitVisible(chromedp.ID("logout")))
		login()
		run("use a code", chromedp.Click(chromedp.ID("totp")), chromedp.WaitVisible(chromedp.ID("code")),
			chromedp.SendKeys(chromedp.ID("code"), w.totpCode(t, strings.TrimSpace(secret))))
		shot("authenticator-code")
		submit("code", "#welcome")

		// "This wasn't me": reported as fraud.
		login()
		if _, err := w.app.Answer(pctx, w.nextLogin(t), phone.Answer{Decision: pushauthv1.Decision_DECISION_REPORT_FRAUD}); err != nil {
			t.Fatal(err)
		}
		run("fraud", outcome("fraud"))
		shot("fraud-reported")
	})
}
