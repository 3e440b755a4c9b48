package approval

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"time"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/guess"
	"github.com/pushauth/pushauth/internal/push"
	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/store"
)

// Created is a new request with what the login page must show.
type Created struct {
	Request store.Request
	Number  string // "" unless number matching is on
}

// CreateApproval asks every active device of a user to confirm a login.
// The checks and writes that bound a user's requests are one transaction
// that holds the user's state row: the back-off, the rate limit (push
// bombing), superseding the oldest pending request and the insert, so
// parallel calls for one user cannot pass any of them.
func (e *Engine) CreateApproval(ctx context.Context, actor string, rp store.RelyingParty, userRef string, rc store.RequestContext) (Created, error) {
	if err := checkSingleLine("user_ref", userRef); err != nil {
		return Created{}, err
	}
	if err := checkContext(rc); err != nil {
		return Created{}, err
	}
	now := e.clock()
	devices, label, err := e.activeDevices(ctx, rp.ID, userRef)
	if err != nil {
		return Created{}, err
	}
	if len(devices) == 0 {
		return Created{}, fault.New(fault.FailedPrecondition, "this user has no active device: offer another verification method")
	}
	r := store.Request{
		ID:             secret.NewID("req", now.UnixMilli()),
		Kind:           store.KindLogin,
		RelyingPartyID: rp.ID,
		UserRef:        userRef,
		AccountLabel:   label,
		Context:        rc,
		NumberMatching: rp.Policy.NumberMatching,
		Status:         store.StatusPending,
		CreatedAt:      now,
		ExpiresAt:      now.Add(rp.Policy.ApprovalTTL),
	}
	var number string
	switch rp.Policy.NumberMatching {
	case store.NumberMatchingNumber:
		number = randomDigits(2, true)
	case store.NumberMatchingCode:
		number = randomDigits(6, false)
	}
	if number != "" {
		r.NumberHash = e.keys.Hash("number", r.ID+":"+number)
	}
	var muted bool
	var jobs []store.QueuedPush
	type ended struct {
		r      store.Request
		d      store.Decision
		others []store.Connection
	}
	var superseded []ended
	err = e.store.InTx(ctx, func(tx store.Store) error {
		superseded = superseded[:0]
		// The user's state row is the lock that serializes this user's
		// requests; the pending ones are read after it is held.
		us, pending, err := tx.LockUserPending(ctx, rp.ID, userRef, store.KindLogin, now)
		if err != nil {
			return err
		}
		if now.Before(us.BackoffUntil) {
			retry := us.BackoffUntil.Sub(now)
			msg := fmt.Sprintf("too many denied or unanswered requests for this user; try again in %s", roundUp(retry))
			if us.ConsecutiveFailures >= e.cfg.MaxConsecutiveFailures {
				msg = fmt.Sprintf("this account had %d failed requests in a row and is locked; try again in %s or use another method", us.ConsecutiveFailures, roundUp(retry))
			}
			return fault.Exhausted(msg, retry)
		}
		if _, err := tx.TakeRate(ctx, now, e.approvalLimits(rp, userRef)...); err != nil {
			return guess.Refusal(err, now, "too many login requests for this user", "login requests for this user are switched off by the relying party's policy")
		}
		for i := 0; i < len(pending)-(e.cfg.MaxPendingPerUser-1); i++ {
			old := pending[i]
			d := store.Decision{RequestID: old.ID, Status: store.StatusCancelled, Reason: store.ReasonSuperseded, At: now}
			others, err := e.finishTx(ctx, tx, old, d, audit.ActorSystem)
			if err != nil {
				return err
			}
			superseded = append(superseded, ended{old, d, others})
		}
		// The user state as the supersedes left it: a mute can only have
		// come from before.
		muted = now.Before(us.MutedUntil)
		jobs, err = e.insertTx(ctx, tx, actor, rp, r, devices, muted, now)
		return err
	})
	if err != nil {
		if _, ok := fault.As(err); ok {
			return Created{}, err
		}
		return Created{}, fmt.Errorf("create request: %w", err)
	}
	e.relay.handOff(jobs)
	for _, s := range superseded {
		e.afterDecision(ctx, withDecision(s.r, s.d), s.d, s.others, nil)
	}
	e.announce(ctx, r, devices)
	return Created{Request: r, Number: number}, nil
}

// approvalLimits are the rolling limits on login requests to one user.
func (e *Engine) approvalLimits(rp store.RelyingParty, userRef string) []store.RateLimit {
	perMinute, perHour := e.cfg.ApprovalsPerMinute, e.cfg.ApprovalsPerHour
	if rp.Policy.ApprovalsPerMinute > 0 {
		perMinute = rp.Policy.ApprovalsPerMinute
	}
	if rp.Policy.ApprovalsPerHour > 0 {
		perHour = rp.Policy.ApprovalsPerHour
	}
	// Serialized: only CreateApproval takes this key, holding the user's
	// state row.
	key := "approvals:" + rp.ID + ":" + userRef
	return []store.RateLimit{
		{Key: key, Window: time.Minute, Max: perMinute, Serialized: true},
		{Key: key, Window: time.Hour, Max: perHour, Serialized: true},
	}
}

