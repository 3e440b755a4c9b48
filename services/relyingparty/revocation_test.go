package relyingparty_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Revocation tests: what a revoked key, device or connection leaves open.
// Streams are opened on replica A and the revocation goes through replica
// B, so only the NATS notice (or the recheck) can end them.

// guard bounds waiting for a stream to end. It turns a hang into a
// failure; nothing is timed.
const guard = 10 * time.Second

// noRecheck makes the periodic recheck too slow to matter, so only a
// revocation notice can end a stream within the guard.
func noRecheck(o *server.Options) { o.Recheck = time.Hour }

// fastRecheck makes the periodic recheck frequent, for revocations whose
// notice never comes.
func fastRecheck(o *server.Options) { o.Recheck = 20 * time.Millisecond }

// revWorld is newWorld with server options.
func revWorld(t *testing.T, url string, opts ...func(*server.Options)) *world {
	t.Helper()
	cl := servertest.NewCluster(t, url, 2, opts...)
	w := &world{a: cl[0], b: cl[1], user: "jan@example.nl"}
	rp := w.a.CreateRelyingParty(t, "mijn-portal", nil)
	w.rpID = rp.GetId()
	_, w.key = w.a.CreateAPIKey(t, rp.GetId())
	w.phone = servertest.NewPhone(t, false)
	w.b.Register(t, w.phone, "+31612345678")
	if r := w.b.Pair(t, w.phone, w.key, w.user, "jan@example.nl"); r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
		t.Fatalf("pairing: %v", r)
	}
	return w
}

// guarded is a context for a stream that should end well before guard.
func guarded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(servertest.Context(t), guard)
	t.Cleanup(cancel)
	return ctx
}

// openWait opens WaitRequest on A and reads its first event, so the stream
// is known to be running (and registered) before the test revokes.
func (w *world) openWait(t *testing.T, id string) pushauthv1.RelyingPartyService_WaitRequestClient {
	t.Helper()
	stream, err := w.a.RP.WaitRequest(w.a.WithToken(guarded(t), w.key), &pushauthv1.WaitRequestRequest{RequestId: id})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil || ev.GetProgress() == nil {
		t.Fatalf("first WaitRequest event: %v %v", ev, err)
	}
	return stream
}

// openWatch opens the phone's WatchRequests on A and reads the pending
// request it lists first.
func (w *world) openWatch(t *testing.T, p *servertest.Phone, requestID string) pushauthv1.DeviceService_WatchRequestsClient {
	t.Helper()
	stream, err := w.a.Device.WatchRequests(w.a.WithToken(guarded(t), p.Credential), &pushauthv1.WatchRequestsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil || ev.GetRequest().GetId() != requestID {
		t.Fatalf("first WatchRequests event: %v %v", ev, err)
	}
	return stream
}

// ended reads a stream until it ends and checks its status.
func ended[T any](t *testing.T, what string, recv func() (T, error), code codes.Code, contains string) {
	t.Helper()
	for {
		_, err := recv()
		if err == nil {
			continue
		}
		st, _ := status.FromError(err)
		if st.Code() != code || !strings.Contains(st.Message(), contains) {
			t.Fatalf("%s ended with %v %q, want %v containing %q", what, st.Code(), st.Message(), code, contains)
		}
		return
	}
}

func (w *world) keyPrefix(t *testing.T) string {
	t.Helper()
	who, err := w.a.RP.WhoAmI(w.a.WithToken(servertest.Context(t), w.key), &pushauthv1.WhoAmIRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return who.GetApiKeyPrefix()
}

func TestRevokedKeyEndsWaitOnOtherReplica(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := revWorld(t, url, noRecheck)
		c := w.login(t)
		stream := w.openWait(t, c.GetRequestId())
		if _, err := w.b.Admin.RevokeApiKey(w.b.AdminCtx(servertest.Context(t)), &pushauthv1.RevokeApiKeyRequest{ApiKey: w.keyPrefix(t)}); err != nil {
			t.Fatalf("RevokeApiKey: %v", err)
		}
		ended(t, "WaitRequest", stream.Recv, codes.Unauthenticated, "API key was revoked")
		if n := w.a.Server.Revocations.Len(); n != 0 {
			t.Fatalf("%d revocation watchers left on A", n)
		}
	})
}

