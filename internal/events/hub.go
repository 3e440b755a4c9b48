package events

import (
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/pushauth/pushauth/internal/tracing"
)

// ErrHubClosed is returned by Wait when the Hub closes before the wait is
// over (process shutdown), so waiters are released instead of lingering.
var ErrHubClosed = errors.New("events: hub closed")

// hubShards spreads watchers over independent locks so that thousands of
// concurrent Watch/cancel calls and the dispatch goroutine rarely contend.
const hubShards = 64

// subscribeFlushTimeout bounds the round trip that confirms the Hub's
// subscription is registered with the server.
const subscribeFlushTimeout = 5 * time.Second

// Hub fans one wildcard subscription (prefix+"*") out to many local
// watchers keyed by the subject's last token, so a replica needs one NATS
// subscription however many requests it waits on. It is safe for
// concurrent use.
type Hub struct {
	prefix string
	logger *slog.Logger
	sub    *nats.Subscription
	seed   maphash.Seed
	shards [hubShards]hubShard

	closeOnce sync.Once
}

type hubShard struct {
	mu       sync.RWMutex
	closed   bool
	n        int // watchers in this shard
	watchers map[string]map[*watcher]struct{}
}

// A watcher receives either bare data (Watch) or News (WatchNews).
type watcher struct {
	ch   chan []byte
	news chan News
}

// News is a message for a WatchNews watcher: its data and the span context
// its publisher sent in the headers (invalid without tracing), so the
// receiver's span can link to the publisher's. A News with nil Data after a
// loss means "news was lost, read the state again", as nil does for Watch.
type News struct {
	Data  []byte
	Trace trace.SpanContext
}

// NewHub subscribes to prefix+"*" on nc (prefix must end with '.', e.g.
// RequestPrefix) and dispatches each message to the watchers of its last
// token. When nc is connected it waits for the server to confirm the
// subscription, so messages published after NewHub returns are seen.
// A nil logger means slog.Default().
func NewHub(nc *nats.Conn, prefix string, logger *slog.Logger) (*Hub, error) {
	if nc == nil {
		return nil, errors.New("events: NewHub: nil connection")
	}
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	h := &Hub{prefix: prefix, logger: logger, seed: maphash.MakeSeed()}
	for i := range h.shards {
		h.shards[i].watchers = make(map[string]map[*watcher]struct{})
	}
	sub, err := nc.Subscribe(prefix+"*", func(m *nats.Msg) {
		h.dispatch(m.Subject[len(prefix):], News{Data: m.Data, Trace: tracing.SpanContextOf(m.Header)})
	})
	if err != nil {
		return nil, fmt.Errorf("events: subscribe %s*: %w", prefix, err)
	}
	h.sub = sub
	if nc.IsConnected() {
		if err := nc.FlushTimeout(subscribeFlushTimeout); err != nil {
			_ = sub.Unsubscribe()
			return nil, fmt.Errorf("events: confirm subscription %s*: %w", prefix, err)
		}
	}
	// While disconnected, the client re-sends the subscription on reconnect.
	return h, nil
}

func (h *Hub) shard(key string) *hubShard {
	return &h.shards[maphash.String(h.seed, key)%hubShards]
}

// watchBuffer is how many messages a watcher holds before news is lost.
const watchBuffer = 8

// dispatch hands data to every watcher of key without ever blocking. A
// watcher whose buffer is full loses data and its oldest messages as needed
// and gets a nil message after them: "news was lost, read the state
// again". Receivers share data and must not modify it.
func (h *Hub) dispatch(key string, n News) {
	s := h.shard(key)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for w := range s.watchers[key] {
		if w.news != nil {
			offer(w.news, n, News{})
		} else {
			offer(w.ch, n.Data, nil)
		}
	}
}

// offer puts v on ch without blocking; when ch is full it drops the oldest
// until lost (the "read again" mark) fits (a concurrent dispatch may be
// filling it too; a mark after any loss is what matters).
func offer[T any](ch chan T, v, lost T) {
	select {
	case ch <- v:
		return
	default:
	}
	for {
		select {
		case ch <- lost:
		default:
			select {
			case <-ch:
			default:
			}
			continue
		}
		return
	}
}

// Watch registers a watcher for key and returns its channel, which holds up
// to watchBuffer messages for key (then a nil one when news was lost; see
// dispatch), and a cancel func that unregisters it
// (idempotent; always call it). Register before reading state, so nothing
// published in between is missed. The channel is closed when the Hub
// closes; a closed Hub returns an already-closed channel. A key that is not
// a valid id (see ValidateID) never receives anything.
func (h *Hub) Watch(key string) (ch <-chan []byte, cancel func()) {
	w := &watcher{ch: make(chan []byte, watchBuffer)}
	return w.ch, h.watch(key, w)
}

// WatchNews is Watch with each message's trace context (see News).
func (h *Hub) WatchNews(key string) (ch <-chan News, cancel func()) {
	w := &watcher{news: make(chan News, watchBuffer)}
	return w.news, h.watch(key, w)
}

// close closes the watcher's channel.
func (w *watcher) close() {
	if w.news != nil {
		close(w.news)
	} else {
		close(w.ch)
	}
}

func (h *Hub) watch(key string, w *watcher) (cancel func()) {
	s := h.shard(key)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		w.close()
		return func() {}
	}
	set := s.watchers[key]
	if set == nil {
		set = make(map[*watcher]struct{}, 1)
		s.watchers[key] = set
	}
	set[w] = struct{}{}
	s.n++
	s.mu.Unlock()

	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			set := s.watchers[key]
			if _, ok := set[w]; !ok {
				return // hub closed meanwhile
			}
			delete(set, w)
			s.n--
			if len(set) == 0 {
				delete(s.watchers, key)
			}
		})
	}
}

// Len reports the number of registered watchers, for tests and metrics.
func (h *Hub) Len() int {
	n := 0
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.RLock()
		n += s.n
		s.mu.RUnlock()
	}
	return n
}

// Close unsubscribes and closes every watcher channel, releasing waiters.
// It is idempotent. Closing the Bus first is fine.
func (h *Hub) Close() {
	h.closeOnce.Do(func() {
		if err := h.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			h.logger.Warn("events: hub unsubscribe", "prefix", h.prefix, "error", err)
		}
		for i := range h.shards {
			s := &h.shards[i]
			s.mu.Lock()
			s.closed = true
			for _, set := range s.watchers {
				for w := range set {
					w.close()
				}
			}
			s.watchers = nil
			s.n = 0
			s.mu.Unlock()
		}
	})
}
