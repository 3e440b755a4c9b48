package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/pushauth/pushauth/client"
)

// sessionCookie names the session cookie: HttpOnly, Secure, SameSite=Lax
// (Strict would drop it on the link from an e-mail), Path=/.
const sessionCookie = "portal_session"

// sessionIdle is how long a session lives without a request.
const sessionIdle = 30 * time.Minute

// session is one browser's state. Its fields are guarded by mu.
type session struct {
	mu sync.Mutex

	id       string
	csrf     string // the token every form posts back
	lang     string
	lastSeen time.Time

	user     string // set once the password was right
	signedIn bool   // set once the second factor was too

	pending  *client.Pending // the request the browser waits for
	purpose  string          // why: purposeLogin, purposeLink (at sign-in) or purposeAddPhone (in settings)
	result   string          // how pending ended, once known: see finish
	enroll   string          // factor id of an authenticator app being enrolled
	enrollQR []byte          // its QR code PNG
	enrollSK string          // its secret, to type in by hand
	flash    string          // a message key for the next page
}

// Purposes of a pending request.
const (
	purposeLogin    = "login"
	purposeLink     = "link"
	purposeAddPhone = "add-phone"
)

// sessions keeps the sessions in memory: a reference portal runs one
// replica. A portal with several keeps them in its shared store.
type sessions struct {
	mu   sync.Mutex
	byID map[string]*session
	now  func() time.Time
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, now: now}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails: crypto/rand aborts the program instead
	return base64.RawURLEncoding.EncodeToString(b)
}

// get returns the request's session, or a new one (with its cookie set)
// when there is none or it expired.
func (ss *sessions) get(w http.ResponseWriter, r *http.Request) *session {
	now := ss.now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if c, err := r.Cookie(sessionCookie); err == nil {
		if s, ok := ss.byID[c.Value]; ok {
			s.mu.Lock()
			fresh := now.Sub(s.lastSeen) < sessionIdle
			if fresh {
				s.lastSeen = now
			}
			s.mu.Unlock()
			if fresh {
				return s
			}
			delete(ss.byID, c.Value)
		}
	}
	for id, s := range ss.byID { // drop the stale ones now and then
		s.mu.Lock()
		stale := now.Sub(s.lastSeen) >= sessionIdle
		s.mu.Unlock()
		if stale {
			delete(ss.byID, id)
		}
	}
	s := &session{id: randomToken(), csrf: randomToken(), lang: pickLang(r), lastSeen: now}
	ss.byID[s.id] = s
	setCookie(w, s.id, int(sessionIdle/time.Second))
	return s
}

// renew gives s a new id (and CSRF token) when it gains rights, so an id
// planted before sign-in is worth nothing after it.
func (ss *sessions) renew(w http.ResponseWriter, s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, s.id)
	s.id, s.csrf = randomToken(), randomToken()
	ss.byID[s.id] = s
	setCookie(w, s.id, int(sessionIdle/time.Second))
}

// drop ends s (sign-out).
func (ss *sessions) drop(w http.ResponseWriter, s *session) {
	ss.mu.Lock()
	delete(ss.byID, s.id)
	ss.mu.Unlock()
	setCookie(w, "", -1)
}

func setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
}

// checkCSRF reports whether a POST carries the session's token.
func (s *session) checkCSRF(r *http.Request) bool {
	got := r.PostFormValue("csrf")
	s.mu.Lock()
	want := s.csrf
	s.mu.Unlock()
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
