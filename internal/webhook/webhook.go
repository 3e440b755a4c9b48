// Package webhook delivers relying parties' security events to the HTTP
// endpoints operators registered for them, signed per the Standard
// Webhooks specification, from a durable queue in the database: retried
// with exponential back-off and jitter for RetryFor, once per event and
// endpoint, never to an address the operator did not register (redirects
// are not followed), and an endpoint failing for DisableAfter is disabled
// with an audit event.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/pushauth/pushauth/decision"
	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/store"
)

// sealPurpose binds sealed signing secrets to this use.
const sealPurpose = "webhook signing secret"

// Config tunes deliveries. Zero fields take the defaults shown.
type Config struct {
	// RetryFor is how long a delivery is retried before it is given up
	// (26 h: the specification's "at least a day", and some).
	RetryFor time.Duration
	// BackoffBase and BackoffMax shape the wait between attempts: base
	// doubling per attempt up to max, each with jitter (5 s, 1 h).
	BackoffBase, BackoffMax time.Duration
	// DisableAfter disables an endpoint whose attempts have all failed for
	// this long (5 days).
	DisableAfter time.Duration
	// Timeout bounds one attempt (10 s).
	Timeout time.Duration
	// PollEvery is how often a worker looks for due deliveries (1 s).
	PollEvery time.Duration
	// Workers is how many attempts a replica makes at once (8).
	Workers int
	// AllowHTTP accepts http:// endpoints, not only https:// (tests,
	// receivers on a private network).
	AllowHTTP bool
	// KeepFinished is how long delivered and given-up deliveries stay
	// listed before workers delete them (30 days).
	KeepFinished time.Duration
	// Observe, if set, is told of every attempt once all it changed is
	// written (tests wait on it instead of sleeping).
	Observe func(d store.WebhookDelivery, result string)
	// TracerProvider, if set, puts a client span around every attempt and
	// sends its traceparent to the receiver; nil means no spans.
	TracerProvider trace.TracerProvider
}

func (c Config) withDefaults() Config {
	if c.RetryFor <= 0 {
		c.RetryFor = 26 * time.Hour
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = 5 * time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = time.Hour
	}
	if c.DisableAfter <= 0 {
		c.DisableAfter = 5 * 24 * time.Hour
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.PollEvery <= 0 {
		c.PollEvery = time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.KeepFinished <= 0 {
		c.KeepFinished = 30 * 24 * time.Hour
	}
	return c
}

// Validate checks settings an operator gave.
func (c Config) Validate() error {
	if c.RetryFor != 0 && c.RetryFor < 24*time.Hour {
		return fmt.Errorf("webhook_retry_for must be at least 24h, got %s", c.RetryFor)
	}
	if c.DisableAfter != 0 && c.DisableAfter < time.Hour {
		return fmt.Errorf("webhook_disable_after must be at least 1h, got %s", c.DisableAfter)
	}
	if c.Timeout < 0 || c.Timeout > time.Minute {
		return fmt.Errorf("webhook_timeout must be at most 1m, got %s", c.Timeout)
	}
	return nil
}

// Service manages endpoints and delivers to them.
type Service struct {
	cfg   Config
	store store.Store
	keys  *keyring.Keyring
	now   func() time.Time
	log   *slog.Logger
	// observe is told each attempt's result (metrics); may be nil.
	observe func(result string)
	kick    chan struct{}
	sender  *sender
}

// New returns the webhook service. observe, if set, is told the result of
// every attempt ("delivered", "retry", "gave_up").
func New(cfg Config, st store.Store, keys *keyring.Keyring, now func() time.Time, log *slog.Logger, observe func(result string)) *Service {
	cfg = cfg.withDefaults()
	return &Service{cfg: cfg, store: st, keys: keys, now: now, log: log, observe: observe,
		kick: make(chan struct{}, 1), sender: newSender(cfg.Timeout, cfg.TracerProvider)}
}

func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// checkURL accepts only absolute http(s) URLs without credentials.
func (s *Service) checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return fault.Invalid("url", "must be an absolute https:// URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && s.cfg.AllowHTTP:
	default:
		return fault.Invalid("url", "must be an https:// URL")
	}
	if u.User != nil {
		return fault.Invalid("url", "must not hold credentials")
	}
	if u.Fragment != "" {
		return fault.Invalid("url", "must not hold a fragment")
	}
	return nil
}

// Create registers url for the relying party rp and returns the endpoint
// and its signing secret, which is shown only here.
func (s *Service) Create(ctx context.Context, actor string, rp store.RelyingParty, rawURL, description string) (store.WebhookEndpoint, string, error) {
	if err := s.checkURL(rawURL); err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	if !decision.SingleLine(description) {
		return store.WebhookEndpoint{}, "", fault.Invalid("description", "must be one line without control characters")
	}
	now := s.clock()
	sec := newSecret()
	e := store.WebhookEndpoint{ID: secret.NewID("whe", now.UnixMilli()), RelyingPartyID: rp.ID, URL: rawURL, Description: description,
		CreatedAt: now, UpdatedAt: now}
	e.Secret = s.keys.Seal(sealPurpose, []byte(e.ID), []byte(sec))
	err := s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.CreateWebhookEndpoint(ctx, e); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: actor, Action: "webhook.created", RelyingPartyID: rp.ID, Target: e.ID,
			Details: map[string]string{"host": hostOf(rawURL)}})
	})
	if err != nil {
		return store.WebhookEndpoint{}, "", fmt.Errorf("create webhook endpoint: %w", err)
	}
	return e, sec, nil
}

