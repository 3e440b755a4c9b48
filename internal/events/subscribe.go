package events

import (
	"fmt"

	"github.com/nats-io/nats.go"
)

// Subscribe delivers the messages of one subject on a channel of size buf
// until cancel is called. It suits a few long-lived listeners, such as an
// app's open WatchRequests stream; many short waiters should share a Hub.
// When the listener falls behind by more than buf messages, newer ones are
// dropped, so listeners must treat messages as hints and re-read state.
func (b *Bus) Subscribe(subject string, buf int) (<-chan []byte, func(), error) {
	ch := make(chan []byte, buf)
	sub, err := b.nc.Subscribe(subject, func(m *nats.Msg) {
		select {
		case ch <- m.Data:
		default:
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("events: subscribe %s: %w", subject, err)
	}
	if err := b.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, nil, fmt.Errorf("events: subscribe %s: %w", subject, err)
	}
	return ch, func() { _ = sub.Unsubscribe() }, nil
}
