package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/tracing"
)

// Outcome is what became of one delivery of a job.
type Outcome int

// Outcomes reported to the result callback.
const (
	// Sent: the provider accepted the push.
	Sent Outcome = iota + 1
	// Retrying: a temporary failure; the job comes back after a backoff.
	Retrying
	// Dead: the token will never work again; mark it dead.
	Dead
	// Failed: a permanent failure other than a dead token (bad
	// configuration, no sender for the platform, retries exhausted).
	Failed
	// Expired: the request expired before the push could go out.
	Expired
	// Skipped: the request no longer waited for an answer (decided,
	// cancelled, expired early) when the job came up; it was dropped unsent,
	// so a late delivery cannot ask about a login already decided.
	Skipped
)

func (o Outcome) String() string {
	switch o {
	case Sent:
		return "sent"
	case Retrying:
		return "retrying"
	case Dead:
		return "dead"
	case Failed:
		return "failed"
	case Expired:
		return "expired"
	case Skipped:
		return "skipped"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Result is reported for every delivery of a job, so the domain can record
// progress ("sent to device X", "delivery failed for device X") and mark
// dead tokens.
type Result struct {
	Outcome Outcome
	// Attempt counts the send attempts for this job, this one included (for
	// Expired or Skipped found on arrival: the earlier ones).
	Attempt int
	// Err is the sender's error; nil for Sent and for Expired on arrival.
	Err error
	// RetryIn is the backoff chosen for Retrying.
	RetryIn time.Duration
}

// QueueConfig names the JetStream objects and tunes the workers. Zero fields
// take the defaults shown.
type QueueConfig struct {
	Stream   string // "PUSHAUTH_PUSH"
	Subject  string // "pushauth.push.jobs"
	Consumer string // "push-workers": one durable shared by all replicas
	Workers  int    // 8 concurrent sends per replica
	// Replicas is how many NATS nodes keep the stream and the consumer (1).
	// An existing stream with more replicas keeps them: a replica started
	// with a smaller setting never shrinks what another one raised.
	Replicas int
	// MaxAge drops jobs nobody took, however stuck (1 h; requests expire
	// long before).
	MaxAge time.Duration
	// DuplicateWindow is how long the stream remembers a job's Msg-Id to
	// drop a repeated Enqueue (5 min, at most MaxAge).
	DuplicateWindow time.Duration
	// FinishTimeout is how long sends in flight when Run's ctx ends may
	// still take (0: cancelled at once and handed back). pushauthd sets
	// shutdown_timeout.
	FinishTimeout time.Duration
	// SendTimeout bounds one send (10 s).
	SendTimeout time.Duration
	// AckWait is how long a replica may hold a job before JetStream hands
	// it to another (SendTimeout + 20 s): it covers a send plus a wait for a
	// free worker, so only a dead replica's jobs move.
	AckWait time.Duration
	// MaxDeliver bounds attempts per job (50); the last one never retries.
	MaxDeliver int
	// MinBackoff and MaxBackoff shape the retry delay: exponential from
	// MinBackoff, capped at MaxBackoff, with full jitter (1 s, 30 s).
	MinBackoff, MaxBackoff time.Duration
	// TracerProvider makes a consumer span around every delivery, under
	// the trace context in the job's headers; nil: no spans.
	TracerProvider trace.TracerProvider
}

func (c QueueConfig) withDefaults() QueueConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Stream == "" {
		c.Stream = events.PushStream
	}
	if c.Subject == "" {
		c.Subject = events.PushJobsSubject
	}
	if c.Consumer == "" {
		c.Consumer = "push-workers"
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 50
	}
	def(&c.MaxAge, time.Hour)
	def(&c.DuplicateWindow, 5*time.Minute)
	c.DuplicateWindow = min(c.DuplicateWindow, c.MaxAge)
	def(&c.SendTimeout, 10*time.Second)
	def(&c.AckWait, c.SendTimeout+20*time.Second)
	def(&c.MinBackoff, time.Second)
	def(&c.MaxBackoff, 30*time.Second)
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	return c
}

// Queue is the durable push-job work queue: Enqueue from any replica, Run
// workers in every replica. JetStream hands each job to one worker at a
// time, redelivers it if that replica dies, and delays retries (NakWithDelay)
// so a failing provider is not hammered.
type Queue struct {
	js       jetstream.JetStream
	cfg      QueueConfig
	sender   Sender
	onResult func(context.Context, Job, Result) // set by Run
	wanted   func(context.Context, Job) (bool, error)
	now      func() time.Time
	logger   *slog.Logger
	tracer   trace.Tracer // nil: no spans
}

// NewQueue creates or updates the work-queue stream and its durable pull
// consumer, so every replica can start in any order. It starts no worker
// (see Run). now nil means time.Now; logger nil means slog.Default().
func NewQueue(ctx context.Context, js jetstream.JetStream, cfg QueueConfig, sender Sender,
	now func() time.Time, logger *slog.Logger,
) (*Queue, error) {
	if isNil(sender) {
		return nil, errors.New("push: queue: no sender")
	}
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.Default()
	}
	q := &Queue{js: js, cfg: cfg.withDefaults(), sender: sender, now: now, logger: logger}
	if cfg.TracerProvider != nil {
		q.tracer = tracing.Tracer(cfg.TracerProvider)
	}
	if err := q.ensure(ctx); err != nil {
		return nil, err
	}
	return q, nil
}

