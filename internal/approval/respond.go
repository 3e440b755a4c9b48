package approval

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/devicekey"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/feed"
	"github.com/pushauth/pushauth/internal/store"
)

// Response is a phone's signed answer to a request.
type Response struct {
	RequestID      string
	Decision       string // DecisionApprove, DecisionDeny or DecisionReportFraud
	NumberAnswer   string
	AutoApproved   bool
	LocationRuleID string
	SignedAt       time.Time
	Signature      []byte
}

var errNotYours = fault.New(fault.NotFound, "request not found")

// Respond applies a device's signed decision. The first valid decision wins;
// the same device repeating its decision gets the stored result.
func (e *Engine) Respond(ctx context.Context, dev store.Device, resp Response) (store.Request, error) {
	if err := checkRuleID(resp); err != nil {
		return store.Request{}, err
	}
	var r store.Request
	var targets []store.RequestTarget
	if snap, ok := e.shown.take(dev.ID, resp.RequestID); ok {
		r, targets = snap.r, snap.targets // fetched on this replica just now
	} else {
		var err error
		if r, targets, err = e.deviceRequest(ctx, dev.ID, resp.RequestID); err != nil {
			return store.Request{}, err
		}
	}
	now := e.clock()
	if d := now.Sub(resp.SignedAt); d > e.cfg.ClockSkew || d < -e.cfg.ClockSkew {
		return store.Request{}, fault.New(fault.PermissionDenied, "signed_time is more than 5 minutes from the server's clock: check the phone's time")
	}
	fields := FieldsFor(r, dev.ID, resp.Decision, resp.NumberAnswer, resp.AutoApproved, resp.LocationRuleID, resp.SignedAt)
	payload := fields.Payload()
	pub, _, err := devicekey.Parse(dev.PublicKey)
	if err != nil {
		return store.Request{}, fmt.Errorf("stored device key: %w", err)
	}
	if !devicekey.Verify(pub, payload, resp.Signature) {
		return store.Request{}, fault.New(fault.PermissionDenied, "signature does not verify: sign the decision string (docs/decisions.md) with the device key")
	}
	if r.Status != store.StatusPending {
		return e.repeated(r, dev.ID, payload)
	}
	if !now.Before(r.ExpiresAt) {
		return store.Request{}, fault.New(fault.FailedPrecondition, "the request has expired")
	}
	d := store.Decision{RequestID: r.ID, At: now, DecidedBy: dev.ID, Payload: payload, Signature: resp.Signature,
		AutoApproved: resp.AutoApproved, LocationRuleID: resp.LocationRuleID}
	switch resp.Decision {
	case DecisionReportFraud:
		d.Status, d.Reason = store.StatusDenied, store.ReasonFraudReport
	case DecisionDeny:
		d.Status, d.Reason = store.StatusDenied, store.ReasonUser
	case DecisionApprove:
		d.Status, d.Reason = store.StatusApproved, store.ReasonUser
		if resp.AutoApproved {
			rp, err := e.store.GetRelyingParty(ctx, r.RelyingPartyID)
			if err != nil {
				return store.Request{}, err
			}
			if err := locationRuleMayAnswer(rp, r); err != nil {
				return store.Request{}, err
			}
			d.Reason = store.ReasonLocationRule
		}
		if r.NumberHash != nil && !e.keys.Matches("number", r.ID+":"+resp.NumberAnswer, r.NumberHash) {
			d.Status, d.Reason = store.StatusDenied, store.ReasonNumberMismatch
		}
	default:
		return store.Request{}, fault.Invalid("decision", "must be APPROVE, DENY or REPORT_FRAUD")
	}
	if resp.AutoApproved && resp.Decision != DecisionApprove {
		return store.Request{}, fault.Invalid("auto_approved", "only an approval can be automatic")
	}
	err = e.finish(ctx, r, d, "device:"+dev.ID, targets)
	if errors.Is(err, store.ErrConflict) {
		// Someone else decided first: answer as for a repeat.
		cur, gerr := e.store.GetRequest(ctx, r.ID)
		if gerr != nil {
			return store.Request{}, gerr
		}
		return e.repeated(cur, dev.ID, payload)
	}
	if err != nil {
		return store.Request{}, err
	}
	return withDecision(r, d), nil
}

