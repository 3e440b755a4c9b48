package main

import (
	"io"
	"net"
	"sync"
	"testing"

	"github.com/pushauth/pushauth/internal/server/servertest"
)

// proxy forwards TCP connections to a backend address that can go away
// (down: open connections drop, new ones are closed at once, as with a
// stopped server) and come back, possibly another server on the same
// address (up).
type proxy struct {
	lis     net.Listener
	mu      sync.Mutex
	backend string
	conns   map[net.Conn]bool
}

func newProxy(t *testing.T, backend string) *proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{lis: lis, backend: backend, conns: map[net.Conn]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { lis.Close(); <-done; p.down() })
	return p
}

func (p *proxy) addr() string { return p.lis.Addr().String() }

func (p *proxy) serve(c net.Conn) {
	p.mu.Lock()
	backend := p.backend
	p.mu.Unlock()
	if backend == "" {
		c.Close()
		return
	}
	up, err := net.Dial("tcp", backend)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.backend != backend { // went down meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(up, c); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

// down drops every connection and refuses new ones until up.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backend = ""
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// up forwards new connections to backend.
func (p *proxy) up(backend string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backend = backend
}

// "device watch" and "rp login" keep going when their server stops and
// comes back on the same address (here another replica takes the address,
// as after a restart behind a load balancer): the watch reconnects and
// still answers, the login's wait re-attaches and gets the approval.
func TestWatchAndLoginReconnect(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		cl := servertest.NewCluster(t, url, 2, manyLogins)
		px := newProxy(t, cl[0].Addr)
		via := *cl[0]
		via.Addr = px.addr()
		w := newRPWorldOn(t, &via)
		const user = "jan@example.nl"
		pair, claim := w.pair(t, "--yes", user, user)
		claim.want(0, []string{"connected: "}, nil)
		pair.want(0, []string{"Connected: account " + user}, nil)

		watch := start(t, &via, nil, "device", "watch", "--once", "--state", w.state)
		watch.waitErr(`Watching for requests`, 1)
		login := start(t, &via, w.rpEnv, "rp", "login", "--user", user)
		watch.waitErr(`Approve, deny or report fraud\? \[a/d/r\] `, 1)
		// The login has its CreateApproval answer and its wait open (its
		// first progress line): the drop below breaks the wait, which
		// re-attaches, not the create, which a login page would retry.
		login.waitErr(`(?m)^  \S`, 1)

		px.down()
		watch.waitErr(`Lost the connection to the server`, 1)
		px.up(cl[1].Addr)
		watch.waitErr(`Reconnected; watching again`, 1)
		watch.write("a\n")
		login.want(0, []string{"approved: " + user + " may log in"}, nil)
		watch.want(0, []string{"Approved: the login of " + user}, nil)
	})
}