// SkipUnless makes the workers ask wanted before each send; a job it says
// false for is acknowledged and dropped (Outcome Skipped). When wanted fails
// the push goes out: one push too many is better than none. Call it before
// Run.
func (q *Queue) SkipUnless(wanted func(context.Context, Job) (bool, error)) {
	q.wanted = wanted
}

// ensure creates or updates the stream and the consumer, with
// cfg.Replicas replicas or the stream's current count if that is larger.
func (q *Queue) ensure(ctx context.Context) error {
	replicas := q.cfg.Replicas
	s, err := q.js.Stream(ctx, q.cfg.Stream)
	switch {
	case err == nil:
		if have := s.CachedInfo().Config.Replicas; have > replicas {
			q.logger.Info("push: queue: keeping the stream's larger replica count", "stream", q.cfg.Stream,
				"replicas", have, "nats_replicas", replicas)
			replicas = have
		}
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("push: queue: stream %s: %w", q.cfg.Stream, err)
	}
	_, err = q.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        q.cfg.Stream,
		Description: "pushauth push jobs, one per request and device",
		Subjects:    []string{q.cfg.Subject},
		Retention:   jetstream.WorkQueuePolicy, // a job is gone once acked
		Storage:     jetstream.FileStorage,     // survives a NATS restart
		Replicas:    replicas,
		MaxAge:      q.cfg.MaxAge,
		Duplicates:  q.cfg.DuplicateWindow,
		Discard:     jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("push: queue: stream %s: %w", q.cfg.Stream, err)
	}
	_, err = q.js.CreateOrUpdateConsumer(ctx, q.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       q.cfg.Consumer,
		Description:   "pushauth push workers, shared by all replicas",
		FilterSubject: q.cfg.Subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		MaxDeliver:    q.cfg.MaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// 0 follows the stream: JetStream moves the consumer onto the
		// stream's new nodes when the stream is raised.
		Replicas: 0,
	})
	if err != nil {
		return fmt.Errorf("push: queue: consumer %s: %w", q.cfg.Consumer, err)
	}
	return nil
}

// Enqueue publishes jobs and waits for JetStream to store them all; several
// jobs are published together and their acknowledgements awaited at once.
// Each job's Msg-Id is its ID (requestID:deviceID), so enqueueing the same
// job again within DuplicateWindow (a retried RPC, a replayed outbox) sends
// no second push.
func (q *Queue) Enqueue(ctx context.Context, jobs ...Job) error {
	for _, j := range jobs {
		if err := j.Validate(); err != nil {
			return err
		}
	}
	if len(jobs) == 1 {
		j := jobs[0]
		m, err := q.msg(ctx, j)
		if err != nil {
			return err
		}
		if _, err := q.js.PublishMsg(ctx, m, jetstream.WithMsgID(j.ID()), jetstream.WithExpectStream(q.cfg.Stream)); err != nil {
			return fmt.Errorf("push: queue: enqueue request %s device %s: %w", j.RequestID, j.DeviceID, err)
		}
		return nil
	}
	futures := make([]jetstream.PubAckFuture, 0, len(jobs))
	for _, j := range jobs {
		m, err := q.msg(ctx, j)
		if err != nil {
			return err
		}
		f, err := q.js.PublishMsgAsync(m, jetstream.WithMsgID(j.ID()), jetstream.WithExpectStream(q.cfg.Stream))
		if err != nil {
			return fmt.Errorf("push: queue: enqueue request %s device %s: %w", j.RequestID, j.DeviceID, err)
		}
		futures = append(futures, f)
	}
	var errs []error
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs = append(errs, fmt.Errorf("push: queue: enqueue request %s device %s: %w", jobs[i].RequestID, jobs[i].DeviceID, err))
		case <-ctx.Done():
			return fmt.Errorf("push: queue: enqueue: %w", ctx.Err())
		}
	}
	return errors.Join(errs...)
}