// ClaimPairing turns a typed phrase into a PAIRING request to the phone that
// shows it, with a pending connection it will activate.
func (e *Engine) ClaimPairing(ctx context.Context, actor string, rp store.RelyingParty, phrase, userRef, label, clientAddress string, rc store.RequestContext) (store.Request, error) {
	if err := checkSingleLine("user_ref", userRef, "account_label", label); err != nil {
		return store.Request{}, err
	}
	if err := checkContext(rc); err != nil {
		return store.Request{}, err
	}
	deviceID, err := e.phrases.Claim(ctx, rp.ID, userRef, phrase, clientAddress)
	if err != nil {
		return store.Request{}, err
	}
	dev, err := e.store.GetDevice(ctx, deviceID)
	if err != nil {
		return store.Request{}, err
	}
	if !dev.RevokedAt.IsZero() {
		return store.Request{}, fault.New(fault.NotFound, "unknown or expired pairing phrase: check the two words in the app, or let it show new ones")
	}
	now := e.clock()
	conn := store.Connection{
		ID:             secret.NewID("con", now.UnixMilli()),
		RelyingPartyID: rp.ID,
		UserRef:        userRef,
		DeviceID:       deviceID,
		AccountLabel:   label,
		Status:         store.ConnectionPending,
		CreatedAt:      now,
	}
	if rc.AppName == "" {
		rc.AppName = rp.DisplayName
	}
	r := store.Request{
		ID:             secret.NewID("req", now.UnixMilli()),
		Kind:           store.KindPairing,
		RelyingPartyID: rp.ID,
		UserRef:        userRef,
		ConnectionID:   conn.ID,
		AccountLabel:   label,
		Context:        rc,
		NumberMatching: store.NumberMatchingNone,
		Status:         store.StatusPending,
		CreatedAt:      now,
		ExpiresAt:      now.Add(rp.Policy.ApprovalTTL),
	}
	var jobs []store.QueuedPush
	err = e.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.CreateConnection(ctx, conn); err != nil {
			return err
		}
		var err error
		jobs, err = e.insertTx(ctx, tx, actor, rp, r, []store.Device{dev}, false, now)
		return err
	})
	if err != nil {
		return store.Request{}, fmt.Errorf("create pairing request: %w", err)
	}
	e.relay.handOff(jobs)
	e.announce(ctx, r, []store.Device{dev})
	return r, nil
}

// activeDevices are the registered devices with an active connection to the
// user, and the account label of the newest connection, in one read.
func (e *Engine) activeDevices(ctx context.Context, rpID, userRef string) ([]store.Device, string, error) {
	uds, err := e.store.ListUserDevices(ctx, rpID, userRef)
	if err != nil {
		return nil, "", err
	}
	var devs []store.Device
	label := ""
	for _, u := range uds {
		if u.Device.RevokedAt.IsZero() {
			devs = append(devs, u.Device)
			label = u.Connection.AccountLabel
		}
	}
	return devs, label, nil
}

// insertTx writes a new request, its targets, its audit event and, unless
// muted, its push jobs into the outbox, and returns the jobs for the relay.
func (e *Engine) insertTx(ctx context.Context, tx store.Store, actor string, rp store.RelyingParty, r store.Request, devices []store.Device, muted bool, now time.Time) ([]store.QueuedPush, error) {
	delivery := store.DeliveryQueued
	if muted {
		delivery = store.DeliveryMuted
	}
	targets := make([]store.RequestTarget, len(devices))
	for i, d := range devices {
		targets[i] = store.RequestTarget{RequestID: r.ID, DeviceID: d.ID, Delivery: delivery, UpdatedAt: now}
		if d.PushTokenDead && !muted {
			targets[i].Delivery, targets[i].Detail = store.DeliveryDead, push.ReasonTokenInvalid.Detail()
		}
	}
	if err := tx.CreateRequest(ctx, r, targets); err != nil {
		return nil, err
	}
	details := map[string]string{"kind": r.Kind, "user_ref": r.UserRef, "devices": fmt.Sprint(len(devices)), "number_matching": string(r.NumberMatching)}
	if muted {
		details["muted"] = "true"
	}
	if err := audit.Write(ctx, tx, now, audit.Entry{Actor: actor, Action: "request.created", RelyingPartyID: r.RelyingPartyID, Target: r.ID, Details: details}); err != nil {
		return nil, err
	}
	if muted {
		return nil, nil
	}
	jobs, err := e.outboxJobs(ctx, r, rp.DisplayName, devices, now)
	if err != nil {
		return nil, fmt.Errorf("push jobs: %w", err)
	}
	if err := tx.AddPushes(ctx, jobs); err != nil {
		return nil, err
	}
	return jobs, nil
}

// announce tells the devices' open apps of a new request. Its pushes are
// in the outbox already.
func (e *Engine) announce(ctx context.Context, r store.Request, devices []store.Device) {
	for _, d := range devices {
		e.publishDevice(ctx, d.ID, events.DeviceNews{Type: events.NewsRequest, RequestID: r.ID})
	}
}

// randomDigits returns n random digits; noLeadingZero keeps "07" from
// reading as "7" on a login page.
func randomDigits(n int, noLeadingZero bool) string {
	lo := int64(0)
	hi := int64(1)
	for range n {
		hi *= 10
	}
	if noLeadingZero {
		lo = hi / 10
	}
	v, err := rand.Int(rand.Reader, big.NewInt(hi-lo))
	if err != nil {
		panic("approval: crypto/rand failed: " + err.Error())
	}
	return fmt.Sprintf("%0*d", n, v.Int64()+lo)
}

func roundUp(d time.Duration) time.Duration {
	r := d.Round(time.Second)
	if r < d {
		r += time.Second
	}
	if r < time.Second {
		r = time.Second
	}
	return r
}
