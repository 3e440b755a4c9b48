package push

import (
	"context"
	"fmt"
)

// Backlog says how many jobs wait in the queue: pending ones no worker has
// taken yet, and in-flight ones a worker holds (sending, or waiting out a
// retry delay). It is shared by every replica, so every replica reports the
// same numbers.
func (q *Queue) Backlog(ctx context.Context) (pending, inFlight int, err error) {
	c, err := q.js.Consumer(ctx, q.cfg.Stream, q.cfg.Consumer)
	if err != nil {
		return 0, 0, fmt.Errorf("push: queue: consumer %s: %w", q.cfg.Consumer, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("push: queue: consumer %s: %w", q.cfg.Consumer, err)
	}
	return int(info.NumPending), info.NumAckPending, nil
}
