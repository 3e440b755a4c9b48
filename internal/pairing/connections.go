package pairing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/store"
)

// detailConnectionRemoved is what a phone taken off a pending login by the
// removal of its connection is told, through the target's detail that the
// relying party's waiter sees.
const detailConnectionRemoved = "the phone was disconnected from this account"

// RequestEnder follows up the pending requests a connection's removal took
// its phone off, after the removal committed: those left without a phone
// end, the others' waiters and the phone are told. approval.Engine is one;
// the interface is pairing's so pairing need not import the request engine
// (which imports pairing for its phrases).
type RequestEnder interface {
	TargetsRemoved(ctx context.Context, actor, deviceID string, dropped []store.Request)
}

// Connections reads and removes the connections a pairing made: the
// accounts of relying parties' users that a phone answers for.
type Connections struct {
	store    store.Store
	requests RequestEnder
	pub      events.Publisher
	now      func() time.Time
	log      *slog.Logger
}

// NewConnections returns Connections that hand the requests a removal
// touched to requests and announce removals on pub.
func NewConnections(st store.Store, requests RequestEnder, pub events.Publisher, now func() time.Time, log *slog.Logger) *Connections {
	return &Connections{store: st, requests: requests, pub: pub, now: now, log: log}
}

func (c *Connections) clock() time.Time { return c.now().UTC().Truncate(time.Microsecond) }

// Get returns a connection by id.
func (c *Connections) Get(ctx context.Context, id string) (store.Connection, error) {
	return c.store.GetConnection(ctx, id)
}

// OfDevice lists a device's connections, with their relying parties.
func (c *Connections) OfDevice(ctx context.Context, deviceID string) ([]store.Connection, error) {
	return c.store.ListDeviceConnections(ctx, deviceID)
}

// RemoveOfDevice disconnects one of a device's own accounts; another
// device's connection, or one already removed, is NotFound.
func (c *Connections) RemoveOfDevice(ctx context.Context, deviceID, connectionID string) error {
	conn, err := c.store.GetConnection(ctx, connectionID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (conn.DeviceID != deviceID || conn.Status != store.ConnectionActive)) {
		return fault.New(fault.NotFound, "connection not found")
	}
	if err != nil {
		return err
	}
	return c.remove(ctx, "device:"+deviceID, conn)
}

// UserDevices lists the devices connected to a relying party's user.
func (c *Connections) UserDevices(ctx context.Context, rpID, userRef string) ([]store.UserDevice, error) {
	return c.store.ListUserDevices(ctx, rpID, userRef)
}

// RemoveUserDevice disconnects a device from a relying party's user.
func (c *Connections) RemoveUserDevice(ctx context.Context, actor, rpID, userRef, deviceID string) error {
	conns, err := c.store.ListUserConnections(ctx, rpID, userRef)
	if err != nil {
		return err
	}
	for _, conn := range conns {
		if conn.DeviceID == deviceID {
			return c.remove(ctx, actor, conn)
		}
	}
	return fault.New(fault.NotFound, "no such device for this user")
}

// DeviceKey returns the public key of a device connected to one of the
// relying party's users; any other device is NotFound, so a relying party
// learns nothing of phones that are not its users'.
func (c *Connections) DeviceKey(ctx context.Context, rpID, deviceID string) ([]byte, error) {
	conns, err := c.store.ListDeviceConnections(ctx, deviceID)
	if err != nil {
		return nil, err
	}
	for _, conn := range conns {
		if conn.RelyingPartyID == rpID {
			d, err := c.store.GetDevice(ctx, deviceID)
			if err != nil {
				return nil, err
			}
			return d.PublicKey, nil
		}
	}
	return nil, fault.New(fault.NotFound, "device not found")
}

// remove removes conn and, in the same transaction, its TOTP factors, its
// device from the user's pending logins at the relying party, and writes
// the audit event; so a phone is never left on a login it can no longer
// answer. After the commit the requests are followed up (those left without
// a phone end), and the device, every replica and the relying party's
// event stream are told.
func (c *Connections) remove(ctx context.Context, actor string, conn store.Connection) error {
	now := c.clock()
	var dropped []store.Request
	err := c.store.InTx(ctx, func(tx store.Store) error {
		if err := tx.RemoveConnection(ctx, conn.ID, now); err != nil {
			return err
		}
		if err := tx.RemoveConnectionTOTPFactors(ctx, conn.ID, now); err != nil {
			return err
		}
		var err error
		dropped, err = tx.RemoveTargets(ctx, store.TargetFilter{DeviceID: conn.DeviceID, RelyingPartyID: conn.RelyingPartyID, UserRef: conn.UserRef, Kind: store.KindLogin},
			detailConnectionRemoved, now)
		if err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{Actor: actor, Action: "connection.removed", RelyingPartyID: conn.RelyingPartyID, Target: conn.ID,
			Details: map[string]string{"device_id": conn.DeviceID, "user_ref": conn.UserRef, "pending_requests": fmt.Sprint(len(dropped))}})
	})
	if errors.Is(err, store.ErrConflict) {
		return nil // removed meanwhile: whoever removed it followed up
	}
	if err != nil {
		return fmt.Errorf("remove connection: %w", err)
	}
	c.requests.TargetsRemoved(ctx, actor, conn.DeviceID, dropped)
	n := events.Revocation{Kind: events.RevokedConnection, ID: conn.ID, DeviceID: conn.DeviceID}
	if err := events.AnnounceRevocation(ctx, c.pub, n); err != nil {
		c.log.WarnContext(ctx, "announce revocation", "kind", n.Kind, "id", n.ID, "err", err)
	}
	ev := events.RelyingPartyEvent{Type: "device_removed", UserRef: conn.UserRef, DeviceID: conn.DeviceID, Time: now}
	if err := events.PublishRelyingPartyEvent(ctx, c.pub, conn.RelyingPartyID, ev); err != nil {
		c.log.WarnContext(ctx, "publish relying party event", "relying_party_id", conn.RelyingPartyID, "err", err)
	}
	return nil
}
