package relyingparty_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/feed"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// watcher reads a WatchEvents stream into a channel.
type watcher struct {
	events chan *pushauthv1.SecurityEvent
	cancel context.CancelFunc
}

func watchEvents(t *testing.T, ts *servertest.TestServer, key string, after uint64) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(servertest.Context(t))
	stream, err := ts.RP.WatchEvents(ts.WithToken(ctx, key), &pushauthv1.WatchEventsRequest{After: after})
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{events: make(chan *pushauthv1.SecurityEvent, 100), cancel: cancel}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				close(w.events)
				return
			}
			w.events <- resp.GetEvent()
		}
	}()
	return w
}

// next reads n events; their types are returned sorted (events of one
// transaction have no order among themselves).
func (w *watcher) next(t *testing.T, n int) ([]*pushauthv1.SecurityEvent, []string) {
	t.Helper()
	var evs []*pushauthv1.SecurityEvent
	var types []string
	for len(evs) < n {
		select {
		case e, ok := <-w.events:
			if !ok {
				t.Fatalf("stream ended after %d of %d events", len(evs), n)
			}
			evs = append(evs, e)
			types = append(types, e.GetType())
		case <-time.After(time.Minute):
			t.Fatalf("%d of %d events came", len(evs), n)
		}
	}
	slices.Sort(types)
	return evs, types
}

func fastFeed(o *server.Options) { o.EventRelay = feed.RelayConfig{ScanEvery: 10 * time.Millisecond} }

// TestWatchEventsResume: a login server sees its own security events, in
// order; after a disconnect it resumes from the cursor it kept and gets
// what happened meanwhile, nothing missed and nothing twice.
func TestWatchEventsResume(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url, fastFeed)
		ctx := servertest.Context(t)
		rp := ts.CreateRelyingParty(t, "shop", nil)
		_, key := ts.CreateAPIKey(t, rp.GetId())
		other := ts.CreateRelyingParty(t, "other", nil)
		otherKey, _ := ts.CreateAPIKey(t, other.GetId())
		p := servertest.NewPhone(t, false)
		ts.Register(t, p, "+31612345678")
		ts.Pair(t, p, key, "jan", "jan")

		w := watchEvents(t, ts, key, 0)
		first, types := w.next(t, 3)
		if want := []string{feed.TypeAPIKeyCreated, feed.TypeDevicePaired, feed.TypeRequestDecided}; !slices.Equal(types, want) {
			t.Fatalf("first events %v, want %v", types, want)
		}
		if first[0].GetType() != feed.TypeAPIKeyCreated {
			t.Errorf("the key's event came after the pairing's: %v", first)
		}
		for _, e := range first {
			if e.GetType() == feed.TypeDevicePaired && (e.GetData()["user_ref"] != "jan" || e.GetData()["device_id"] != p.DeviceID) {
				t.Errorf("device_paired %v", e)
			}
		}
		cursor := first[2].GetCursor()
		w.cancel() // the login server goes away

		c, err := ts.RP.CreateApproval(ts.WithToken(ctx, key), &pushauthv1.CreateApprovalRequest{UserRef: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ts.Decide(t, p, ts.Pending(t, p), pushauthv1.Decision_DECISION_REPORT_FRAUD, ""); err != nil {
			t.Fatal(err)
		}

		w = watchEvents(t, ts, key, cursor)
		defer w.cancel()
		missed, types := w.next(t, 3)
		if want := []string{feed.TypeFraudReported, feed.TypeRequestDecided, feed.TypeUserBackedOff}; !slices.Equal(types, want) {
			t.Fatalf("events while away %v, want %v", types, want)
		}
		for _, e := range missed {
			if e.GetCursor() <= cursor {
				t.Errorf("event %v at or before the cursor %d", e, cursor)
			}
			if e.GetType() == feed.TypeRequestDecided && (e.GetData()["request_id"] != c.GetRequestId() || e.GetData()["reason"] != "FRAUD_REPORT") {
				t.Errorf("request_decided %v", e)
			}
		}
		// The next event after those is the one made now: nothing repeats,
		// and the other relying party's key never shows.
		if _, err := ts.Admin.RevokeApiKey(ts.AdminCtx(ctx), &pushauthv1.RevokeApiKeyRequest{ApiKey: otherKey.GetId()}); err != nil {
			t.Fatal(err)
		}
		sentinel, _ := ts.CreateAPIKey(t, rp.GetId())
		last, _ := w.next(t, 1)
		if last[0].GetType() != feed.TypeAPIKeyCreated || last[0].GetData()["api_key_id"] != sentinel.GetId() {
			t.Fatalf("after the missed events came %v, want the new key's", last[0])
		}

		// The same feed over HTTP, as newline-delimited JSON.
		hctx, cancel := context.WithCancel(ctx)
		defer cancel()
		req, _ := http.NewRequestWithContext(hctx, http.MethodGet, ts.HTTPURL+"/v1/events:watch?after="+
			itoa(missed[2].GetCursor()), nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Result struct {
				Event struct {
					ID   string `json:"id"`
					Type string `json:"type"`
				} `json:"event"`
			} `json:"result"`
		}
		if err := json.Unmarshal(line, &got); err != nil || got.Result.Event.Type != feed.TypeAPIKeyCreated {
			t.Fatalf("HTTP line %s: %v", line, err)
		}
	})
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
