package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/store"
)

// queuePusher feeds the engine's requests into the push work queue. The
// queue is set after the engine exists, because the queue reports back to
// the engine.
type queuePusher struct {
	q   *push.Queue
	rps store.RelyingParties // the display name the alerts show
}

// Push enqueues one job per device.
func (p *queuePusher) Push(ctx context.Context, r store.Request, devices []store.Device) error {
	if p.q == nil {
		return errors.New("push queue not started")
	}
	rp, err := p.rps.GetRelyingParty(ctx, r.RelyingPartyID)
	if err != nil {
		return fmt.Errorf("relying party of request %s: %w", r.ID, err)
	}
	return p.q.Enqueue(ctx, pushJobs(r, rp, devices)...)
}

// pushJobs are the jobs pushing r to devices: each in its device's
// language, naming the relying party.
func pushJobs(r store.Request, rp store.RelyingParty, devices []store.Device) []push.Job {
	jobs := make([]push.Job, len(devices))
	for i, d := range devices {
		jobs[i] = push.Job{
			RequestID:    r.ID,
			DeviceID:     d.ID,
			Platform:     d.Platform,
			PushToken:    d.PushToken,
			Kind:         r.Kind,
			Locale:       d.Locale,
			RelyingParty: rp.DisplayName,
			ExpiresAt:    r.ExpiresAt,
		}
	}
	return jobs
}

// pushResult turns the queue's report into progress on the request. Only a
// reason and its fixed sentence are recorded: the provider's text can hold
// anything, and the queue has logged it already.
func pushResult(engine *approval.Engine) func(context.Context, push.Job, push.Result) {
	return func(ctx context.Context, j push.Job, r push.Result) {
		switch r.Outcome {
		case push.Sent:
			engine.PushResult(ctx, j.RequestID, j.DeviceID, j.PushToken, approval.PushSent, "")
		case push.Dead:
			engine.PushResult(ctx, j.RequestID, j.DeviceID, j.PushToken, approval.PushDead, push.ReasonTokenInvalid.Detail())
		case push.Retrying, push.Failed:
			engine.PushResult(ctx, j.RequestID, j.DeviceID, j.PushToken, approval.PushFailed, push.ReasonOf(r.Err).Detail())
		}
	}
}
