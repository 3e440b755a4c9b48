package approval

import (
	"context"
	"encoding/json"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/tracing"
)

// The push outbox relay. CreateApproval and ClaimPairing write one push job
// per target into the outbox in the transaction that creates the request,
// then hand the jobs to this replica's relay, which publishes them on the
// push queue and deletes them once JetStream has stored them. Jobs whose
// replica died before that are found by any replica's periodic scan. A job
// published twice (a replica died between publishing and deleting) has the
// same Msg-Id both times, so the queue sends it once.

// RelayConfig tunes the relay. Zero fields take the defaults shown.
type RelayConfig struct {
	// ScanEvery is how often the relay looks for jobs no replica handed
	// over (1 s).
	ScanEvery time.Duration
	// Grace is how old a job must be before a scan takes it: younger ones
	// are still being handed over by the replica that wrote them (5 s).
	Grace time.Duration
	// Hold is how long a scan keeps other relays off the jobs it took (30 s).
	// It must stay well inside the queue's de-duplication window.
	Hold time.Duration
	// Batch is the most jobs published at once (256).
	Batch int
	// Fault is for tests: it is asked at "handoff" (the create transaction
	// has committed) and at "published" (JetStream stored the jobs); true
	// drops the rest of the work there, as a replica killed at that point
	// would.
	Fault func(stage string) bool
	// TracerProvider, when set, makes a producer span for every job the
	// relay publishes, under the trace of the call that created the job
	// (kept in the job across the commit); nil: no spans.
	TracerProvider trace.TracerProvider
}

func (c RelayConfig) withDefaults() RelayConfig {
	if c.ScanEvery <= 0 {
		c.ScanEvery = time.Second
	}
	if c.Grace <= 0 {
		c.Grace = 5 * time.Second
	}
	if c.Hold <= 0 {
		c.Hold = 30 * time.Second
	}
	if c.Batch <= 0 {
		c.Batch = 256
	}
	return c
}

type relay struct {
	e       *Engine
	cfg     RelayConfig
	handoff chan []store.QueuedPush // jobs this replica just committed
	deletes chan []string           // ids JetStream has stored
	tracer  trace.Tracer            // nil: no spans
}

func newRelay(e *Engine, rc RelayConfig) *relay {
	r := &relay{e: e, cfg: rc.withDefaults(), handoff: make(chan []store.QueuedPush, 4096), deletes: make(chan []string, 4096)}
	if rc.TracerProvider != nil {
		r.tracer = tracing.Tracer(rc.TracerProvider)
	}
	return r
}

func (r *relay) fault(stage string) bool { return r.cfg.Fault != nil && r.cfg.Fault(stage) }

// outboxJobs are the queued pushes of a new request, for the outbox; nil
// when the engine has no queue or no device gets a push. Each job keeps the
// trace context of ctx (the creating call), so the trace survives the
// commit and whichever replica relays the job.
func (e *Engine) outboxJobs(ctx context.Context, r store.Request, rpName string, devices []store.Device, now time.Time) ([]store.QueuedPush, error) {
	if e.queue == nil {
		return nil, nil
	}
	var out []store.QueuedPush
	trc := tracing.Store(ctx)
	for _, d := range devices {
		if d.PushTokenDead || d.PushToken == "" {
			continue
		}
		j := pushJob(r, rpName, d)
		j.Trace = trc
		b, err := json.Marshal(j)
		if err != nil {
			return nil, err
		}
		out = append(out, store.QueuedPush{ID: j.ID(), Job: b, CreatedAt: now})
	}
	return out, nil
}

// pushJob is the push of request r to device d: everything a push worker
// on any replica needs, without a database read: the alert is in the
// device's language and names the relying party (rpName).
func pushJob(r store.Request, rpName string, d store.Device) push.Job {
	return push.Job{
		RequestID:    r.ID,
		DeviceID:     d.ID,
		Platform:     d.Platform,
		PushToken:    d.PushToken,
		Kind:         r.Kind,
		Locale:       d.Locale,
		RelyingParty: rpName,
		ExpiresAt:    r.ExpiresAt,
	}
}

// handOff gives committed outbox jobs to this replica's relay. When its
// buffer is full they wait for a scan.
func (r *relay) handOff(jobs []store.QueuedPush) {
	if len(jobs) == 0 || r.fault("handoff") {
		return
	}
	select {
	case r.handoff <- jobs:
	default:
	}
}

// RunRelay publishes this replica's new outbox jobs as they come and scans
// for forgotten ones every ScanEvery, until ctx ends. Jobs it still held
// stay in the outbox for the next scan.
func (e *Engine) RunRelay(ctx context.Context) error {
	r := e.relay
	deleted := make(chan struct{})
	go func() { defer close(deleted); r.runDeletes(ctx) }()
	defer func() { <-deleted }()
	t := time.NewTicker(r.cfg.ScanEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case jobs := <-r.handoff:
		more:
			for len(jobs) < r.cfg.Batch {
				select {
				case j := <-r.handoff:
					jobs = append(jobs, j...)
				default:
					break more
				}
			}
			if ids := r.publish(ctx, jobs); len(ids) > 0 {
				select {
				case r.deletes <- ids:
				case <-ctx.Done():
					return nil
				}
			}
		case <-t.C:
			if _, err := e.RelayOutbox(ctx); err != nil && ctx.Err() == nil {
				e.log.WarnContext(ctx, "relay push outbox", "err", err)
			}
		}
	}
}

