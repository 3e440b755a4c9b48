package main

import (
	"context"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/pushauth/pushauth/client"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

//go:embed web
var webFS embed.FS

// portal is the reference login server: passwords here, the second factor
// at pushauth through package client.
type portal struct {
	c       *client.Client
	users   users
	ss      *sessions
	pages   map[string]*template.Template
	appName string // what the phone shows as the app, e.g. "Mijn Portal"
	log     *slog.Logger
}

// csp allows only the portal's own script, style and images (and the QR
// code, a data: image): no inline script or style at all.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func newPortal(c *client.Client, us users, appName string, log *slog.Logger, now func() time.Time) (*portal, error) {
	p := &portal{c: c, users: us, ss: newSessions(now), pages: map[string]*template.Template{}, appName: appName, log: log}
	for _, name := range []string{"login", "link", "wait", "result", "totp", "home", "settings"} {
		t, err := template.ParseFS(webFS, "web/layout.html", "web/"+name+".html")
		if err != nil {
			return nil, err
		}
		p.pages[name] = t
	}
	return p, nil
}

// handler routes the portal's pages. Every POST checks the session's CSRF
// token first.
func (p *portal) handler() http.Handler {
	static, _ := fs.Sub(webFS, "web/static")
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	for pattern, h := range map[string]func(http.ResponseWriter, *http.Request, *session){
		"GET /{$}":                    p.root,
		"GET /login":                  p.loginPage,
		"POST /login":                 p.login,
		"GET /link":                   p.needUser(p.linkPage),
		"POST /link":                  p.needUser(p.link),
		"POST /approve":               p.needUser(p.approve),
		"GET /wait":                   p.needUser(p.waitPage),
		"GET /events":                 p.needUser(p.events),
		"GET /result":                 p.needUser(p.result),
		"POST /cancel":                p.needUser(p.cancel),
		"GET /totp":                   p.needUser(p.totpPage),
		"POST /totp":                  p.needUser(p.totp),
		"GET /home":                   p.needSignedIn(p.home),
		"GET /settings":               p.needSignedIn(p.settings),
		"POST /settings/remove-phone": p.needSignedIn(p.removePhone),
		"POST /settings/remove-app":   p.needSignedIn(p.removeApp),
		"POST /settings/enroll-app":   p.needSignedIn(p.enrollApp),
		"POST /settings/confirm-app":  p.needSignedIn(p.confirmApp),
		"POST /logout":                p.logout,
	} {
		mux.HandleFunc(pattern, p.withSession(h))
	}
	return secureHeaders(mux)
}

// secureHeaders sets the headers every response carries.
func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// withSession finds the session, applies ?lang= and checks CSRF on POST.
func (p *portal) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := p.ss.get(w, r)
		if r.Method == http.MethodGet {
			if l := r.URL.Query().Get("lang"); l == langNL || l == langEN {
				s.mu.Lock()
				s.lang = l
				s.mu.Unlock()
				http.Redirect(w, r, r.URL.Path, http.StatusSeeOther)
				return
			}
		}
		if r.Method == http.MethodPost && !s.checkCSRF(r) {
			w.WriteHeader(http.StatusForbidden)
			p.render(w, s, "login", page{Title: p.t(s, "login_title"), Error: p.t(s, "csrf")})
			return
		}
		h(w, r, s)
	}
}

// needUser lets through sessions whose password was right.
func (p *portal) needUser(h func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		s.mu.Lock()
		ok := s.user != ""
		s.mu.Unlock()
		if !ok {
			p.toLogin(w, r, s)
			return
		}
		h(w, r, s)
	}
}

// needSignedIn lets through sessions that passed both factors.
func (p *portal) needSignedIn(h func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		s.mu.Lock()
		ok := s.signedIn
		s.mu.Unlock()
		if !ok {
			p.toLogin(w, r, s)
			return
		}
		h(w, r, s)
	}
}

