package approval

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/tracing"
)

var errNotOwned = fault.New(fault.NotFound, "request not found")

// Get returns a relying party's request. Others' requests are NotFound.
func (e *Engine) Get(ctx context.Context, rpID, id string) (store.Request, error) {
	r, err := e.store.GetRequest(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.RelyingPartyID != rpID) {
		return store.Request{}, errNotOwned
	}
	return r, err
}

// Cancel cancels a relying party's pending request.
func (e *Engine) Cancel(ctx context.Context, actor, rpID, id string) (store.Request, error) {
	r, err := e.Get(ctx, rpID, id)
	if err != nil {
		return store.Request{}, err
	}
	if r.Status != store.StatusPending {
		return store.Request{}, fault.Newf(fault.FailedPrecondition, "the request is already %s", r.Status)
	}
	err = e.finish(ctx, r, store.Decision{RequestID: r.ID, Status: store.StatusCancelled, Reason: store.ReasonCancelled, At: e.clock()}, actor, nil)
	if errors.Is(err, store.ErrConflict) {
		cur, gerr := e.store.GetRequest(ctx, id)
		if gerr != nil {
			return store.Request{}, gerr
		}
		return store.Request{}, fault.Newf(fault.FailedPrecondition, "the request is already %s", cur.Status)
	}
	if err != nil {
		return store.Request{}, err
	}
	return e.store.GetRequest(ctx, id)
}

// Wait blocks until a relying party's request is final, calling progress
// whenever its targets change (on any replica) and returning the final
// request. It subscribes before its one read, so no news slips between;
// news then carries what changed (a target's new state, or the final
// request as the deciding transaction wrote it), so it reads again only
// when news was lost or carried nothing, and on a recheck tick. A request
// still pending after its expiry is expired here, so a waiter never depends
// on a sweeper having run.
func (e *Engine) Wait(ctx context.Context, hub *events.Hub, rpID, id string, recheck <-chan time.Time, progress func([]store.RequestTarget) error) (store.Request, error) {
	if err := events.ValidateID(id); err != nil {
		return store.Request{}, errNotOwned
	}
	// Subscribe first, then read: news of a decision committed after the
	// read finds the subscription there (and one before it, the read sees).
	// Read first and a decision in between would be announced to no one,
	// and only the hub's recheck would find it.
	var news <-chan events.News // nil hub: never ready
	if hub != nil {
		ch, cancel := hub.WatchNews(id)
		defer cancel()
		news = ch
	}
	if e.waitSubscribed != nil {
		e.waitSubscribed(id)
	}
	var targets []store.RequestTarget
	read := func() (store.Request, bool, error) {
		r, ts, err := e.store.GetRequestWithTargets(ctx, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && r.RelyingPartyID != rpID) {
			return store.Request{}, false, errNotOwned
		}
		if err != nil {
			return r, false, err
		}
		if r.Status == store.StatusPending && !e.clock().Before(r.ExpiresAt) {
			if err := e.expire(ctx, r, ts); err != nil && !errors.Is(err, store.ErrConflict) {
				return r, false, err
			}
			if r, ts, err = e.store.GetRequestWithTargets(ctx, id); err != nil {
				return r, false, err
			}
		}
		targets = seenByDecider(r, ts)
		if err := progress(targets); err != nil {
			return r, false, err
		}
		return r, r.Status != store.StatusPending, nil
	}
	for {
		r, done, err := read()
		if err != nil || done {
			return r, err
		}
	wait:
		for {
			select {
			case b, ok := <-news:
				if !ok {
					if r, done, err := read(); err != nil || done {
						return r, err
					}
					return store.Request{}, events.ErrHubClosed
				}
				n := events.DecodeRequestNews(b.Data)
				switch {
				case n.Type == events.NewsDecided && n.Request != nil && n.Request.ID == id && n.Request.Status != store.StatusPending:
					received(ctx, b, n)
					if len(n.Targets) > 0 {
						for _, t := range n.Targets {
							targets = mergeTarget(targets, t)
						}
						if err := progress(targets); err != nil {
							return store.Request{}, err
						}
					}
					return *n.Request, nil
				case n.Type == events.NewsProgress && n.Target != nil:
					targets = mergeTarget(targets, *n.Target)
					if err := progress(targets); err != nil {
						return store.Request{}, err
					}
				default:
					break wait // lost or bare news: read
				}
			case <-recheck:
				break wait
			case <-ctx.Done():
				return store.Request{}, ctx.Err()
			}
		}
		if err := ctx.Err(); err != nil {
			return store.Request{}, err
		}
	}
}

