package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// MaxReplicas is the most replicas JetStream keeps of a stream.
const MaxReplicas = 5

// ClusterSize is how many NATS servers the Bus's cluster has, as the servers
// advertise them, and whether that is known: the embedded server and a
// standalone server are one; a cluster that advertises no client URLs
// (no_advertise) is unknown.
func (b *Bus) ClusterSize() (n int, known bool) {
	if b.srv != nil || b.nc.ConnectedClusterName() == "" {
		return 1, true
	}
	// The pool holds the configured URLs and those the cluster advertised,
	// de-duplicated by host:port.
	n = len(b.nc.Servers())
	return n, n > 1
}

// Replicas resolves the nats_replicas setting against the cluster: 0 means
// 3 on a cluster of three or more nodes, else 1; an explicit count must be
// 1..MaxReplicas and, when the size is known, at most the cluster's size.
func Replicas(setting, size int, known bool) (int, error) {
	switch {
	case setting < 0 || setting > MaxReplicas:
		return 0, fmt.Errorf("nats_replicas: must be 1 to %d, or 0 for the default, got %d", MaxReplicas, setting)
	case setting == 0 && known && size >= 3:
		return 3, nil
	case setting == 0:
		return 1, nil
	case known && setting > size:
		return 0, fmt.Errorf("nats_replicas: %d is more than the %d NATS server(s) of the cluster", setting, size)
	}
	return setting, nil
}

// WaitJetStream waits until JetStream answers (a cluster may still be
// electing its meta leader, or NATS may still be starting), retrying with a
// growing pause and logging each failure, until ctx ends.
func (b *Bus) WaitJetStream(ctx context.Context) error {
	js, err := b.JetStream()
	if err != nil {
		return err
	}
	pause := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, connectTimeout)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				b.logger.Info("jetstream ready", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("events: JetStream not ready (%w): %w", ctx.Err(), err)
		}
		b.logger.Warn("jetstream not ready; waiting", "attempt", attempt, "retry_in", pause.String(), "err", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("events: JetStream not ready (%w): %w", ctx.Err(), err)
		case <-t.C:
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// StartWait is Start retried, with a growing pause and each failure logged,
// until it succeeds or ctx ends, followed by WaitJetStream: a replica
// started before its NATS cluster waits for it instead of failing.
func StartWait(ctx context.Context, cfg Config, logger *slog.Logger) (*Bus, error) {
	if logger == nil {
		logger = slog.Default()
	}
	pause := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		b, err := Start(ctx, cfg, logger)
		if err == nil {
			if err := b.WaitJetStream(ctx); err != nil {
				b.Close()
				return nil, err
			}
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		logger.Warn("nats not reachable; retrying", "attempt", attempt, "retry_in", pause.String(), "err", err)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		pause = min(2*pause, 5*time.Second)
	}
}
