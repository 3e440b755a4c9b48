package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/sms"
	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// domainMetrics say how logins go, beside the RPC metrics: what was decided
// and how fast, what the push and SMS providers did, and what waits.
type domainMetrics struct {
	decisions *prometheus.CounterVec
	toDecide  *prometheus.HistogramVec
	pushes    *prometheus.CounterVec
	skipped   prometheus.Counter
	sms       *prometheus.CounterVec
	open      *prometheus.GaugeVec
	reg       prometheus.Registerer
}

func newDomainMetrics(reg prometheus.Registerer) *domainMetrics {
	d := &domainMetrics{
		reg: reg,
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushauth_requests_decided_total",
			Help: "Login and pairing requests decided on this replica, by kind (LOGIN, PAIRING), status (APPROVED, DENIED, EXPIRED, CANCELLED) and reason (USER, NUMBER_MISMATCH, FRAUD_REPORT, TIMEOUT, …).",
		}, []string{"kind", "status", "reason"}),
		toDecide: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pushauth_request_decision_seconds",
			Help:    "Time from creating a request to its decision, by kind and status.",
			Buckets: []float64{1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600},
		}, []string{"kind", "status"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushauth_pushes_total",
			Help: "Push sends on this replica, by provider (fcm, apns, log) and result (sent, or the failure reason: TOKEN_INVALID, PROVIDER_UNAVAILABLE, RATE_LIMITED, REJECTED, NOT_CONFIGURED).",
		}, []string{"provider", "result"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pushauth_pushes_skipped_total",
			Help: "Queued pushes dropped unsent on this replica because their request no longer waited for an answer (decided, cancelled or expired) when a worker took them.",
		}),
		sms: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushauth_sms_total",
			Help: "SMS sends on this replica, by provider (twilio, messagebird, outbox) and result (sent, temporary_error, error).",
		}, []string{"provider", "result"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pushauth_open_waits",
			Help: "Calls that wait for news, open on this replica: WaitRequest and AwaitRequest (login servers), WatchRequests (apps).",
		}, []string{"method"}),
	}
	reg.MustRegister(d.decisions, d.toDecide, d.pushes, d.skipped, d.sms, d.open)
	for _, m := range []string{"WaitRequest", "AwaitRequest", "WatchRequests"} {
		d.open.WithLabelValues(m)
	}
	return d
}

// decided is the approval engine's OnDecided hook.
func (m *Metrics) decided(_ context.Context, r store.Request, d store.Decision) {
	m.domain.decisions.WithLabelValues(r.Kind, d.Status, d.Reason).Inc()
	if !r.CreatedAt.IsZero() && !d.At.Before(r.CreatedAt) {
		m.domain.toDecide.WithLabelValues(r.Kind, d.Status).Observe(d.At.Sub(r.CreatedAt).Seconds())
	}
}

// registerDomain adds the metrics read on each scrape: the SMS budget left
// and the push backlog.
func (m *Metrics) registerDomain(o Options, queue *push.Queue) {
	if budget := o.Registration.Limits.GlobalDay; budget > 0 {
		m.domain.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pushauth_sms_budget_left",
			Help: "SMS the whole deployment may still send in the rolling 24 hours (sms_daily_budget minus those sent); -1 when the database cannot say.",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := o.Store.CountRate(ctx, "sms:global", o.Now(), 24*time.Hour)
			if err != nil {
				return -1
			}
			return float64(max(budget-n, 0))
		}))
	}
	backlog := func(inFlight bool) func() float64 {
		return func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			p, f, err := queue.Backlog(ctx)
			switch {
			case err != nil:
				return -1
			case inFlight:
				return float64(f)
			default:
				return float64(p)
			}
		}
	}
	m.domain.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "pushauth_push_queue_jobs",
			Help:        "Push jobs in the shared queue (the same on every replica): pending ones no worker took yet, in_flight ones being sent or waiting to retry; -1 when NATS cannot say.",
			ConstLabels: prometheus.Labels{"state": "pending"},
		}, backlog(false)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "pushauth_push_queue_jobs",
			Help:        "Push jobs in the shared queue (the same on every replica): pending ones no worker took yet, in_flight ones being sent or waiting to retry; -1 when NATS cannot say.",
			ConstLabels: prometheus.Labels{"state": "in_flight"},
		}, backlog(true)),
	)
}

// waitMethods are the calls counted in pushauth_open_waits, by full name.
var waitMethods = map[string]string{
	pushauthv1.RelyingPartyService_WaitRequest_FullMethodName:  "WaitRequest",
	pushauthv1.RelyingPartyService_AwaitRequest_FullMethodName: "AwaitRequest",
	pushauthv1.DeviceService_WatchRequests_FullMethodName:      "WatchRequests",
}

// openUnary and openStream count the open waits; they run innermost, so
// only admitted calls count.
func (m *Metrics) openUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if name, ok := waitMethods[info.FullMethod]; ok {
		g := m.domain.open.WithLabelValues(name)
		g.Inc()
		defer g.Dec()
	}
	return handler(ctx, req)
}

func (m *Metrics) openStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if name, ok := waitMethods[info.FullMethod]; ok {
		g := m.domain.open.WithLabelValues(name)
		g.Inc()
		defer g.Dec()
	}
	return handler(srv, ss)
}

// countSkipped wraps the push queue's check of a job's request, counting
// the jobs it drops.
func (m *Metrics) countSkipped(wanted func(context.Context, push.Job) (bool, error)) func(context.Context, push.Job) (bool, error) {
	return func(ctx context.Context, j push.Job) (bool, error) {
		ok, err := wanted(ctx, j)
		if err == nil && !ok {
			m.domain.skipped.Inc()
		}
		return ok, err
	}
}

// countingPushes counts what the push provider did with each send.
type countingPushes struct {
	push.Sender
	m *Metrics
}

// Send implements push.Sender.
func (c countingPushes) Send(ctx context.Context, j push.Job) error {
	provider := c.Name()
	if r, ok := c.Sender.(interface {
		Route(push.Job) (push.Sender, error)
	}); ok {
		if s, err := r.Route(j); err == nil {
			provider = s.Name()
		}
	}
	err := c.Sender.Send(ctx, j)
	result := "sent"
	if err != nil {
		result = string(push.ReasonOf(err))
		if result == "" {
			result = "error"
		}
	}
	c.m.domain.pushes.WithLabelValues(provider, result).Inc()
	return err
}

// countingSMS counts what the SMS provider did with each send.
type countingSMS struct {
	sms.Sender
	m *Metrics
}

// Send implements sms.Sender.
func (c countingSMS) Send(ctx context.Context, msg sms.Message) (string, error) {
	id, err := c.Sender.Send(ctx, msg)
	result := "sent"
	switch {
	case err == nil:
	case sms.IsTemporary(err) || errors.Is(err, context.DeadlineExceeded):
		result = "temporary_error"
	default:
		result = "error"
	}
	c.m.domain.sms.WithLabelValues(strings.ToLower(c.Name()), result).Inc()
	return id, err
}