func TestRevokedKeyEndsWaitWithoutNotice(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := revWorld(t, url, fastRecheck)
		c := w.login(t)
		stream := w.openWait(t, c.GetRequestId())
		// Behind the API's back: no notice goes out, the recheck must see it.
		k, err := w.a.Store.GetAPIKeyByPrefix(servertest.Context(t), w.keyPrefix(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := w.a.Store.RevokeAPIKey(servertest.Context(t), k.ID, w.a.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		ended(t, "WaitRequest", stream.Recv, codes.Unauthenticated, "API key was revoked")
	})
}

func TestDeregisteredDeviceEndsWatchAndItsLogin(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := revWorld(t, url, noRecheck)
		c := w.login(t)
		wt := w.wait(t, c.GetRequestId())
		watch := w.openWatch(t, w.phone, c.GetRequestId())
		if _, err := w.b.Device.DeregisterDevice(w.b.WithToken(servertest.Context(t), w.phone.Credential), &pushauthv1.DeregisterDeviceRequest{}); err != nil {
			t.Fatalf("DeregisterDevice: %v", err)
		}
		ended(t, "WatchRequests", watch.Recv, codes.Unauthenticated, "no longer registered")
		// The login had no other phone: it ends, and its waiter hears it.
		r := wt.final(t)
		if r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_CANCELLED || r.GetReason() != pushauthv1.DecisionReason_DECISION_REASON_DEVICE_REMOVED {
			t.Fatalf("login after deregistration: %v", r)
		}
	})
}

func TestRevokedDeviceEndsWatchWithoutNotice(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := revWorld(t, url, fastRecheck)
		c := w.login(t)
		watch := w.openWatch(t, w.phone, c.GetRequestId())
		if err := w.a.Store.RevokeDevice(servertest.Context(t), w.phone.DeviceID, w.a.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		ended(t, "WatchRequests", watch.Recv, codes.Unauthenticated, "no longer registered")
	})
}

func TestRemovedConnectionCannotApprove(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := revWorld(t, url, noRecheck)
		second := servertest.NewPhone(t, false)
		w.b.Register(t, second, "+31687654321")
		if r := w.b.Pair(t, second, w.key, w.user, "jan@example.nl"); r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
			t.Fatalf("pairing the second phone: %v", r)
		}
		c := w.login(t)
		dr := w.b.Pending(t, w.phone) // what the first phone was shown
		watch := w.openWatch(t, w.phone, c.GetRequestId())

		ctx := servertest.Context(t)
		if _, err := w.b.RP.RemoveUserDevice(w.b.WithToken(ctx, w.key), &pushauthv1.RemoveUserDeviceRequest{UserRef: w.user, DeviceId: w.phone.DeviceID}); err != nil {
			t.Fatalf("RemoveUserDevice: %v", err)
		}
		// The first phone's open stream drops the request; the stream stays.
		ev, err := watch.Recv()
		if err != nil || ev.GetClosedRequestId() != c.GetRequestId() {
			t.Fatalf("WatchRequests after removal: %v %v", ev, err)
		}

		_, err = w.b.Decide(t, w.phone, dr, pushauthv1.Decision_DECISION_APPROVE, "")
		wantCode(t, err, codes.PermissionDenied, "no longer connected")
		r, err := w.a.RP.GetRequest(w.a.WithToken(ctx, w.key), &pushauthv1.GetRequestRequest{RequestId: c.GetRequestId()})
		if err != nil || r.GetRequest().GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_PENDING {
			t.Fatalf("request after the refused approval: %v %v", r, err)
		}
		// The phone no longer lists it; the second phone still answers it.
		list, err := w.a.Device.ListPendingRequests(w.a.WithToken(ctx, w.phone.Credential), &pushauthv1.ListPendingRequestsRequest{})
		if err != nil || len(list.GetRequests()) != 0 {
			t.Fatalf("first phone still lists: %v %v", list, err)
		}
		got, err := w.b.Decide(t, second, w.b.Pending(t, second), pushauthv1.Decision_DECISION_APPROVE, "")
		if err != nil || got.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED || got.GetDecidingDeviceId() != second.DeviceID {
			t.Fatalf("second phone's approval: %v %v", got, err)
		}
	})
}

func TestRemovingOnlyConnectionCancelsLogin(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := revWorld(t, url, noRecheck)
		c := w.login(t)
		dr := w.b.Pending(t, w.phone)
		wt := w.wait(t, c.GetRequestId())
		wt.until(t, pushauthv1.Progress_KIND_QUEUED)
		ctx := w.b.WithToken(servertest.Context(t), w.phone.Credential)
		conns, err := w.b.Device.ListConnections(ctx, &pushauthv1.ListConnectionsRequest{})
		if err != nil || len(conns.GetConnections()) != 1 {
			t.Fatalf("connections: %v %v", conns, err)
		}
		if _, err := w.b.Device.RemoveConnection(ctx, &pushauthv1.RemoveConnectionRequest{ConnectionId: conns.GetConnections()[0].GetId()}); err != nil {
			t.Fatalf("RemoveConnection: %v", err)
		}
		r := wt.final(t)
		if r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_CANCELLED || r.GetReason() != pushauthv1.DecisionReason_DECISION_REASON_DEVICE_REMOVED {
			t.Fatalf("login after its only connection was removed: %v", r)
		}
		_, err = w.b.Decide(t, w.phone, dr, pushauthv1.Decision_DECISION_APPROVE, "")
		wantCode(t, err, codes.FailedPrecondition, "already CANCELLED")
	})
}
