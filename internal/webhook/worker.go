package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/tracing"
)

// sender makes the HTTP attempts. It never follows a redirect: a 3xx is a
// failed attempt, so nothing reaches an address the operator did not
// register.
type sender struct {
	client *http.Client
}

func newSender(timeout time.Duration, tp trace.TracerProvider) *sender {
	return &sender{client: &http.Client{
		Timeout:   timeout,
		Transport: tracing.Transport(tp, nil),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

// send posts body to url, signed, and returns the status (0 when none came
// back) and why it failed (nil for a 2xx).
func (c *sender) send(ctx context.Context, url, sec, id string, at time.Time, body []byte) (int, error) {
	ts := at.Unix()
	sig, err := Sign(sec, id, ts, body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pushauth-webhooks/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return resp.StatusCode, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		// Only the host: the target may repeat the endpoint's path and
		// query, which may hold a token.
		return resp.StatusCode, fmt.Errorf("redirect to host %q not followed", hostOf(resp.Header.Get("Location")))
	}
	return resp.StatusCode, fmt.Errorf("receiver answered %s", resp.Status)
}

// Run delivers due deliveries every PollEvery, and at once when this
// replica queues new ones, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.PollEvery)
	defer t.Stop()
	sweep := time.NewTicker(time.Hour)
	defer sweep.Stop()
	for {
		if _, err := s.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "deliver webhooks", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-s.kick:
		case <-sweep.C:
			if _, err := s.DeleteFinished(ctx); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "delete finished webhook deliveries", "err", err)
			}
		}
	}
}

// DeleteFinished deletes deliveries finished more than KeepFinished ago,
// in bounded batches, and returns how many. Safe on every replica at once.
func (s *Service) DeleteFinished(ctx context.Context) (int64, error) {
	var total int64
	for {
		n, err := s.store.DeleteWebhookDeliveriesBefore(ctx, s.clock().Add(-s.cfg.KeepFinished), 1000)
		total += n
		if err != nil || n < 1000 {
			return total, err
		}
	}
}

// DeliverDue makes one attempt at every delivery due now that no other
// worker holds, and returns how many it attempted. Workers on every
// replica may run it at once: each delivery is claimed by exactly one.
func (s *Service) DeliverDue(ctx context.Context) (int, error) {
	n := 0
	for {
		now := s.clock()
		claim := secret.NewID("whc", now.UnixMilli())
		// Held for the attempt's timeout and a margin: a worker that dies
		// holding a delivery gives it back by then.
		ds, err := s.store.ClaimWebhookDeliveries(ctx, now, now.Add(s.cfg.Timeout+30*time.Second), claim, s.cfg.Workers)
		if err != nil || len(ds) == 0 {
			return n, err
		}
		g, gctx := errgroup.WithContext(ctx)
		for _, d := range ds {
			g.Go(func() error { return s.attempt(gctx, d) })
		}
		if err := g.Wait(); err != nil {
			return n, err
		}
		n += len(ds)
		if len(ds) < s.cfg.Workers {
			return n, nil
		}
	}
}

// attempt delivers d once and writes the outcome.
func (s *Service) attempt(ctx context.Context, d store.WebhookDelivery) error {
	ep, err := s.store.GetWebhookEndpoint(ctx, d.EndpointID)
	if err != nil {
		return err
	}
	sec, err := s.keys.Open(sealPurpose, []byte(ep.ID), ep.Secret)
	if err != nil {
		return fmt.Errorf("open the signing secret of webhook endpoint %s: %w", ep.ID, err)
	}
	// The attempt's span continues the trace of the call that made the
	// event (a login's decision, an API key's creation), when it was traced.
	sctx := tracing.Stored{Traceparent: d.Traceparent}.Context(ctx)
	status, sendErr := s.sender.send(sctx, ep.URL, string(sec), d.EventID, s.now(), d.Body)
	sendErr = withoutURL(sendErr)
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the hold ends and another attempt follows
	}
	now := s.clock()
	d.Attempts++
	d.LastStatus = status
	d.LastError = ""
	result := "delivered"
	switch {
	case sendErr == nil:
		d.State, d.FinishedAt = store.WebhookDelivered, now
	case now.Sub(d.CreatedAt) >= s.cfg.RetryFor:
		d.State, d.FinishedAt, d.LastError, result = store.WebhookFailed, now, trim(sendErr.Error()), "gave_up"
	default:
		d.NextAttemptAt, d.LastError, result = now.Add(s.backoff(d.Attempts)), trim(sendErr.Error()), "retry"
	}
	if err := s.store.FinishWebhookAttempt(ctx, d); err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.log.WarnContext(ctx, "webhook attempt outlived its hold", "delivery_id", d.ID, "endpoint_id", ep.ID)
			return nil
		}
		return err
	}
	if s.observe != nil {
		s.observe(result)
	}
	if s.cfg.Observe != nil {
		defer s.cfg.Observe(d, result)
	}
	if sendErr != nil {
		s.log.InfoContext(ctx, "webhook attempt failed", "delivery_id", d.ID, "endpoint_id", ep.ID, "event_id", d.EventID,
			"attempt", d.Attempts, "status", status, "result", result, "err", sendErr)
	}
	since, err := s.store.RecordWebhookResult(ctx, ep.ID, sendErr == nil, now)
	if err != nil {
		return err
	}
	if sendErr != nil && !since.IsZero() && now.Sub(since) >= s.cfg.DisableAfter {
		s.log.WarnContext(ctx, "disabling a webhook endpoint that keeps failing", "endpoint_id", ep.ID, "failing_since", since)
		return s.disable(ctx, audit.ActorSystem, ep, reasonFailing(since))
	}
	return nil
}

// withoutURL drops the endpoint's URL from a client error ("Post \"…\":
// dial tcp …: connection refused"): the URL may carry a token in its path
// or query, and the error is logged and shown in the deliveries list.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// backoff is the wait after the n-th failed attempt: BackoffBase doubling
// up to BackoffMax, then a random half of it taken off (jitter), so
// deliveries that failed together do not retry together.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.BackoffBase
	for i := 1; i < n && d < s.cfg.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.cfg.BackoffMax)
	return d/2 + rand.N(d/2+1)
}
