package push

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushauth/pushauth/internal/natstest"
)

// clusterJS connects to a cluster as a separate replica would.
func clusterJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// replicasOf reports how many nodes hold the stream and the consumer once
// JetStream has moved them (it raises replicas in the background; there is
// no event for it, so this polls the cluster until want or a minute).
func replicasOf(t *testing.T, ctx context.Context, js jetstream.JetStream, want int) (stream, consumer int) {
	t.Helper()
	cfg := QueueConfig{}.withDefaults()
	deadline := time.Now().Add(time.Minute)
	for {
		s, err := js.Stream(ctx, cfg.Stream)
		if err != nil {
			t.Fatal(err)
		}
		stream = peers(s.CachedInfo().Cluster)
		c, err := s.Consumer(ctx, cfg.Consumer)
		if err != nil {
			t.Fatal(err)
		}
		consumer = peers(c.CachedInfo().Cluster)
		if (stream == want && consumer == want) || time.Now().After(deadline) {
			return stream, consumer
		}
		time.Sleep(50 * time.Millisecond) // polling cluster state, see above
	}
}

func peers(ci *jetstream.ClusterInfo) int {
	if ci == nil {
		return 1
	}
	n := 0
	if ci.Leader != "" {
		n++
	}
	for _, r := range ci.Replicas {
		if r.Current {
			n++
		}
	}
	return n
}

// A replica started with more replicas raises the stream and its consumer;
// one started with fewer leaves them as they are.
func TestQueueReplicasRaisedNeverShrunk(t *testing.T) {
	cl := natstest.NewCluster(t, 3)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	js := clusterJS(t, cl.URL())
	send := newFuncSender(nil)

	if _, err := NewQueue(ctx, js, QueueConfig{Replicas: 1}, send, nil, nil); err != nil {
		t.Fatal(err)
	}
	if s, c := replicasOf(t, ctx, js, 1); s != 1 || c != 1 {
		t.Fatalf("created with 1: stream %d, consumer %d replicas", s, c)
	}
	if _, err := NewQueue(ctx, js, QueueConfig{Replicas: 3}, send, nil, nil); err != nil {
		t.Fatal(err)
	}
	if s, c := replicasOf(t, ctx, js, 3); s != 3 || c != 3 {
		t.Fatalf("raised to 3: stream %d, consumer %d replicas", s, c)
	}
	if _, err := NewQueue(ctx, js, QueueConfig{Replicas: 1}, send, nil, nil); err != nil {
		t.Fatal(err)
	}
	if s, c := replicasOf(t, ctx, js, 3); s != 3 || c != 3 {
		t.Fatalf("a replica with 1 shrank the stream: stream %d, consumer %d replicas", s, c)
	}
	// A shrink would show in the configuration before the nodes move.
	if s, err := js.Stream(ctx, QueueConfig{}.withDefaults().Stream); err != nil || s.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("stream configured with fewer replicas after a start with 1: %v", err)
	}
}
