package retention_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/retention"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

const day = retention.Day

var epoch = servertest.Epoch

// fixture is a database with one row of every kind at known ages.
type fixture struct {
	st    store.Store
	clock *servertest.Clock
	logs  *servertest.LogBuffer
	sw    *retention.Sweeper
}

func newFixture(t *testing.T, url string) *fixture {
	t.Helper()
	f := &fixture{st: storetest.OpenMigrated(t, url), clock: servertest.NewClock(epoch), logs: &servertest.LogBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", f.logs.String())
		}
	})
	f.sw = f.sweeper(t, f.st, retention.Config{})
	return f
}

func (f *fixture) sweeper(t *testing.T, st retention.Store, cfg retention.Config) *retention.Sweeper {
	t.Helper()
	sw, err := retention.New(cfg, st, f.clock.Now, slog.New(slog.NewTextHandler(f.logs, nil)))
	if err != nil {
		t.Fatalf("retention.New: %v", err)
	}
	return sw
}

func (f *fixture) sweep(t *testing.T, want retention.Result) {
	t.Helper()
	got, err := f.sw.SweepOnce(servertest.Context(t))
	if err != nil {
		t.Fatalf("SweepOnce at %v: %v", f.clock.Now(), err)
	}
	if got != want {
		t.Fatalf("SweepOnce at %v deleted %+v, want %+v", f.clock.Now(), got, want)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// request creates a login request at created with two targets; decided
// (when not zero) approves it then.
func (f *fixture) request(t *testing.T, id string, created, decided time.Time) {
	t.Helper()
	ctx := servertest.Context(t)
	r := store.Request{
		ID: id, Kind: store.KindLogin, RelyingPartyID: "rp-1", UserRef: "alice",
		Context: store.RequestContext{IPAddress: "192.0.2.7", Location: "Utrecht, NL", Browser: "Firefox"},
		Status:  store.StatusPending, CreatedAt: created, ExpiresAt: created.Add(90 * time.Second),
	}
	targets := []store.RequestTarget{{RequestID: id, DeviceID: "d1", Delivery: store.DeliverySent}, {RequestID: id, DeviceID: "d2", Delivery: store.DeliverySent}}
	must(t, "CreateRequest "+id, f.st.CreateRequest(ctx, r, targets))
	if !decided.IsZero() {
		must(t, "DecideRequest "+id, f.st.DecideRequest(ctx, store.Decision{RequestID: id, Status: store.StatusApproved, Reason: store.ReasonUser, At: decided}))
	}
}

func (f *fixture) verification(t *testing.T, id string, created time.Time) {
	t.Helper()
	must(t, "CreateVerification "+id, f.st.CreateVerification(servertest.Context(t), store.Verification{
		ID: id, PhoneNumber: "+31612345678", ClientAddress: "192.0.2.7", CreatedAt: created, ExpiresAt: created.Add(10 * time.Minute),
	}))
}

func (f *fixture) outbox(t *testing.T, created time.Time) int64 {
	t.Helper()
	id, err := f.st.AddOutboxMessage(servertest.Context(t), store.OutboxMessage{PhoneNumber: "+31612345678", Body: "Your code is 123456", CreatedAt: created})
	must(t, "AddOutboxMessage", err)
	return id
}

func (f *fixture) audit(t *testing.T, at time.Time) int64 {
	t.Helper()
	id, err := f.st.AppendAuditEvent(servertest.Context(t), store.AuditEvent{Time: at, Actor: "admin", Action: "test"})
	must(t, "AppendAuditEvent", err)
	return id
}

func (f *fixture) phrase(t *testing.T, hash, device string, created time.Time) {
	t.Helper()
	must(t, "PutPairingPhrase", f.st.PutPairingPhrase(servertest.Context(t), store.PairingPhrase{
		Hash: []byte(hash), DeviceID: device, CreatedAt: created, ExpiresAt: created.Add(10 * time.Minute),
	}))
}

func (f *fixture) counter(t *testing.T, key string, window time.Time) {
	t.Helper()
	_, err := f.st.TakeRate(servertest.Context(t), window, store.RateLimit{Key: key, Window: 24 * time.Hour, Max: 100})
	must(t, "TakeRate", err)
}

func (f *fixture) requestExists(t *testing.T, id string) bool {
	t.Helper()
	_, err := f.st.GetRequest(servertest.Context(t), id)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	must(t, "GetRequest "+id, err)
	return true
}

func (f *fixture) targets(t *testing.T, id string) int {
	t.Helper()
	ts, err := f.st.ListRequestTargets(servertest.Context(t), id)
	must(t, "ListRequestTargets "+id, err)
	return len(ts)
}

func (f *fixture) verificationExists(t *testing.T, id string) bool {
	t.Helper()
	_, err := f.st.GetVerification(servertest.Context(t), id)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	must(t, "GetVerification "+id, err)
	return true
}

func (f *fixture) outboxIDs(t *testing.T) []int64 {
	t.Helper()
	ms, err := f.st.ListOutboxMessages(servertest.Context(t), "", 100)
	must(t, "ListOutboxMessages", err)
	var ids []int64
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	return ids
}

func (f *fixture) auditIDs(t *testing.T) []int64 {
	t.Helper()
	es, err := f.st.ListAuditEvents(servertest.Context(t), store.AuditFilter{Limit: 100})
	must(t, "ListAuditEvents", err)
	var ids []int64
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

func (f *fixture) counterValue(t *testing.T, key string, window time.Time) int {
	t.Helper()
	n, err := f.st.CountRate(servertest.Context(t), key, window, time.Microsecond)
	must(t, "CountRate", err)
	return n
}

func wantEqual[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestSweepOnce moves the clock past each retention period with the default
// configuration and checks that exactly the old rows go, a row exactly at
// its cutoff staying.
func TestSweepOnce(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		f := newFixture(t, url)
		const number = "+31612345678"
		at := func(d time.Duration) time.Time {
			t.Helper()
			f.clock.Set(epoch.Add(d))
			return f.clock.Now()
		}

		// Day 0.
		f.request(t, "r-pending", epoch, time.Time{}) // never decided: never deleted
		f.request(t, "r-31", epoch, epoch)            // decided 31 days before the day-31 sweep
		f.verification(t, "v-0", epoch)               // expires at epoch+10m
		f.outbox(t, epoch)
		audit0 := f.audit(t, epoch)
		f.phrase(t, "hash-0", "d1", epoch) // expires at epoch+10m
		window0 := epoch.Truncate(day)
		f.counter(t, "k", window0)
		f.sweep(t, retention.Result{}) // nothing is old yet

		// One day after the verification expired: exactly at its cutoff, so
		// kept; the outbox message is older than a day, the phrase expired,
		// the counter's day-long window is over.
		at(day + 10*time.Minute)
		f.sweep(t, retention.Result{Outbox: 1, PairingPhrases: 1, Counters: 1})
		wantEqual(t, "outbox", f.outboxIDs(t), nil)
		if n := f.counterValue(t, "k", window0); n != 0 {
			t.Errorf("counter of an ended window = %d, want deleted", n)
		}
		if !f.verificationExists(t, "v-0") {
			t.Error("verification deleted exactly at its cutoff")
		}
		at(day + 10*time.Minute + time.Microsecond)
		f.sweep(t, retention.Result{Verifications: 1})
		if f.verificationExists(t, "v-0") {
			t.Error("verification expired more than a day ago kept")
		}

		// Day 2: a request decided 29 days before the day-31 sweep.
		day2 := at(2 * day)
		f.request(t, "r-29", day2, day2)
		f.verification(t, "v-2", day2)
		f.outbox(t, day2)
		audit2 := f.audit(t, day2)
		f.counter(t, "k", day2.Truncate(day))
		freshOut := f.outbox(t, day2.Add(30*day)) // a message sent just before day 31
		f.counter(t, "k", day2.Add(29*day).Truncate(day))

		at(31 * day)
		f.sweep(t, retention.Result{Requests: 1, Verifications: 1, Outbox: 1, Counters: 1})
		for id, want := range map[string]bool{"r-pending": true, "r-31": false, "r-29": true} {
			if got := f.requestExists(t, id); got != want {
				t.Errorf("request %s exists = %v, want %v", id, got, want)
			}
		}
		if n := f.targets(t, "r-31"); n != 0 {
			t.Errorf("deleted request r-31 has %d targets left", n)
		}
		if n := f.targets(t, "r-29"); n != 2 {
			t.Errorf("kept request r-29 has %d targets, want 2", n)
		}
		if n := f.targets(t, "r-pending"); n != 2 {
			t.Errorf("pending request has %d targets, want 2", n)
		}
		wantEqual(t, "outbox", f.outboxIDs(t), []int64{freshOut})
		wantEqual(t, "audit events", f.auditIDs(t), []int64{audit2, audit0})
		if n := f.counterValue(t, "k", day2.Add(29*day).Truncate(day)); n != 1 {
			t.Errorf("counter of the current window = %d, want 1", n)
		}

		f.sweep(t, retention.Result{}) // idempotent

		// Audit: 400 days, an event exactly at its cutoff kept.
		at(400 * day)
		f.sweep(t, retention.Result{Requests: 1, Outbox: 1, Counters: 1})
		wantEqual(t, "audit events", f.auditIDs(t), []int64{audit2, audit0})
		at(400*day + time.Microsecond)
		f.sweep(t, retention.Result{Audit: 1})
		wantEqual(t, "audit events", f.auditIDs(t), []int64{audit2})
		if !f.requestExists(t, "r-pending") {
			t.Error("a PENDING request was deleted")
		}

		if !f.logs.Contains("retention sweep") || !f.logs.Contains("requests=1") || !f.logs.Contains("level=INFO") {
			t.Errorf("sweeps that deleted rows are not logged at Info with counts:\n%s", f.logs.String())
		}
		if f.logs.Contains(number) || f.logs.Contains("192.0.2.7") {
			t.Errorf("the log holds personal data:\n%s", f.logs.String())
		}
	})
}

// TestSweepersConcurrent runs two sweepers, on two connections to one
// database as two replicas would, at once and in small batches: neither
// fails, together they delete every old row once, and the end state is the
// one a single sweeper leaves.
func TestSweepersConcurrent(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		f := newFixture(t, url)
		const n = 25
		old := epoch
		for i := range n {
			f.request(t, fmt.Sprintf("r-old-%02d", i), old, old)
			f.request(t, fmt.Sprintf("r-pending-%02d", i), old, time.Time{})
			f.verification(t, fmt.Sprintf("v-%02d", i), old)
			f.outbox(t, old)
			f.audit(t, old)
			f.phrase(t, fmt.Sprintf("hash-%02d", i), fmt.Sprintf("d%02d", i), old)
			f.counter(t, fmt.Sprintf("k%02d", i), old.Truncate(day))
		}
		now := epoch.Add(500 * day)
		f.clock.Set(now)
		f.request(t, "r-fresh", now, now)
		freshOut := f.outbox(t, now)
		freshAudit := f.audit(t, now)

		cfg := retention.Config{Batch: 4}
		sweepers := []*retention.Sweeper{
			f.sweeper(t, f.st, cfg),
			f.sweeper(t, storetest.OpenMigrated(t, url), cfg),
		}
		results := make([]retention.Result, len(sweepers))
		errs := make([]error, len(sweepers))
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, sw := range sweepers {
			wg.Go(func() {
				<-start
				results[i], errs[i] = sw.SweepOnce(servertest.Context(t))
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("sweeper %d: %v", i, err)
			}
		}
		sum := retention.Result{
			Verifications:  results[0].Verifications + results[1].Verifications,
			Requests:       results[0].Requests + results[1].Requests,
			Outbox:         results[0].Outbox + results[1].Outbox,
			Audit:          results[0].Audit + results[1].Audit,
			PairingPhrases: results[0].PairingPhrases + results[1].PairingPhrases,
			Counters:       results[0].Counters + results[1].Counters,
		}
		want := retention.Result{Verifications: n, Requests: n, Outbox: n, Audit: n, PairingPhrases: n, Counters: n}
		if sum != want {
			t.Errorf("sweepers deleted %+v and %+v, %+v together, want %+v", results[0], results[1], sum, want)
		}
		t.Logf("sweepers deleted %d and %d rows", results[0].Total(), results[1].Total())

		for i := range n {
			if f.requestExists(t, fmt.Sprintf("r-old-%02d", i)) || f.targets(t, fmt.Sprintf("r-old-%02d", i)) != 0 {
				t.Errorf("old request %d or its targets kept", i)
			}
			if !f.requestExists(t, fmt.Sprintf("r-pending-%02d", i)) || f.targets(t, fmt.Sprintf("r-pending-%02d", i)) != 2 {
				t.Errorf("pending request %d or its targets deleted", i)
			}
		}
		if !f.requestExists(t, "r-fresh") {
			t.Error("fresh request deleted")
		}
		wantEqual(t, "outbox", f.outboxIDs(t), []int64{freshOut})
		wantEqual(t, "audit events", f.auditIDs(t), []int64{freshAudit})
		for _, sw := range sweepers {
			if res, err := sw.SweepOnce(servertest.Context(t)); err != nil || res != (retention.Result{}) {
				t.Errorf("sweep after the race = %+v, %v; want nothing deleted", res, err)
			}
		}
	})
}

// TestRun checks that Run sweeps on its own and stops with its context.
func TestRun(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		f := newFixture(t, url)
		f.outbox(t, epoch)
		f.clock.Set(epoch.Add(2 * day))
		sw := f.sweeper(t, f.st, retention.Config{Period: time.Millisecond})
		type sweep struct {
			res retention.Result
			err error
		}
		swept := make(chan sweep, 100)
		retention.SetSwept(sw, func(res retention.Result, err error) {
			select {
			case swept <- sweep{res, err}:
			default:
			}
		})
		ctx, cancel := context.WithCancel(servertest.Context(t))
		done := make(chan struct{})
		go func() { defer close(done); sw.Run(ctx) }()
		select {
		case s := <-swept:
			if s.err != nil || s.res != (retention.Result{Outbox: 1}) {
				t.Errorf("first sweep = %+v, %v; want the old outbox message deleted", s.res, s.err)
			}
		case <-ctx.Done():
			t.Fatal("Run did not sweep")
		}
		cancel()
		<-done
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []retention.Config{
		{Period: -time.Second},
		{Requests: -day},
		{Audit: -day},
		{Batch: -1},
		{Requests: 60 * day, Audit: 50 * day},
		{Requests: 500 * day}, // above the default audit retention
	} {
		if _, err := retention.New(cfg, nil, nil, nil); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
	sw, err := retention.New(retention.Config{Requests: 7 * day}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := retention.DefaultConfig()
	want.Requests = 7 * day
	if sw.Config() != want {
		t.Errorf("Config() = %+v, want %+v", sw.Config(), want)
	}
}

// TestSweepOnceReportsFailures: a database that fails is an error naming
// every kind of data that could not be swept.
func TestSweepOnceReportsFailures(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		f := newFixture(t, url)
		if err := f.st.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := f.sw.SweepOnce(servertest.Context(t))
		if err == nil {
			t.Fatal("SweepOnce on a closed store: no error")
		}
		for _, what := range []string{"verifications", "requests", "outbox messages", "audit events", "pairing phrases", "rate counters"} {
			if !strings.Contains(err.Error(), "delete "+what) {
				t.Errorf("error does not name %s: %v", what, err)
			}
		}
		ctx, cancel := context.WithCancel(servertest.Context(t))
		cancel()
		if _, err := f.sw.SweepOnce(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("SweepOnce with a cancelled context = %v, want context.Canceled", err)
		}
	})
}