// seenByDecider returns a copy of targets in which the phone that decided r
// has seen it: its seen mark is written off the request path and may come
// after the decision.
func seenByDecider(r store.Request, targets []store.RequestTarget) []store.RequestTarget {
	out := make([]store.RequestTarget, len(targets))
	copy(out, targets)
	for i := range out {
		if r.DecidedBy != "" && out[i].DeviceID == r.DecidedBy && out[i].SeenAt.IsZero() {
			out[i].SeenAt = r.DecidedAt
		}
	}
	return out
}

// withDecision is r as DecideRequest(d) left it in the database.
func withDecision(r store.Request, d store.Decision) store.Request {
	r.Status, r.Reason, r.DecidedAt = d.Status, d.Reason, d.At
	r.DecidedBy, r.Payload, r.Signature = d.DecidedBy, d.Payload, d.Signature
	r.AutoApproved, r.LocationRuleID = d.AutoApproved, d.LocationRuleID
	return r
}

// LocationAutomationAllowed reports whether a location rule on the phone
// may answer r: only a login, only where the relying party allows it, and
// only without number matching. A request that asks for the number shown on
// the login page is never offered to automation: a rule cannot know the
// number, and the number is there to prove the user sees that login page.
func LocationAutomationAllowed(rp store.RelyingParty, r store.Request) bool {
	return locationRuleMayAnswer(rp, r) == nil
}

func locationRuleMayAnswer(rp store.RelyingParty, r store.Request) error {
	switch {
	case r.Kind != store.KindLogin:
		return fault.New(fault.PermissionDenied, "a location rule cannot connect an account; ask the user to tap")
	case !rp.Policy.AllowLocationAutomation:
		return fault.New(fault.PermissionDenied, "this relying party does not allow location rules to approve; ask the user to tap")
	case r.NumberMatching != store.NumberMatchingNone && r.NumberMatching != "":
		return fault.New(fault.PermissionDenied, "this request asks for the number shown on the login page, so a location rule cannot answer it; ask the user to type the number")
	}
	return nil
}

// repeated answers a decision on a request that is no longer pending.
func (e *Engine) repeated(r store.Request, deviceID string, payload []byte) (store.Request, error) {
	if r.DecidedBy == deviceID && sameDecision(r.Payload, payload) {
		return r, nil
	}
	return store.Request{}, fault.Newf(fault.FailedPrecondition, "the request is already %s", r.Status)
}

// sameDecision compares two payloads but for their signing time, so a phone
// retrying after a lost response gets the stored result.
func sameDecision(a, b []byte) bool {
	cut := func(p []byte) []byte {
		if i := bytes.LastIndex(p, []byte("\nsigned_at=")); i >= 0 {
			return p[:i]
		}
		return p
	}
	return bytes.Equal(cut(a), cut(b))
}

// finish ends a pending request and everything that hangs on it, in one
// transaction, then tells whoever waits. ErrConflict if it was not pending.
// targets are the request's targets when the caller has read them (nil:
// afterDecision reads them).
func (e *Engine) finish(ctx context.Context, r store.Request, d store.Decision, actor string, targets []store.RequestTarget) error {
	var others []store.Connection
	err := e.store.InTx(ctx, func(tx store.Store) error {
		var err error
		others, err = e.finishTx(ctx, tx, r, d, actor)
		return err
	})
	if err != nil {
		return err
	}
	e.afterDecision(ctx, withDecision(r, d), d, others, targets)
	return nil
}

// finishTx is finish's transaction, for callers that end a request as part
// of a larger one; they call afterDecision once it commits. It returns the
// user's other connections when a pairing activates one.
func (e *Engine) finishTx(ctx context.Context, tx store.Store, r store.Request, d store.Decision, actor string) ([]store.Connection, error) {
	var others []store.Connection
	err := func() error {
		var user *store.UserState
		if d.DecidedBy != "" {
			// In the deciding transaction, so a removal cannot slip between
			// the check and the decision.
			var err error
			if user, err = e.mayDecide(ctx, tx, r, d.DecidedBy); err != nil {
				return err
			}
		}
		if err := tx.DecideRequest(ctx, d); err != nil {
			return err
		}
		var err error
		others, err = e.settleTx(ctx, tx, r, d, actor, user)
		return err
	}()
	return others, err
}