// Settled reports which of ids are no longer pending or have expired, in
// one read: the check of a replica's recheck of its waiters
// (events.Hub.RunRecheck), so waiters keep no timer each.
func (e *Engine) Settled(ctx context.Context, ids []string) ([]string, error) {
	return e.store.ListSettledRequests(ctx, ids, e.clock())
}

// SettledSince reports the requests decided, cancelled or expired at or
// after since, at most limit: the cheap round of a replica's recheck.
func (e *Engine) SettledSince(ctx context.Context, since time.Time, limit int) ([]string, error) {
	return e.store.ListRequestsSettledSince(ctx, since, limit)
}

// mergeTarget applies a target's news to targets. News may arrive out of
// order from several replicas: a delivery change older than what is known
// is ignored, and a seen mark is kept once set.
func mergeTarget(targets []store.RequestTarget, n store.RequestTarget) []store.RequestTarget {
	for i := range targets {
		t := &targets[i]
		if t.DeviceID != n.DeviceID {
			continue
		}
		if n.Delivery != "" && !n.UpdatedAt.Before(t.UpdatedAt) {
			t.Delivery, t.Detail, t.UpdatedAt = n.Delivery, n.Detail, n.UpdatedAt
		}
		if !n.SeenAt.IsZero() && t.SeenAt.IsZero() {
			t.SeenAt = n.SeenAt
		}
		return targets
	}
	return targets // not a target this waiter read: ignore
}

// ListPending returns the requests waiting for a device.
func (e *Engine) ListPending(ctx context.Context, deviceID string) ([]store.Request, error) {
	return e.store.ListDevicePendingRequests(ctx, deviceID, e.clock())
}

// GetForDevice returns a request the device was asked about, in one read,
// and marks it seen, which its relying party sees as progress. The mark is
// written by the group-committer (RunMarks), off the request path.
func (e *Engine) GetForDevice(ctx context.Context, deviceID, id string) (store.Request, error) {
	r, targets, err := e.deviceRequest(ctx, deviceID, id)
	if err != nil {
		return store.Request{}, err
	}
	if r.Status == store.StatusPending {
		e.shown.put(deviceID, r, targets, e.clock())
	}
	for _, t := range targets {
		if t.DeviceID == deviceID && t.SeenAt.IsZero() {
			e.marks.add(ctx, mark{requestID: id, deviceID: deviceID, seen: e.clock()})
		}
	}
	return r, nil
}

// Sweep expires due requests; safe on every replica at once.
func (e *Engine) Sweep(ctx context.Context) (int, error) {
	n := 0
	for {
		now := e.clock()
		due, err := e.store.ExpireRequests(ctx, now, 100)
		if err != nil {
			return n, err
		}
		for _, r := range due {
			e.expired(ctx, r, now)
		}
		n += len(due)
		if len(due) < 100 {
			return n, nil
		}
	}
}

// expire ends one request that is past its expiry.
func (e *Engine) expire(ctx context.Context, r store.Request, targets []store.RequestTarget) error {
	return e.finish(ctx, r, store.Decision{RequestID: r.ID, Status: store.StatusExpired, Reason: store.ReasonTimeout, At: e.clock()}, audit.ActorSystem, targets)
}

// expired does for a request ExpireRequests already ended what finish does
// for others, with the same settleTx.
func (e *Engine) expired(ctx context.Context, r store.Request, now time.Time) {
	d := store.Decision{RequestID: r.ID, Status: store.StatusExpired, Reason: store.ReasonTimeout, At: now}
	err := e.store.InTx(ctx, func(tx store.Store) error {
		_, err := e.settleTx(ctx, tx, r, d, audit.ActorSystem, nil)
		return err
	})
	if err != nil {
		e.log.ErrorContext(ctx, "finish expired request", "approval_id", r.ID, "err", err)
	}
	e.afterDecision(ctx, r, d, nil, nil)
}

