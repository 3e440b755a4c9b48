package push

import (
	"context"
	"fmt"
	"time"
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

// Check is the queue's readiness check: the stream and the consumer answer
// and each has a leader (a replicated stream that lost its quorum has none,
// and jobs can be neither stored nor taken), and the consumer is not
// stalled: jobs have waited undelivered for more than twice AckWait since
// the last delivery (by the NATS server's clock).
func (q *Queue) Check(ctx context.Context) error {
	s, err := q.js.Stream(ctx, q.cfg.Stream)
	if err != nil {
		return fmt.Errorf("push: queue: stream %s: %w", q.cfg.Stream, err)
	}
	if ci := s.CachedInfo().Cluster; ci != nil && ci.Leader == "" {
		return fmt.Errorf("push: queue: stream %s has no leader (no quorum)", q.cfg.Stream)
	}
	c, err := s.Consumer(ctx, q.cfg.Consumer)
	if err != nil {
		return fmt.Errorf("push: queue: consumer %s: %w", q.cfg.Consumer, err)
	}
	info := c.CachedInfo()
	if info.Cluster != nil && info.Cluster.Leader == "" {
		return fmt.Errorf("push: queue: consumer %s has no leader (no quorum)", q.cfg.Consumer)
	}
	if last := info.Delivered.Last; info.NumPending > 0 && last != nil && info.TimeStamp.Sub(*last) > 2*q.cfg.AckWait {
		return fmt.Errorf("push: queue: consumer %s stalled: %d jobs waiting, none delivered since %s",
			q.cfg.Consumer, info.NumPending, last.UTC().Format(time.RFC3339))
	}
	return nil
}
