package bench

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/store"
)

// storeStats, when set, wraps the server's store to time the calls a flow
// makes, as the server sees them (including waiting for a connection). It
// is a diagnostic: the wrapper costs a little itself.
var storeStats = flag.Bool("pushauth.storestats", false, "log the count and mean latency of the store calls made during BenchmarkFlow (diagnostic)")

// timedStore times some store.Store methods; the rest pass through.
type timedStore struct {
	store.Store
	mu    sync.Mutex
	calls map[string]*callStat
}

type callStat struct {
	n     int
	total time.Duration
}

func withTimedStore(ts **timedStore) func(*server.Options) {
	return func(o *server.Options) {
		*ts = &timedStore{Store: o.Store, calls: map[string]*callStat{}}
		o.Store = *ts
	}
}

func (s *timedStore) record(name string, start time.Time) {
	d := time.Since(start)
	s.mu.Lock()
	c := s.calls[name]
	if c == nil {
		c = &callStat{}
		s.calls[name] = c
	}
	c.n++
	c.total += d
	s.mu.Unlock()
}

// reset forgets what was recorded so far.
func (s *timedStore) reset() {
	s.mu.Lock()
	s.calls = map[string]*callStat{}
	s.mu.Unlock()
}

// log reports each method's calls per flow and mean latency.
func (s *timedStore) log(tb testing.TB, flows int) {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var lines []string
	for name, c := range s.calls {
		lines = append(lines, fmt.Sprintf("%-40s %5.2f/flow  mean %7.3f ms", name, float64(c.n)/float64(flows), float64(c.total)/float64(c.n)/1e6))
	}
	slices.Sort(lines)
	tb.Logf("store calls (outside transactions; InTx = the whole transaction, InTx.wait = until its callback starts):\n%s", strings.Join(lines, "\n"))
}

func (s *timedStore) InTx(ctx context.Context, fn func(tx store.Store) error) error {
	start := time.Now()
	return s.Store.InTx(ctx, func(tx store.Store) error {
		s.record("InTx.wait", start)
		defer s.record("InTx", start)
		return fn(tx)
	})
}

func (s *timedStore) GetRelyingParty(ctx context.Context, id string) (store.RelyingParty, error) {
	defer s.record("GetRelyingParty", time.Now())
	return s.Store.GetRelyingParty(ctx, id)
}

func (s *timedStore) GetAPIKeyByPrefix(ctx context.Context, prefix string) (store.APIKey, error) {
	defer s.record("GetAPIKeyByPrefix", time.Now())
	return s.Store.GetAPIKeyByPrefix(ctx, prefix)
}

func (s *timedStore) GetDevice(ctx context.Context, id string) (store.Device, error) {
	defer s.record("GetDevice", time.Now())
	return s.Store.GetDevice(ctx, id)
}

func (s *timedStore) GetDeviceByCredentialPrefix(ctx context.Context, prefix string) (store.Device, error) {
	defer s.record("GetDeviceByCredentialPrefix", time.Now())
	return s.Store.GetDeviceByCredentialPrefix(ctx, prefix)
}

func (s *timedStore) ListUserConnections(ctx context.Context, rpID, userRef string) ([]store.Connection, error) {
	defer s.record("ListUserConnections", time.Now())
	return s.Store.ListUserConnections(ctx, rpID, userRef)
}

func (s *timedStore) GetRequest(ctx context.Context, id string) (store.Request, error) {
	defer s.record("GetRequest", time.Now())
	return s.Store.GetRequest(ctx, id)
}

func (s *timedStore) ListRequestTargets(ctx context.Context, id string) ([]store.RequestTarget, error) {
	defer s.record("ListRequestTargets", time.Now())
	return s.Store.ListRequestTargets(ctx, id)
}

func (s *timedStore) ListUserPendingRequests(ctx context.Context, rpID, userRef, kind string, now time.Time) ([]store.Request, error) {
	defer s.record("ListUserPendingRequests", time.Now())
	return s.Store.ListUserPendingRequests(ctx, rpID, userRef, kind, now)
}

func (s *timedStore) UpdateTargetDelivery(ctx context.Context, requestID, deviceID, delivery, detail string, at time.Time) error {
	defer s.record("UpdateTargetDelivery", time.Now())
	return s.Store.UpdateTargetDelivery(ctx, requestID, deviceID, delivery, detail, at)
}

func (s *timedStore) MarkTargetSeen(ctx context.Context, requestID, deviceID string, at time.Time) (bool, error) {
	defer s.record("MarkTargetSeen", time.Now())
	return s.Store.MarkTargetSeen(ctx, requestID, deviceID, at)
}

func (s *timedStore) GetUserState(ctx context.Context, rpID, userRef string) (store.UserState, error) {
	defer s.record("GetUserState", time.Now())
	return s.Store.GetUserState(ctx, rpID, userRef)
}

func (s *timedStore) TouchDevice(ctx context.Context, id string, at time.Time) error {
	defer s.record("TouchDevice", time.Now())
	return s.Store.TouchDevice(ctx, id, at)
}

func (s *timedStore) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	defer s.record("TouchAPIKey", time.Now())
	return s.Store.TouchAPIKey(ctx, id, at)
}
