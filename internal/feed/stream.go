package feed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/store"
)

// DefaultRetention is how long the stream keeps events when
// events_retention is not set: a login server down for a week still
// catches up.
const DefaultRetention = 7 * 24 * time.Hour

// DuplicateWindow is how long the stream remembers an event id, so an
// event a relay publishes again (its replica died before deleting it from
// the outbox) is stored once. It is far longer than a relay's hold.
const DuplicateWindow = 10 * time.Minute

// Stream is the JetStream stream PUSHAUTH_EVENTS.
type Stream struct {
	js jetstream.JetStream
}

// ValidateRetention checks an events_retention setting.
func ValidateRetention(d time.Duration) error {
	if d < time.Hour || d > 365*24*time.Hour {
		return fmt.Errorf("events_retention must be between 1h and 8760h, got %s", d)
	}
	return nil
}

// NewStream creates or updates the stream with this retention (zero means
// DefaultRetention) on replicas NATS nodes (the nats_replicas setting, at
// least 1), or the stream's current count if that is larger: a stream is
// never shrunk. Every replica calls it; the last one's retention wins, so
// all replicas need the same setting.
func NewStream(ctx context.Context, js jetstream.JetStream, retention time.Duration, replicas int) (*Stream, error) {
	if retention == 0 {
		retention = DefaultRetention
	}
	if err := ValidateRetention(retention); err != nil {
		return nil, err
	}
	replicas = max(replicas, 1)
	if s, err := js.Stream(ctx, events.SecurityEventStream); err == nil {
		replicas = max(replicas, s.CachedInfo().Config.Replicas)
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("feed: stream %s: %w", events.SecurityEventStream, err)
	}
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        events.SecurityEventStream,
		Description: "pushauth security events, per relying party",
		Subjects:    events.SecurityEventSubjects,
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    replicas,
		MaxAge:      retention,
		Duplicates:  DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return nil, fmt.Errorf("feed: stream %s: %w", events.SecurityEventStream, err)
	}
	return &Stream{js: js}, nil
}

// Publish stores events in the stream, each under its id as Msg-Id.
func (s *Stream) Publish(ctx context.Context, evs []store.FeedEvent) error {
	futures := make([]jetstream.PubAckFuture, 0, len(evs))
	for _, e := range evs {
		subj, err := events.SecurityEventSubject(e.RelyingPartyID, e.Type)
		if err != nil {
			return fmt.Errorf("feed: event %s: %w", e.ID, err)
		}
		f, err := s.js.PublishAsync(subj, e.Body, jetstream.WithMsgID(e.ID), jetstream.WithExpectStream(events.SecurityEventStream))
		if err != nil {
			return fmt.Errorf("feed: publish event %s: %w", e.ID, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("feed: publish event: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Watch calls fn with each event of the relying party after the cursor
// after (a stream sequence; 0 is from the oldest kept), in order, until ctx
// ends or fn fails. Events the retention removed meanwhile are skipped.
func (s *Stream) Watch(ctx context.Context, relyingPartyID string, after uint64, fn func(Event) error) error {
	filter, err := events.SecurityEventFilter(relyingPartyID)
	if err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if after > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	cons, err := s.js.OrderedConsumer(ctx, events.SecurityEventStream, cfg)
	if err != nil {
		return fmt.Errorf("feed: watch: %w", err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("feed: watch: %w", err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return context.Canceled
			}
			return fmt.Errorf("feed: watch: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("feed: watch: %w", err)
		}
		e, err := Decode(msg.Data())
		if err != nil || e.RelyingPartyID != relyingPartyID {
			continue // not an event of ours: never shown
		}
		e.Cursor = md.Sequence.Stream
		if err := fn(e); err != nil {
			return err
		}
	}
}
