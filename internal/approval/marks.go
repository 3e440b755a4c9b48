package approval

import (
	"context"
	"errors"
	"time"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/store"
)

// The group-committer. Seen marks and push results are not on the request
// path: GetRequest and the push workers hand them over and go on; RunMarks
// writes all that arrived while it was writing the previous ones in one
// transaction, then tells the waiters what changed.

// mark is one change of a target.
type mark struct {
	requestID, deviceID string
	// seen, when set, is a seen mark.
	seen time.Time
	// delivery, when set, is a push result, with its detail and time.
	delivery, detail string
	at               time.Time
	// deadToken, when set, is a push token to mark dead.
	deadToken string
}

type marks struct {
	e  *Engine
	ch chan mark
}

func newMarks(e *Engine) *marks { return &marks{e: e, ch: make(chan mark, 4096)} }

// add hands m to the committer; it waits while the committer is 4096 marks
// behind, and gives up when ctx ends.
func (m *marks) add(ctx context.Context, mk mark) {
	select {
	case m.ch <- mk:
	case <-ctx.Done():
	}
}

// maxMarks bounds one transaction.
const maxMarks = 512

// RunMarks writes seen marks and push results until ctx ends. Those still
// queued then are written before it returns.
func (e *Engine) RunMarks(ctx context.Context) error {
	m := e.marks
	batch := make([]mark, 0, maxMarks)
	for {
		select {
		case <-ctx.Done():
			// What was handed over is written: a shut-down replica's
			// waiters are gone, but other replicas' are not.
			for {
				select {
				case mk := <-m.ch:
					batch = append(batch, mk)
					if len(batch) == maxMarks {
						m.write(context.WithoutCancel(ctx), batch)
						batch = batch[:0]
					}
				default:
					m.write(context.WithoutCancel(ctx), batch)
					return nil
				}
			}
		case mk := <-m.ch:
			batch = append(batch[:0], mk)
		more:
			for len(batch) < maxMarks {
				select {
				case mk := <-m.ch:
					batch = append(batch, mk)
				default:
					break more
				}
			}
			m.write(ctx, batch)
			batch = batch[:0]
		}
	}
}

// write applies batch in one transaction and publishes the changes.
func (m *marks) write(ctx context.Context, batch []mark) {
	if len(batch) == 0 {
		return
	}
	e := m.e
	var news []store.RequestTarget
	err := e.store.InTx(ctx, func(tx store.Store) error {
		news = news[:0]
		for _, mk := range batch {
			if !mk.seen.IsZero() {
				first, err := tx.MarkTargetSeen(ctx, mk.requestID, mk.deviceID, mk.seen)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				if first {
					news = append(news, store.RequestTarget{RequestID: mk.requestID, DeviceID: mk.deviceID, SeenAt: mk.seen})
				}
				continue
			}
			err := tx.UpdateTargetDelivery(ctx, mk.requestID, mk.deviceID, mk.delivery, mk.detail, mk.at)
			if errors.Is(err, store.ErrNotFound) {
				continue // deleted by retention meanwhile
			}
			removed := errors.Is(err, store.ErrConflict) // the phone was taken off the request meanwhile: it stays off
			if err != nil && !removed {
				return err
			}
			if mk.deadToken != "" {
				// The token is dead whether or not the target still counts.
				if err := tx.MarkPushTokenDead(ctx, mk.deviceID, mk.deadToken); err != nil {
					return err
				}
			}
			if removed {
				continue
			}
			news = append(news, store.RequestTarget{RequestID: mk.requestID, DeviceID: mk.deviceID, Delivery: mk.delivery, Detail: mk.detail, UpdatedAt: mk.at})
		}
		return nil
	})
	if err != nil {
		// Lost marks cost the waiters their progress news, nothing more:
		// the decision does not depend on them.
		e.log.WarnContext(ctx, "write seen marks and push results", "marks", len(batch), "err", err)
		return
	}
	for i := range news {
		t := news[i]
		e.publishRequest(ctx, t.RequestID, events.RequestNews{Type: events.NewsProgress, Target: &t})
	}
}