// msg is j's queue message: the job as JSON, and its trace context (its
// own or ctx's) as headers rather than in the body.
func (q *Queue) msg(ctx context.Context, j Job) (*nats.Msg, error) {
	h := traceHeader(ctx, j)
	j.Trace = tracing.Stored{}
	data, err := json.Marshal(j)
	if err != nil {
		return nil, fmt.Errorf("push: queue: encoding job: %w", err)
	}
	return &nats.Msg{Subject: q.cfg.Subject, Data: data, Header: h}, nil
}

// How long one pull waits on the server, and how often the server says it
// still holds it (see Run).
const (
	pullExpiry    = 5 * time.Second
	pullHeartbeat = time.Second
)

// Run takes jobs with cfg.Workers concurrent sends until ctx ends, then
// returns nil once in-flight sends have stopped: they get cfg.FinishTimeout
// to finish, then are cancelled. Jobs it held but had not finished are
// handed back (Nak) for another replica. onResult, which may
// be nil, is told the outcome of every delivery.
func (q *Queue) Run(ctx context.Context, onResult func(context.Context, Job, Result)) error {
	if onResult == nil {
		onResult = func(context.Context, Job, Result) {}
	}
	q.onResult = onResult
	// In-flight sends are cancelled only after consuming has stopped, so
	// the jobs they hand back go to another replica, not to this one's
	// closing iterator.
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	msgs := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range q.cfg.Workers {
		wg.Go(func() {
			for m := range msgs {
				q.handle(workCtx, m)
			}
		})
	}
	err := q.consume(ctx, msgs)
	close(msgs)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	if q.cfg.FinishTimeout > 0 {
		t := time.NewTimer(q.cfg.FinishTimeout)
		select {
		case <-finished:
		case <-t.C:
			q.logger.Warn("push: queue: sends still in flight at shutdown; handing them back", "finish_timeout", q.cfg.FinishTimeout)
		}
		t.Stop()
	}
	stopWork()
	<-finished
	return err
}

// consume feeds msgs until ctx ends, re-creating the consumer and iterator
// after failures (e.g. the consumer was deleted or NATS restarted without
// its store).
func (q *Queue) consume(ctx context.Context, msgs chan<- jetstream.Msg) error {
	retry := time.Duration(0)
	for ctx.Err() == nil {
		if q.js.Conn().IsClosed() {
			return errors.New("push: queue: NATS connection closed")
		}
		if retry > 0 {
			t := time.NewTimer(retry)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		retry = min(max(2*retry, time.Second), 30*time.Second)

		cons, err := q.js.Consumer(ctx, q.cfg.Stream, q.cfg.Consumer)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			if err = q.ensure(ctx); err == nil {
				cons, err = q.js.Consumer(ctx, q.cfg.Stream, q.cfg.Consumer)
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				q.logger.Warn("push: queue: consumer unavailable; retrying", "err", err, "retry_in", retry)
			}
			continue
		}
		// A small prefetch: jobs waiting in this replica's buffer are jobs
		// another replica's idle worker could have sent. Short pulls with
		// a heartbeat every second: a pull the cluster lost (all of NATS
		// restarted, the consumer had no leader yet when the client
		// re-pulled) is noticed after two missed heartbeats, 2 s, instead
		// of the client's default 30 s.
		it, err := cons.Messages(jetstream.PullMaxMessages(q.cfg.Workers),
			jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat))
		if err != nil {
			q.logger.Warn("push: queue: cannot consume; retrying", "err", err, "retry_in", retry)
			continue
		}
		for {
			m, err := it.Next(jetstream.NextContext(ctx))
			if err != nil {
				if ctx.Err() != nil {
					q.handBack(it)
					return nil
				}
				if errors.Is(err, jetstream.ErrNoHeartbeat) {
					continue // the iterator re-pulls by itself
				}
				q.logger.Warn("push: queue: consuming stopped; restarting", "err", err, "retry_in", retry)
				it.Stop()
				break
			}
			retry = 0
			select {
			case msgs <- m:
			case <-ctx.Done():
				_ = m.Nak()
				q.handBack(it)
				return nil
			}
		}
	}
	return nil
}

// handBack stops the iterator and Naks the jobs it had buffered, so another
// replica takes them now instead of after AckWait.
func (q *Queue) handBack(it jetstream.MessagesContext) {
	it.Drain()
	for {
		m, err := it.Next(jetstream.NextMaxWait(time.Second))
		if err != nil {
			return
		}
		_ = m.Nak()
	}
}