// hostOf is what the audit log keeps of a URL: its host, not its path (a
// path may carry a token).
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// List returns the endpoints of rp (every relying party's when rp.ID is
// empty).
func (s *Service) List(ctx context.Context, rp store.RelyingParty, includeDisabled bool) ([]store.WebhookEndpoint, error) {
	return s.store.ListWebhookEndpoints(ctx, rp.ID, includeDisabled)
}

// Get returns an endpoint.
func (s *Service) Get(ctx context.Context, id string) (store.WebhookEndpoint, error) {
	e, err := s.store.GetWebhookEndpoint(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.WebhookEndpoint{}, fault.Newf(fault.NotFound, "webhook endpoint %q not found", id)
	}
	return e, err
}

// RotateSecret gives the endpoint a new signing secret, returned only
// here. Deliveries from now on are signed with it alone.
func (s *Service) RotateSecret(ctx context.Context, actor, id string) (store.WebhookEndpoint, string, error) {
	e, err := s.Get(ctx, id)
	if err != nil {
		return store.WebhookEndpoint{}, "", err
	}
	now := s.clock()
	sec := newSecret()
	sealed := s.keys.Seal(sealPurpose, []byte(e.ID), []byte(sec))
	err = s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.SetWebhookSecret(ctx, e.ID, sealed, now); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: actor, Action: "webhook.secret_rotated", RelyingPartyID: e.RelyingPartyID, Target: e.ID})
	})
	if err != nil {
		return store.WebhookEndpoint{}, "", fmt.Errorf("rotate webhook secret: %w", err)
	}
	e.Secret, e.UpdatedAt = sealed, now
	return e, sec, nil
}

// Disable stops deliveries to an endpoint; those queued stay, unsent.
// Disabling twice is harmless.
func (s *Service) Disable(ctx context.Context, actor, id, reason string) (store.WebhookEndpoint, error) {
	if !decision.SingleLine(reason) {
		return store.WebhookEndpoint{}, fault.Invalid("reason", "must be one line without control characters")
	}
	e, err := s.Get(ctx, id)
	if err != nil {
		return store.WebhookEndpoint{}, err
	}
	if err := s.disable(ctx, actor, e, reason); err != nil {
		return store.WebhookEndpoint{}, err
	}
	return s.Get(ctx, id)
}

// disable disables e with an audit event, if it is still enabled.
func (s *Service) disable(ctx context.Context, actor string, e store.WebhookEndpoint, reason string) error {
	now := s.clock()
	err := s.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.DisableWebhookEndpoint(ctx, e.ID, reason, now); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: actor, Action: "webhook.disabled", RelyingPartyID: e.RelyingPartyID, Target: e.ID,
			Details: map[string]string{"reason": reason}})
	})
	if errors.Is(err, store.ErrConflict) {
		return nil // disabled already
	}
	if err != nil {
		return fmt.Errorf("disable webhook endpoint: %w", err)
	}
	return nil
}

// Deliveries lists an endpoint's deliveries, newest first.
func (s *Service) Deliveries(ctx context.Context, id string, before time.Time, limit int) ([]store.WebhookDelivery, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	return s.store.ListWebhookDeliveries(ctx, id, before, limit)
}

// Enqueue queues the events for every enabled endpoint of their relying
// party. It is the feed relay's hand-over: an event queued twice is
// queued once.
func (s *Service) Enqueue(ctx context.Context, evs []store.FeedEvent) error {
	now := s.clock()
	byRP := map[string][]store.WebhookEndpoint{}
	var ds []store.WebhookDelivery
	for _, ev := range evs {
		eps, ok := byRP[ev.RelyingPartyID]
		if !ok {
			var err error
			if eps, err = s.store.ListWebhookEndpoints(ctx, ev.RelyingPartyID, false); err != nil {
				return err
			}
			byRP[ev.RelyingPartyID] = eps
		}
		for _, ep := range eps {
			ds = append(ds, store.WebhookDelivery{ID: secret.NewID("whd", now.UnixMilli()), EndpointID: ep.ID, EventID: ev.ID, EventType: ev.Type,
				Body: ev.Body, NextAttemptAt: now, CreatedAt: now, Traceparent: ev.Traceparent})
		}
	}
	if len(ds) == 0 {
		return nil
	}
	if err := s.store.AddWebhookDeliveries(ctx, ds); err != nil {
		return err
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// reasonFailing is why an endpoint that kept failing was disabled.
func reasonFailing(since time.Time) string {
	return "every delivery failed since " + since.Format(time.RFC3339)
}

// trim keeps an error message short for the deliveries list.
func trim(s string) string {
	if len(s) > 300 {
		s = s[:300]
	}
	return strings.ToValidUTF8(s, "?") // after the cut, which may split a character
}