// runDeletes deletes published jobs, those that arrived together in one
// statement, until ctx ends.
func (r *relay) runDeletes(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ids := <-r.deletes:
		more:
			for len(ids) < 4*r.cfg.Batch {
				select {
				case m := <-r.deletes:
					ids = append(ids, m...)
				default:
					break more
				}
			}
			if err := r.e.store.DeletePushes(ctx, ids); err != nil && ctx.Err() == nil {
				// They are published: a scan publishes them again, and the
				// queue drops the repeat.
				r.e.log.WarnContext(ctx, "delete relayed pushes from the outbox", "jobs", len(ids), "err", err)
			}
		}
	}
}

// RelayOutbox publishes every outbox job older than the grace period that
// no relay holds and returns how many it published. It is safe on every
// replica at once; RunRelay calls it every ScanEvery.
func (e *Engine) RelayOutbox(ctx context.Context) (int, error) {
	r := e.relay
	n := 0
	for {
		now := e.clock()
		jobs, err := e.store.ClaimPushes(ctx, now.Add(-r.cfg.Grace), now, now.Add(r.cfg.Hold), r.cfg.Batch)
		if err != nil {
			return n, err
		}
		if len(jobs) > 0 {
			e.log.InfoContext(ctx, "relaying push jobs no replica handed over", "jobs", len(jobs))
		}
		ids := r.publish(ctx, jobs)
		if len(ids) > 0 {
			if err := e.store.DeletePushes(ctx, ids); err != nil {
				return n, err
			}
		} else if len(jobs) > 0 {
			// The queue refused them (NATS or JetStream down): the next
			// scan, on any replica, tries again, instead of waiting out
			// the hold after NATS is back.
			// Also when ctx ended: the jobs should not wait out the hold.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			err := e.store.ReleasePushes(rctx, queuedIDs(jobs))
			cancel()
			if err != nil {
				return n, err
			}
		}
		n += len(ids)
		if len(jobs) < r.cfg.Batch || len(ids) == 0 {
			return n, nil
		}
	}
}

func queuedIDs(jobs []store.QueuedPush) []string {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

// publish enqueues jobs and returns the ids that may leave the outbox: the
// ones JetStream stored, and expired or undecodable ones. On a queue error
// it returns none: the jobs stay for a scan.
func (r *relay) publish(ctx context.Context, jobs []store.QueuedPush) []string {
	if len(jobs) == 0 {
		return nil
	}
	now := r.e.clock()
	ids := make([]string, 0, len(jobs))
	send := make([]push.Job, 0, len(jobs))
	for _, q := range jobs {
		var j push.Job
		if err := json.Unmarshal(q.Job, &j); err != nil {
			r.e.log.ErrorContext(ctx, "dropping an undecodable push job from the outbox", "id", q.ID, "err", err)
			ids = append(ids, q.ID)
			continue
		}
		if !now.Before(j.ExpiresAt) {
			ids = append(ids, q.ID) // its request is over
			continue
		}
		send = append(send, j)
	}
	if len(send) > 0 && r.e.queue != nil {
		end := r.traceSends(ctx, send)
		err := r.e.queue.Enqueue(ctx, send...)
		end(err)
		if err != nil {
			r.e.log.WarnContext(ctx, "queue pushes; they stay in the outbox for the next scan", "jobs", len(send), "err", err)
			return nil
		}
		for _, j := range send {
			ids = append(ids, j.ID())
		}
	}
	if r.fault("published") {
		return nil
	}
	return ids
}

// traceSends starts a producer span for each job that carries a trace
// context, as a child of it, and makes the job carry the span's context
// onto the queue instead. The returned func ends the spans, marked failed
// when the queue refused the jobs.
func (r *relay) traceSends(ctx context.Context, jobs []push.Job) (end func(error)) {
	if r.tracer == nil {
		return func(error) {}
	}
	spans := make([]trace.Span, 0, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		if j.Trace == (tracing.Stored{}) {
			continue
		}
		sctx, span := r.tracer.Start(j.Trace.Context(ctx), "push_outbox relay", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("messaging.system", "nats"),
				attribute.String("messaging.operation.type", "send"),
				attribute.String("messaging.message.id", j.ID()),
				attribute.String("pushauth.approval_id", j.RequestID),
				attribute.String("pushauth.device_id", j.DeviceID),
			))
		j.Trace = tracing.Store(sctx)
		spans = append(spans, span)
	}
	return func(err error) {
		for _, s := range spans {
			if err != nil {
				s.SetStatus(codes.Error, "enqueue failed; the job stays in the outbox")
			}
			s.End()
		}
	}
}