// handle processes one delivery of one job.
func (q *Queue) handle(ctx context.Context, m jetstream.Msg) {
	var j Job
	if err := json.Unmarshal(m.Data(), &j); err != nil {
		q.logger.Error("push: queue: dropping undecodable job", "err", err)
		_ = m.Term() // redelivering cannot fix it
		return
	}
	attempt := 1
	if md, err := m.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	ctx, span := q.startProcess(ctx, m.Headers(), j, attempt)
	defer span.End()
	// Outcomes are reported even while shutting down: they record what
	// already happened.
	rctx := context.WithoutCancel(ctx)
	now := q.now()
	if !now.Before(j.ExpiresAt) {
		q.finish(rctx, m, j, Result{Outcome: Expired, Attempt: attempt - 1})
		return
	}
	if q.wanted != nil {
		ok, err := q.wanted(ctx, j)
		switch {
		case err != nil:
			q.logger.Warn("push: queue: cannot tell whether the request still waits; sending",
				"approval_id", j.RequestID, "device_id", j.DeviceID, "err", err)
		case !ok:
			q.finish(rctx, m, j, Result{Outcome: Skipped, Attempt: attempt - 1})
			return
		}
	}

	sctx, cancel := context.WithTimeout(ctx, min(q.cfg.SendTimeout, j.ExpiresAt.Sub(now)))
	err := q.sender.Send(sctx, j)
	cancel()

	switch {
	case err == nil:
		q.finish(rctx, m, j, Result{Outcome: Sent, Attempt: attempt})
	case ctx.Err() != nil:
		_ = m.Nak() // shutting down: let another replica send it now
	case errors.Is(err, ErrTokenDead):
		q.finish(rctx, m, j, Result{Outcome: Dead, Attempt: attempt, Err: err})
	case errors.Is(err, ErrExpired):
		q.finish(rctx, m, j, Result{Outcome: Expired, Attempt: attempt, Err: err})
	case IsTemporary(err):
		var te *TemporaryError
		errors.As(err, &te)
		delay := te.RetryAfter
		if delay <= 0 {
			delay = q.backoff(attempt)
		}
		switch {
		case !q.now().Add(delay).Before(j.ExpiresAt):
			q.finish(rctx, m, j, Result{Outcome: Expired, Attempt: attempt, Err: err})
		case attempt >= q.cfg.MaxDeliver:
			q.finish(rctx, m, j, Result{Outcome: Failed, Attempt: attempt,
				Err: fmt.Errorf("push: giving up after %d attempts: %w", attempt, err)})
		default:
			q.logger.Info("push: retrying", "attempt", attempt, "approval_id", j.RequestID, "device_id", j.DeviceID,
				"sender", q.sender.Name(), "reason", ReasonOf(err), "retry_in", delay, "err", logErr(err, j.PushToken))
			// Reported before the Nak so a quick redelivery's outcome
			// cannot overtake it.
			q.onResult(rctx, j, Result{Outcome: Retrying, Attempt: attempt, Err: err, RetryIn: delay})
			if nerr := m.NakWithDelay(delay); nerr != nil {
				q.logger.Warn("push: queue: nak failed; the job returns after AckWait",
					"approval_id", j.RequestID, "device_id", j.DeviceID, "err", nerr)
			}
		}
	default:
		q.finish(rctx, m, j, Result{Outcome: Failed, Attempt: attempt, Err: err})
	}
}

// finish acknowledges a job that needs no more attempts, then reports it.
// The ack waits for the server's confirmation so the job cannot come back
// after its outcome was reported.
func (q *Queue) finish(ctx context.Context, m jetstream.Msg, j Job, r Result) {
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := m.DoubleAck(actx)
	cancel()
	if err != nil {
		q.logger.Warn("push: queue: ack failed; the job may be delivered again",
			"approval_id", j.RequestID, "device_id", j.DeviceID, "err", err)
	}
	lvl := slog.LevelDebug
	if r.Outcome != Sent {
		lvl = slog.LevelInfo
	}
	attrs := []any{"outcome", r.Outcome, "attempt", r.Attempt, "approval_id", j.RequestID, "device_id", j.DeviceID, "sender", q.sender.Name()}
	if r.Err != nil {
		// The provider's own text, for operators only; it never reaches a
		// relying party (see Reason).
		attrs = append(attrs, "reason", ReasonOf(r.Err), "err", logErr(r.Err, j.PushToken))
	}
	q.logger.Log(ctx, lvl, "push: job done", attrs...)
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("pushauth.push.outcome", r.Outcome.String()))
	q.onResult(ctx, j, r)
}

// backoff is the delay before retry number attempt (1-based): exponential
// from MinBackoff, capped at MaxBackoff, with full jitter so replicas that
// failed together do not retry together.
func (q *Queue) backoff(attempt int) time.Duration {
	return backoff(attempt, q.cfg.MinBackoff, q.cfg.MaxBackoff)
}

func backoff(attempt int, lo, hi time.Duration) time.Duration {
	ceil := lo
	for i := 1; i < attempt && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// logErr is err's text for the log, with the job's push token shortened in
// case a provider quoted it.
func logErr(err error, token string) string {
	s := err.Error()
	if token != "" {
		s = strings.ReplaceAll(s, token, redactToken(token))
	}
	return s
}
