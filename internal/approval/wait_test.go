package approval_test

import (
	"testing"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

func (h *harness) hub() *events.Hub {
	h.t.Helper()
	hub, err := events.NewHub(h.bus.Conn(), events.RequestPrefix, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(hub.Close)
	return hub
}

// TestWaitSubscribesBeforeReading forces a decision, with its news, into
// the gap between Wait's two first steps, with no recheck at all: Wait
// must subscribe first and read second, or the news goes to no one and it
// waits forever (here: until the test's deadline).
func TestWaitSubscribesBeforeReading(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, url string) {
		h := newHarness(t, url, config())
		hub := h.hub()
		rp := h.relyingParty(store.Policy{})
		h.phone(rp, "jan")
		c := h.mustLogin(rp, "jan")
		approval.SetWaitSubscribed(h.e, func(id string) {
			if _, err := h.e.Cancel(h.ctx, "apikey:test", rp.ID, id); err != nil {
				t.Errorf("Cancel: %v", err)
			}
		})
		r, err := h.e.Wait(h.ctx, hub, rp.ID, c.Request.ID, nil, func([]store.RequestTarget) error { return nil })
		if err != nil || r.Status != store.StatusCancelled {
			t.Fatalf("Wait: %v %v", r.Status, err)
		}
	})
}

// TestWaitWokenByHubRecheck decides a request behind the engine's back (no
// news at all) while a waiter without a timer of its own waits: one round
// of the hub's batched recheck wakes it.
func TestWaitWokenByHubRecheck(t *testing.T) {
	storetest.ForEachBackend(t, func(t *testing.T, url string) {
		h := newHarness(t, url, config())
		hub := h.hub()
		rp := h.relyingParty(store.Policy{})
		h.phone(rp, "jan")
		c := h.mustLogin(rp, "jan")
		subscribed := make(chan struct{})
		approval.SetWaitSubscribed(h.e, func(id string) {
			if id == c.Request.ID {
				close(subscribed)
			}
		})
		type result struct {
			r   store.Request
			err error
		}
		done := make(chan result, 1)
		go func() {
			r, err := h.e.Wait(h.ctx, hub, rp.ID, c.Request.ID, nil, func([]store.RequestTarget) error { return nil })
			done <- result{r, err}
		}()
		<-subscribed
		if err := h.st.DecideRequest(h.ctx, store.Decision{RequestID: c.Request.ID, Status: store.StatusDenied, Reason: store.ReasonUser, At: h.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		hub.Recheck(h.ctx, h.e.Settled)
		got := <-done
		if got.err != nil || got.r.Status != store.StatusDenied {
			t.Fatalf("Wait: %v %v", got.r.Status, got.err)
		}
	})
}
