package approval

import (
	"context"
	"errors"
	"fmt"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/pairing"
	"github.com/pushauth/pushauth/internal/store"
)

// What a revoked phone taken off a pending request is told, through the
// target's detail that the relying party's waiter sees.
const detailDeviceRevoked = "the phone is no longer registered"

// The connections' removals hand their requests to the engine.
var _ pairing.RequestEnder = (*Engine)(nil)

// DeviceRevoked finishes a device's revocation (deregistration), which the
// registration service has written: the device is taken off every pending
// request, requests left without a phone end CANCELLED (DEVICE_REMOVED), and
// every replica is told to end the device's open streams. It is idempotent.
func (e *Engine) DeviceRevoked(ctx context.Context, actor, deviceID string) error {
	dropped, err := e.store.RemoveTargets(ctx, store.TargetFilter{DeviceID: deviceID}, detailDeviceRevoked, e.clock())
	if err != nil {
		// The notice still goes out: the streams must end either way, and
		// the phone can no longer answer (its credential is revoked).
		e.announceRevocation(ctx, events.Revocation{Kind: events.RevokedDevice, ID: deviceID})
		return fmt.Errorf("take revoked device off pending requests: %w", err)
	}
	e.TargetsRemoved(ctx, actor, deviceID, dropped)
	e.announceRevocation(ctx, events.Revocation{Kind: events.RevokedDevice, ID: deviceID})
	return nil
}

// TargetsRemoved follows up requests whose target on deviceID was just
// removed (by a revocation, or by pairing.Connections removing a
// connection): one with no other target left is cancelled (which tells its
// waiter and devices), the others' waiters see the progress, and the device
// is told the request is closed for it. It makes Engine a
// pairing.RequestEnder.
func (e *Engine) TargetsRemoved(ctx context.Context, actor, deviceID string, rs []store.Request) {
	for _, r := range rs {
		targets, err := e.store.ListRequestTargets(ctx, r.ID)
		if err != nil {
			e.log.WarnContext(ctx, "list targets of a request whose device was removed", "approval_id", r.ID, "err", err)
			continue
		}
		left := 0
		for _, t := range targets {
			if t.Delivery != store.DeliveryRemoved {
				left++
			}
		}
		if left == 0 {
			d := store.Decision{RequestID: r.ID, Status: store.StatusCancelled, Reason: store.ReasonDeviceRemoved, At: e.clock()}
			err := e.finish(ctx, r, d, actor, targets)
			if err == nil || errors.Is(err, store.ErrConflict) {
				continue // finish told everyone; or it was decided meanwhile
			}
			e.log.WarnContext(ctx, "cancel a request whose devices were removed", "approval_id", r.ID, "err", err)
		}
		e.publishDevice(ctx, deviceID, events.DeviceNews{Type: events.NewsClosed, RequestID: r.ID})
		e.publishRequest(ctx, r.ID, events.RequestNews{Type: events.NewsProgress})
	}
}

// announceRevocation tells every replica, which end what n revoked.
func (e *Engine) announceRevocation(ctx context.Context, n events.Revocation) {
	if err := events.AnnounceRevocation(ctx, e.pub, n); err != nil {
		e.log.WarnContext(ctx, "announce revocation", "kind", n.Kind, "id", n.ID, "err", err)
	}
}

// Why a phone may not answer a request it was sent.
var (
	errDisconnected = fault.New(fault.PermissionDenied, "this phone is no longer connected to the account, so it cannot answer this request; the request stays open for the user's other phones")
	errDeviceGone   = fault.New(fault.PermissionDenied, "this phone is no longer registered, so it cannot answer this request")
)

// mayDecide checks, inside the deciding transaction tx, that deviceID is
// still registered and, for a login, still connected to the user: it locks
// the connection, so a concurrent removal, revocation or transfer happens
// wholly before (and the decision is refused) or after the decision. For a
// login it returns the user's state, read with the check.
func (e *Engine) mayDecide(ctx context.Context, tx store.Store, r store.Request, deviceID string) (*store.UserState, error) {
	if r.Kind == store.KindLogin {
		st, err := tx.LockDecider(ctx, r.RelyingPartyID, r.UserRef, deviceID)
		switch {
		case err != nil:
			return nil, err
		case !st.Registered:
			return nil, errDeviceGone
		case !st.Connected:
			return nil, errDisconnected
		}
		return &st.User, nil
	}
	dev, err := tx.GetDevice(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !dev.RevokedAt.IsZero()) {
		return nil, errDeviceGone
	}
	return nil, err
}