// RunSweeper sweeps every interval until ctx ends.
func (e *Engine) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := e.Sweep(ctx); err != nil && ctx.Err() == nil {
				e.log.ErrorContext(ctx, "sweep expired requests", "err", err)
			}
		}
	}
}

// PushResult records what the push queue says of one job, so the waiting
// login server sees it, and marks dead tokens; the group-committer
// (RunMarks) writes it. Only a reason and its fixed sentence are recorded:
// the provider's text can hold anything, and the queue has logged it
// already.
func (e *Engine) PushResult(ctx context.Context, j push.Job, res push.Result) {
	m := mark{requestID: j.RequestID, deviceID: j.DeviceID, at: e.clock()}
	switch res.Outcome {
	case push.Sent:
		m.delivery = store.DeliverySent
	case push.Dead:
		m.delivery, m.detail, m.deadToken = store.DeliveryDead, push.ReasonTokenInvalid.Detail(), j.PushToken
	case push.Retrying, push.Failed:
		m.delivery, m.detail = store.DeliveryFailed, push.ReasonOf(res.Err).Detail()
	default:
		return
	}
	e.marks.add(ctx, m)
}

// PushWanted says whether a queued push is still worth sending: its request
// is pending and unexpired, and the phone was not taken off it (a removed
// connection or a revoked device gets no more pushes for it).
func (e *Engine) PushWanted(ctx context.Context, j push.Job) (bool, error) {
	return e.store.TargetPending(ctx, j.RequestID, j.DeviceID, e.clock())
}

// RunPushQueue sends queued pushes until ctx ends, recording each outcome.
func (e *Engine) RunPushQueue(ctx context.Context) error {
	if e.queue == nil {
		<-ctx.Done()
		return nil
	}
	return e.queue.Run(ctx, e.PushResult)
}

// UserState is what stands between a relying party's user and a push right
// now, so a login page can say so before it asks.
type UserState struct {
	// ConsecutiveFailures counts the user's login requests in a row that
	// ended without an approval (denied, mismatched, reported, unanswered,
	// superseded).
	ConsecutiveFailures int
	// BackoffUntil is when CreateApproval is accepted again; zero when it is
	// accepted now.
	BackoffUntil time.Time
	// Locked is set when the back-off is the long lock after
	// MaxConsecutiveFailures failures in a row.
	Locked bool
	// MutedUntil is when pushes resume after a fraud report; zero when they
	// are not muted. Requests are still created while muted.
	MutedUntil time.Time
	// TOTPLockedUntil is when TOTP codes are compared again after too many
	// wrong ones; zero when they are now.
	TOTPLockedUntil time.Time
}

// UserState reads the user's back-off, mute and TOTP lock as of now. Times
// already past read as zero.
func (e *Engine) UserState(ctx context.Context, rpID, userRef string) (UserState, error) {
	us, err := e.store.GetUserState(ctx, rpID, userRef)
	if err != nil {
		return UserState{}, err
	}
	now := e.clock()
	future := func(t time.Time) time.Time {
		if now.Before(t) {
			return t
		}
		return time.Time{}
	}
	out := UserState{
		ConsecutiveFailures: us.ConsecutiveFailures,
		BackoffUntil:        future(us.BackoffUntil),
		MutedUntil:          future(us.MutedUntil),
		TOTPLockedUntil:     future(us.TOTPLockedUntil),
	}
	out.Locked = !out.BackoffUntil.IsZero() && us.ConsecutiveFailures >= e.cfg.MaxConsecutiveFailures
	return out, nil
}

// received records, while tracing, that decided news reached this waiter:
// a consumer span under the waiter's call (e.g. WaitRequest) linked to the
// span that published the decision (e.g. RespondToRequest), so a trace shows
// the decision travelling back, even when the login server and the phone
// traced apart. Without tracing news carries no trace context, and nothing
// is done.
func received(ctx context.Context, b events.News, n events.RequestNews) {
	if !b.Trace.IsValid() {
		return
	}
	_, span := tracing.Tracer(trace.SpanFromContext(ctx).TracerProvider()).Start(ctx, events.RequestPrefix+"* receive",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(trace.Link{SpanContext: b.Trace}),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "receive"),
			attribute.String("pushauth.approval_id", n.Request.ID),
			attribute.String("pushauth.news", n.Type),
			attribute.String("pushauth.status", n.Request.Status),
		))
	span.End()
}