// settleTx writes, in the transaction that ended r with d, what hangs on
// the decision: a pairing's connection, the user's abuse-limit state, the
// audit event. finishTx runs it after its compare-and-swap; the sweeper
// after ExpireRequests ended many requests in one statement, so expiry and
// decisions share it. user is the user's state if the transaction read it.
func (e *Engine) settleTx(ctx context.Context, tx store.Store, r store.Request, d store.Decision, actor string, user *store.UserState) ([]store.Connection, error) {
	var others []store.Connection
	err := func() error {
		if r.Kind == store.KindPairing && r.ConnectionID != "" {
			if d.Status == store.StatusApproved {
				var err error
				if others, err = tx.ListUserConnections(ctx, r.RelyingPartyID, r.UserRef); err != nil {
					return err
				}
				if err := tx.ActivateConnection(ctx, r.ConnectionID, d.At); err != nil {
					return err
				}
			} else if err := tx.RemoveConnection(ctx, r.ConnectionID, d.At); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
		if r.Kind == store.KindLogin {
			if err := e.account(ctx, tx, r, d, user); err != nil {
				return err
			}
		}
		details := map[string]string{"status": d.Status, "reason": d.Reason, "kind": r.Kind, "user_ref": r.UserRef}
		if d.DecidedBy != "" {
			details["device_id"] = d.DecidedBy
		}
		if d.AutoApproved {
			details["auto_approved"] = "true"
			details["location_rule_id"] = d.LocationRuleID
		}
		return audit.Write(ctx, tx, d.At, audit.Entry{Actor: actor, Action: "request.decided", RelyingPartyID: r.RelyingPartyID, Target: r.ID, Details: details})
	}()
	return others, err
}

// account updates the user's abuse-limit state for a finished login. user
// is the state the deciding transaction has read already, if it has: an
// approval of a user without failures then changes nothing and writes
// nothing. (On PostgreSQL a failure another transaction commits after that
// read is then kept, never dropped: the mistake can only be strict.)
func (e *Engine) account(ctx context.Context, tx store.Store, r store.Request, d store.Decision, user *store.UserState) error {
	success := d.Status == store.StatusApproved
	// A superseded request was never answered: like a timeout it counts, so
	// a flood of requests that replace each other (push bombing) backs off.
	failure := d.Status == store.StatusDenied || d.Status == store.StatusExpired ||
		(d.Status == store.StatusCancelled && d.Reason == store.ReasonSuperseded)
	if !success && !failure {
		return nil // cancelled by the relying party: no verdict on the user
	}
	clean := func(s *store.UserState) bool { return s.ConsecutiveFailures == 0 && s.BackoffUntil.IsZero() }
	if success && user != nil && clean(user) {
		return nil
	}
	var after store.UserState
	err := tx.UpdateUserState(ctx, r.RelyingPartyID, r.UserRef, func(s *store.UserState) error {
		if success {
			if clean(s) {
				return nil // unchanged: not written
			}
			s.ConsecutiveFailures, s.BackoffUntil, s.UpdatedAt = 0, time.Time{}, d.At
			return nil
		}
		s.UpdatedAt = d.At
		s.ConsecutiveFailures++
		s.BackoffUntil = d.At.Add(e.backoff(s.ConsecutiveFailures))
		if d.Reason == store.ReasonFraudReport {
			s.MutedUntil = d.At.Add(e.cfg.FraudMute)
		}
		after = *s
		return nil
	})
	if err != nil || success {
		return err
	}
	// The back-off is audited (and so in the relying party's event feed)
	// in the deciding transaction.
	action := feed.ActionUserBackedOff
	if after.ConsecutiveFailures >= e.cfg.MaxConsecutiveFailures {
		action = feed.ActionUserLocked
	}
	return audit.Write(ctx, tx, d.At, audit.Entry{Actor: audit.ActorSystem, Action: action, RelyingPartyID: r.RelyingPartyID, Target: r.UserRef,
		Details: map[string]string{"user_ref": r.UserRef, "failures": fmt.Sprint(after.ConsecutiveFailures), "until": after.BackoffUntil.Format(time.RFC3339)}})
}

// backoff is the wait after n consecutive failures: BackoffBase doubling up
// to BackoffMax, and LockDuration from MaxConsecutiveFailures on.
func (e *Engine) backoff(n int) time.Duration {
	if n >= e.cfg.MaxConsecutiveFailures {
		return e.cfg.LockDuration
	}
	d := e.cfg.BackoffBase
	for i := 1; i < n && d < e.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, e.cfg.BackoffMax)
}