func (p *portal) toLogin(w http.ResponseWriter, r *http.Request, s *session) {
	if r.URL.Path == "/events" {
		http.Error(w, "no session", http.StatusUnauthorized)
		return
	}
	s.mu.Lock()
	s.flash = "session_expired"
	s.mu.Unlock()
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// page is what the templates see.
type page struct {
	T                   map[string]string
	Lang, Title, CSRF   string
	Error, Flash        string
	User                *user
	Intro, Number, Note string
	CanTOTP, CanPush    bool
	Outcome, Text       string
	Retry, RetryLink    bool
	Devices             []deviceRow
	Apps                []appRow
	QR                  template.URL
	Secret              string
}

type deviceRow struct{ ID, Name, Platform, Connected string }
type appRow struct{ ID, Label, Added string }

// t is a message in the session's language.
func (p *portal) t(s *session, key string) string {
	s.mu.Lock()
	lang := s.lang
	s.mu.Unlock()
	if m, ok := messages[lang][key]; ok {
		return m
	}
	return key
}

func (p *portal) render(w http.ResponseWriter, s *session, name string, pg page) {
	s.mu.Lock()
	pg.Lang, pg.CSRF, pg.T = s.lang, s.csrf, messages[s.lang]
	if pg.User == nil && s.user != "" {
		pg.User = p.users[s.user]
	}
	if s.flash != "" {
		pg.Flash = messages[s.lang][s.flash]
		s.flash = ""
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := p.pages[name].ExecuteTemplate(w, "layout", pg); err != nil {
		p.log.Error("render", "page", name, "err", err)
	}
}

// fail shows the error page for an unexpected error of pushauth.
func (p *portal) fail(w http.ResponseWriter, s *session, what string, err error) {
	p.log.Error(what, "err", err)
	w.WriteHeader(http.StatusBadGateway)
	p.render(w, s, "result", page{Title: p.t(s, "error_title"), Outcome: "error", Text: p.t(s, "error_text")})
}

func (p *portal) root(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	signedIn, user, pending := s.signedIn, s.user, s.pending
	s.mu.Unlock()
	switch {
	case signedIn:
		http.Redirect(w, r, "/home", http.StatusSeeOther)
	case user != "" && pending != nil:
		http.Redirect(w, r, "/wait", http.StatusSeeOther)
	default:
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	}
}

func (p *portal) loginPage(w http.ResponseWriter, r *http.Request, s *session) {
	p.render(w, s, "login", page{Title: p.t(s, "login_title")})
}

// login checks the password, then goes on by the user's state: link the
// app when no phone is linked, else approve on the phone.
func (p *portal) login(w http.ResponseWriter, r *http.Request, s *session) {
	u, ok := p.users.check(r.PostFormValue("username"), r.PostFormValue("password"))
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		p.render(w, s, "login", page{Title: p.t(s, "login_title"), Error: p.t(s, "login_wrong")})
		return
	}
	p.ss.renew(w, s)
	s.mu.Lock()
	s.user, s.signedIn, s.pending, s.result = u.Username, false, nil, ""
	s.mu.Unlock()
	f, err := p.c.Factors(r.Context(), u.Username)
	if err != nil {
		p.fail(w, s, "list factors", err)
		return
	}
	if len(f.GetPushDevices()) == 0 {
		http.Redirect(w, r, "/link", http.StatusSeeOther)
		return
	}
	p.startApproval(w, r, s, f)
}

// hasTOTP reports whether the user has a confirmed TOTP factor.
func hasTOTP(f *pushauthv1.ListUserFactorsResponse) bool {
	for _, t := range f.GetTotpFactors() {
		if t.GetConfirmed() {
			return true
		}
	}
	return false
}

// requestContext is what the phone shows of this browser.
func (p *portal) requestContext(r *http.Request) *pushauthv1.RequestContext {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil || net.ParseIP(ip) == nil {
		ip = ""
	}
	return &pushauthv1.RequestContext{AppName: p.appName, IpAddress: ip, Browser: browserOf(r.UserAgent())}
}

// browserOf names the browser and system of a User-Agent, roughly.
func browserOf(ua string) string {
	browser := ""
	for _, b := range [][2]string{{"Edg/", "Edge"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"}} {
		if strings.Contains(ua, b[0]) {
			browser = b[1]
			break
		}
	}
	system := ""
	for _, s := range [][2]string{{"Android", "Android"}, {"iPhone", "iOS"}, {"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"Linux", "Linux"}} {
		if strings.Contains(ua, s[0]) {
			system = s[1]
			break
		}
	}
	switch {
	case browser != "" && system != "":
		return browser + ", " + system
	case browser != "":
		return browser
	}
	return system
}

// approve (re)starts a login approval (the "try again" button, and back
// from the TOTP page).
func (p *portal) approve(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	f, err := p.c.Factors(r.Context(), user)
	if err != nil {
		p.fail(w, s, "list factors", err)
		return
	}
	p.startApproval(w, r, s, f)
}

// startApproval asks the user's phones, or says why it cannot now.
func (p *portal) startApproval(w http.ResponseWriter, r *http.Request, s *session, f *pushauthv1.ListUserFactorsResponse) {
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	pend, err := p.c.CreateApproval(r.Context(), user, p.requestContext(r))
	switch client.Code(err) {
	case codes.OK:
	case codes.FailedPrecondition:
		http.Redirect(w, r, "/link", http.StatusSeeOther)
		return
	case codes.ResourceExhausted:
		wait, _ := client.RetryAfter(err)
		key := "backoff_text"
		if f.GetState().GetPushLocked() {
			key = "locked_text"
		}
		w.WriteHeader(http.StatusTooManyRequests)
		p.render(w, s, "result", page{Title: p.t(s, "backoff_title"), Outcome: "backoff",
			Text: fmt.Sprintf(p.t(s, key), fmtWait(s, wait)), CanTOTP: hasTOTP(f), Retry: true})
		return
	default:
		p.fail(w, s, "create approval", err)
		return
	}
	s.mu.Lock()
	s.pending, s.purpose, s.result = pend, purposeLogin, ""
	s.mu.Unlock()
	http.Redirect(w, r, "/wait", http.StatusSeeOther)
}

// fmtWait says a wait in the session's language, rounded up.
func fmtWait(s *session, d time.Duration) string {
	s.mu.Lock()
	nl := s.lang == langNL
	s.mu.Unlock()
	secs := int((d + time.Second - 1) / time.Second)
	unit := func(n int, one, many string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, one)
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	switch {
	case secs < 120 && nl:
		return unit(secs, "seconde", "seconden")
	case secs < 120:
		return unit(secs, "second", "seconds")
	case secs < 2*3600 && nl:
		return unit((secs+59)/60, "minuut", "minuten")
	case secs < 2*3600:
		return unit((secs+59)/60, "minute", "minutes")
	case nl:
		return unit((secs+3599)/3600, "uur", "uur")
	}
	return unit((secs+3599)/3600, "hour", "hours")
}

func (p *portal) linkPage(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	pg := page{Title: p.t(s, "link_title")}
	if f, err := p.c.Factors(r.Context(), user); err == nil {
		pg.CanTOTP = hasTOTP(f)
	}
	p.render(w, s, "link", pg)
}

// link claims the two words the app shows for the user.
func (p *portal) link(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	user, signedIn := s.user, s.signedIn
	s.mu.Unlock()
	u := p.users[user]
	words := strings.TrimSpace(r.PostFormValue("words"))
	pend, err := p.c.ClaimPairingPhrase(r.Context(), words, u.Username, u.label(), p.requestContext(r))
	switch client.Code(err) {
	case codes.OK:
	case codes.NotFound, codes.InvalidArgument:
		w.WriteHeader(http.StatusUnprocessableEntity)
		p.render(w, s, "link", page{Title: p.t(s, "link_title"), Error: p.t(s, "link_unknown")})
		return
	case codes.ResourceExhausted:
		wait, _ := client.RetryAfter(err)
		w.WriteHeader(http.StatusTooManyRequests)
		p.render(w, s, "link", page{Title: p.t(s, "link_title"), Error: fmt.Sprintf(p.t(s, "totp_locked_text"), fmtWait(s, wait))})
		return
	default:
		p.fail(w, s, "claim pairing phrase", err)
		return
	}
	s.mu.Lock()
	s.pending, s.purpose, s.result = pend, purposeLink, ""
	if signedIn {
		s.purpose = purposeAddPhone
	}
	s.mu.Unlock()
	http.Redirect(w, r, "/wait", http.StatusSeeOther)
}

func (p *portal) waitPage(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	pend, purpose, user := s.pending, s.purpose, s.user
	s.mu.Unlock()
	if pend == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	pg := page{Title: p.t(s, "wait_login_title"), Intro: p.t(s, "wait_login_intro")}
	if purpose != purposeLogin {
		pg.Title, pg.Intro = p.t(s, "wait_link_title"), p.t(s, "wait_link_intro")
	}
	if pend.ShowNumber() {
		pg.Number = pend.Number
	}
	if purpose == purposeLogin {
		if f, err := p.c.Factors(r.Context(), user); err == nil {
			pg.CanTOTP = hasTOTP(f)
			if m := f.GetState().GetPushMutedUntil(); m != nil {
				pg.Note = fmt.Sprintf(p.t(s, "muted_note"), m.AsTime().Local().Format("15:04"))
			}
		}
	}
	p.render(w, s, "wait", pg)
}

// progressNames are the progress kinds as the page's script knows them.
var progressNames = map[pushauthv1.Progress_Kind]string{
	pushauthv1.Progress_KIND_QUEUED:          "queued",
	pushauthv1.Progress_KIND_SENT:            "sent",
	pushauthv1.Progress_KIND_SEEN:            "seen",
	pushauthv1.Progress_KIND_DELIVERY_FAILED: "failed",
}

// events streams the pending request's progress as server-sent events
// ("progress": queued, sent, seen, failed), then "done" with the page to go
// to once it ended.
func (p *portal) events(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	pend, result := s.pending, s.result
	s.mu.Unlock()
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(event, data string) {
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
		flusher.Flush()
	}
	if pend == nil || result != "" {
		send("done", "/result")
		return
	}
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	ctx := r.Context()
	progress := make(chan *pushauthv1.Progress, 8)
	type res struct {
		out *client.Outcome
		err error
	}
	done := make(chan res, 1)
	go func() {
		out, err := p.c.Wait(ctx, pend, client.ProgressTo(progress))
		done <- res{out, err}
	}()
	for {
		select {
		case pr := <-progress:
			if name, ok := progressNames[pr.GetKind()]; ok {
				send("progress", name)
			}
		case d := <-done:
			if ctx.Err() != nil {
				return // the browser left; the next page waits again
			}
			p.finish(s, pend, d.out, d.err)
			send("done", "/result")
			return
		}
	}
}

// Results of a pending request, as the result page shows them.
const (
	resultApproved  = "approved"
	resultDenied    = "denied"
	resultMismatch  = "mismatch"
	resultFraud     = "fraud"
	resultExpired   = "expired"
	resultCancelled = "cancelled"
	resultUntrusted = "untrusted"
	resultError     = "error"
)

// finish records how pend ended, if it is still the session's request; an
// approval signs the user in.
func (p *portal) finish(s *session, pend *client.Pending, out *client.Outcome, err error) {
	result := resultError
	switch {
	case errors.Is(err, client.ErrUntrusted):
		p.log.Error("untrusted decision", "approval_id", pend.RequestID, "err", err)
		result = resultUntrusted
	case err != nil:
		p.log.Error("wait", "approval_id", pend.RequestID, "err", err)
	case out.Approved():
		result = resultApproved
	case out.Status() == pushauthv1.RequestStatus_REQUEST_STATUS_DENIED:
		switch out.Reason() {
		case pushauthv1.DecisionReason_DECISION_REASON_NUMBER_MISMATCH:
			result = resultMismatch
		case pushauthv1.DecisionReason_DECISION_REASON_FRAUD_REPORT:
			result = resultFraud
		default:
			result = resultDenied
		}
	case out.Status() == pushauthv1.RequestStatus_REQUEST_STATUS_EXPIRED:
		result = resultExpired
	case out.Status() == pushauthv1.RequestStatus_REQUEST_STATUS_CANCELLED:
		result = resultCancelled
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending != pend {
		return
	}
	s.result = result
	if result == resultApproved {
		s.signedIn = true
	}
}

// result shows how the pending request ended, waiting for it first when the
// page's script did not (no JavaScript).
func (p *portal) result(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	pend, result, purpose := s.pending, s.result, s.purpose
	s.mu.Unlock()
	if pend == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if result == "" {
		out, err := p.c.Wait(r.Context(), pend)
		if r.Context().Err() != nil {
			return
		}
		p.finish(s, pend, out, err)
		s.mu.Lock()
		result = s.result
		s.mu.Unlock()
	}
	s.mu.Lock()
	s.pending, s.result = nil, ""
	user := s.user
	s.mu.Unlock()
	if result == resultApproved {
		p.ss.renew(w, s)
		if purpose == purposeAddPhone {
			s.mu.Lock()
			s.flash = "linked"
			s.mu.Unlock()
			http.Redirect(w, r, "/settings", http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, "/home", http.StatusSeeOther)
		return
	}
	pg := page{Outcome: result, Title: p.t(s, result+"_title"), Text: p.t(s, result+"_text")}
	switch {
	case purpose != purposeLogin && (result == resultDenied || result == resultExpired || result == resultCancelled):
		pg.Text = p.t(s, "link_"+strings.Replace(result, resultCancelled, resultExpired, 1)+"_text")
		pg.RetryLink = true
	case purpose == purposeLogin && result != resultFraud && result != resultUntrusted:
		pg.Retry = true
	}
	if purpose == purposeLogin {
		if f, err := p.c.Factors(r.Context(), user); err == nil {
			pg.CanTOTP = hasTOTP(f)
		}
	}
	p.render(w, s, "result", pg)
}

// cancel gives up the pending request: the user left the page.
func (p *portal) cancel(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	pend, purpose := s.pending, s.purpose
	s.pending, s.result = nil, ""
	s.mu.Unlock()
	if pend != nil {
		if _, err := p.c.Cancel(r.Context(), pend.RequestID); err != nil && client.Code(err) != codes.FailedPrecondition {
			p.log.Warn("cancel", "approval_id", pend.RequestID, "err", err)
		}
	}
	if purpose == purposeAddPhone {
		http.Redirect(w, r, "/settings", http.StatusSeeOther)
		return
	}
	p.ss.drop(w, s)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (p *portal) totpPage(w http.ResponseWriter, r *http.Request, s *session) {
	p.render(w, s, "totp", page{Title: p.t(s, "totp_title"), CanPush: p.canPush(r.Context(), s)})
}

// canPush reports whether the user has a linked phone to confirm with.
func (p *portal) canPush(ctx context.Context, s *session) bool {
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	f, err := p.c.Factors(ctx, user)
	return err == nil && len(f.GetPushDevices()) > 0
}

// totp signs in with a code from an authenticator app (or from the
// pushauth app's offline codes).
func (p *portal) totp(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	pg := page{Title: p.t(s, "totp_title")}
	_, err := p.c.VerifyTOTP(r.Context(), user, strings.TrimSpace(r.PostFormValue("code")))
	switch client.Code(err) {
	case codes.OK:
		s.mu.Lock()
		pend := s.pending
		s.signedIn, s.pending, s.result = true, nil, ""
		s.mu.Unlock()
		if pend != nil {
			_, _ = p.c.Cancel(r.Context(), pend.RequestID)
		}
		p.ss.renew(w, s)
		http.Redirect(w, r, "/home", http.StatusSeeOther)
		return
	case codes.PermissionDenied, codes.InvalidArgument:
		pg.Error = p.t(s, "code_wrong")
		w.WriteHeader(http.StatusUnauthorized)
	case codes.ResourceExhausted:
		wait, _ := client.RetryAfter(err)
		pg.Error = fmt.Sprintf(p.t(s, "totp_locked_text"), fmtWait(s, wait))
		w.WriteHeader(http.StatusTooManyRequests)
	default:
		p.fail(w, s, "verify totp", err)
		return
	}
	pg.CanPush = p.canPush(r.Context(), s)
	p.render(w, s, "totp", pg)
}

func (p *portal) home(w http.ResponseWriter, r *http.Request, s *session) {
	p.render(w, s, "home", page{Title: p.t(s, "home_title")})
}

// settings lists the linked phones and authenticator apps, with an
// authenticator app being enrolled, if any.
func (p *portal) settings(w http.ResponseWriter, r *http.Request, s *session) {
	p.renderSettings(w, r, s, "")
}

func (p *portal) renderSettings(w http.ResponseWriter, r *http.Request, s *session, errKey string) {
	s.mu.Lock()
	user, qr, secret := s.user, s.enrollQR, s.enrollSK
	s.mu.Unlock()
	f, err := p.c.Factors(r.Context(), user)
	if err != nil {
		p.fail(w, s, "list factors", err)
		return
	}
	pg := page{Title: p.t(s, "settings_title"), Secret: secret}
	if errKey != "" {
		pg.Error = p.t(s, errKey)
	}
	for _, d := range f.GetPushDevices() {
		platform := strings.ToLower(strings.TrimPrefix(d.GetPlatform().String(), "PLATFORM_"))
		pg.Devices = append(pg.Devices, deviceRow{ID: d.GetDeviceId(), Name: d.GetName(), Platform: platform,
			Connected: d.GetConnectTime().AsTime().Local().Format("2006-01-02 15:04")})
	}
	for _, t := range f.GetTotpFactors() {
		if t.GetKind() == "APP" && t.GetConfirmed() {
			pg.Apps = append(pg.Apps, appRow{ID: t.GetId(), Label: t.GetLabel(), Added: t.GetCreateTime().AsTime().Local().Format("2006-01-02 15:04")})
		}
	}
	if len(qr) > 0 {
		pg.QR = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(qr))
	}
	if errKey != "" {
		w.WriteHeader(http.StatusUnprocessableEntity)
	}
	p.render(w, s, "settings", pg)
}

func (p *portal) removePhone(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	if err := p.c.RemoveDevice(r.Context(), user, r.PostFormValue("device")); err != nil && client.Code(err) != codes.NotFound {
		p.fail(w, s, "remove device", err)
		return
	}
	p.flashTo(w, r, s, "removed", "/settings")
}

func (p *portal) removeApp(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	if err := p.c.RemoveTOTP(r.Context(), user, r.PostFormValue("factor")); err != nil && client.Code(err) != codes.NotFound {
		p.fail(w, s, "remove totp", err)
		return
	}
	p.flashTo(w, r, s, "removed", "/settings")
}

// enrollApp starts enrolling an authenticator app: the settings page then
// shows its QR code and asks for a first code.
func (p *portal) enrollApp(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	resp, err := p.c.EnrollTOTP(r.Context(), user, p.users[user].label())
	if err != nil {
		p.fail(w, s, "enroll totp", err)
		return
	}
	s.mu.Lock()
	s.enroll, s.enrollQR, s.enrollSK = resp.GetFactorId(), resp.GetQrPng(), resp.GetSecret()
	s.mu.Unlock()
	http.Redirect(w, r, "/settings#enroll", http.StatusSeeOther)
}

func (p *portal) confirmApp(w http.ResponseWriter, r *http.Request, s *session) {
	s.mu.Lock()
	user, factor := s.user, s.enroll
	s.mu.Unlock()
	if factor == "" {
		http.Redirect(w, r, "/settings", http.StatusSeeOther)
		return
	}
	err := p.c.ConfirmTOTP(r.Context(), user, factor, strings.TrimSpace(r.PostFormValue("code")))
	switch client.Code(err) {
	case codes.OK:
	case codes.PermissionDenied, codes.InvalidArgument, codes.ResourceExhausted:
		p.renderSettings(w, r, s, "code_wrong")
		return
	default:
		p.fail(w, s, "confirm totp", err)
		return
	}
	s.mu.Lock()
	s.enroll, s.enrollQR, s.enrollSK = "", nil, ""
	s.mu.Unlock()
	p.flashTo(w, r, s, "enrolled", "/settings")
}

func (p *portal) flashTo(w http.ResponseWriter, r *http.Request, s *session, key, to string) {
	s.mu.Lock()
	s.flash = key
	s.mu.Unlock()
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (p *portal) logout(w http.ResponseWriter, r *http.Request, s *session) {
	p.ss.drop(w, s)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
