package events

import (
	"context"
	"time"
)

// Wait blocks until read reports done, and returns its value.
//
// The pattern makes NATS an accelerator, never the source of truth:
//
//  1. Subscribe first (hub.Watch(key)), then read the state (read). A
//     decision committed before the read is seen by the read; one committed
//     after it is announced on a subscription that already exists. Nothing
//     slips between the two.
//  2. While not done, wait for news on key, a recheck tick, or ctx. News and
//     ticks both just trigger another read: messages carry no state, so a
//     duplicate is harmless and a lost core-NATS message only costs latency
//     until the next tick.
//
// read returns (value, done, err); a non-nil err ends the wait (a read that
// prefers to ride out transient errors can return done=false instead).
// recheck is typically a time.Ticker's C; nil disables rechecks. A nil hub
// means polling on recheck only. Wait returns ctx.Err() when ctx ends,
// ErrHubClosed if the hub closes first (after one last read), and an
// ErrInvalidID error if key cannot be a subject token.
func Wait[T any](ctx context.Context, hub *Hub, key string, read func(context.Context) (T, bool, error), recheck <-chan time.Time) (T, error) {
	var zero T
	if err := ValidateID(key); err != nil {
		return zero, err
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	var news <-chan []byte // nil hub: never ready
	if hub != nil {
		ch, cancel := hub.Watch(key)
		defer cancel()
		news = ch
	}
	for {
		v, done, err := read(ctx)
		if err != nil {
			return zero, err
		}
		if done {
			return v, nil
		}
		select {
		case _, ok := <-news:
			if !ok {
				return lastRead(ctx, read)
			}
		case <-recheck:
		case <-ctx.Done():
			return zero, ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return zero, err
		}
	}
}

// lastRead gives a waiter whose hub closed one final look at the state.
func lastRead[T any](ctx context.Context, read func(context.Context) (T, bool, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	v, done, err := read(ctx)
	switch {
	case err != nil:
		return zero, err
	case done:
		return v, nil
	default:
		return zero, ErrHubClosed
	}
}