// afterDecision tells everyone of a decision that committed: the waiters
// (with the final request, so they need not read it), the devices, the
// relying party. r is the request as decided; targets are its targets if
// the caller has them.
func (e *Engine) afterDecision(ctx context.Context, r store.Request, d store.Decision, others []store.Connection, targets []store.RequestTarget) {
	if e.decided != nil {
		e.decided(ctx, r, d)
	}
	if targets == nil {
		var err error
		if targets, err = e.store.ListRequestTargets(ctx, r.ID); err != nil {
			e.log.WarnContext(ctx, "list targets", "approval_id", r.ID, "err", err)
		}
	}
	final := r
	e.publishRequest(ctx, r.ID, events.RequestNews{Type: events.NewsDecided, Request: &final, Targets: seenByDecider(r, targets)})
	for _, t := range targets {
		e.publishDevice(ctx, t.DeviceID, events.DeviceNews{Type: events.NewsClosed, RequestID: r.ID})
	}
	if d.Reason == store.ReasonFraudReport {
		e.publishRelyingParty(ctx, r.RelyingPartyID, events.RelyingPartyEvent{Type: "fraud_report", UserRef: r.UserRef, DeviceID: d.DecidedBy, RequestID: r.ID, Time: d.At})
		e.log.WarnContext(ctx, "user reported a request as fraud; pushes muted", "approval_id", r.ID, "relying_party_id", r.RelyingPartyID, "mute", e.cfg.FraudMute.String())
	}
	if r.Kind == store.KindPairing && d.Status == store.StatusApproved {
		paired := d.DecidedBy
		notified := 0
		for _, c := range others {
			if c.DeviceID == paired {
				continue
			}
			notified++
			e.publishDevice(ctx, c.DeviceID, events.DeviceNews{Type: events.NewsNotice, Notice: fmt.Sprintf("A new phone was connected to your account %s.", r.AccountLabel)})
		}
		if notified > 0 {
			e.publishRelyingParty(ctx, r.RelyingPartyID, events.RelyingPartyEvent{Type: "device_paired", UserRef: r.UserRef, DeviceID: paired, RequestID: r.ID, Time: d.At})
			if err := audit.Write(ctx, e.store, d.At, audit.Entry{Actor: audit.ActorSystem, Action: "connection.other_devices_notified",
				RelyingPartyID: r.RelyingPartyID, Target: r.ConnectionID, Details: map[string]string{"devices": strconv.Itoa(notified)}}); err != nil {
				e.log.WarnContext(ctx, "audit notice", "err", err)
			}
		}
	}
}

// deviceRequest returns a request the device was asked about, with its
// targets, in one read. Any other request is NotFound: a device cannot learn
// of others' requests.
func (e *Engine) deviceRequest(ctx context.Context, deviceID, requestID string) (store.Request, []store.RequestTarget, error) {
	r, targets, err := e.store.GetRequestWithTargets(ctx, requestID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Request{}, nil, errNotYours
	}
	if err != nil {
		return store.Request{}, nil, err
	}
	for _, t := range targets {
		if t.DeviceID == deviceID {
			return r, targets, nil
		}
	}
	return store.Request{}, nil, errNotYours
}
