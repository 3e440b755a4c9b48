package relyingparty_test

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// world is a relying party with one user paired to one phone, on a cluster
// of two replicas: the login server talks to A, the phone to B.
type world struct {
	a, b  *servertest.TestServer
	key   string // API key
	rpID  string
	phone *servertest.Phone
	user  string
}

func newWorld(t *testing.T, url string, policy *pushauthv1.RelyingPartyPolicy) *world {
	t.Helper()
	cl := servertest.NewCluster(t, url, 2)
	w := &world{a: cl[0], b: cl[1], user: "jan@example.nl"}
	rp := w.a.CreateRelyingParty(t, "mijn-portal", policy)
	w.rpID = rp.GetId()
	_, w.key = w.a.CreateAPIKey(t, rp.GetId())
	w.phone = servertest.NewPhone(t, false)
	w.b.Register(t, w.phone, "+31612345678")
	if r := w.b.Pair(t, w.phone, w.key, w.user, "jan@example.nl"); r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
		t.Fatalf("pairing: %v", r)
	}
	return w
}

func (w *world) login(t *testing.T) *pushauthv1.CreateApprovalResponse {
	t.Helper()
	resp, err := w.a.RP.CreateApproval(w.a.WithToken(servertest.Context(t), w.key), &pushauthv1.CreateApprovalRequest{
		UserRef: w.user,
		Context: &pushauthv1.RequestContext{AppName: "Mijn Portal", IpAddress: "192.0.2.7", Location: "Utrecht, NL", Browser: "Firefox op Windows"},
	})
	if err != nil {
		t.Fatalf("CreateApproval: %v", err)
	}
	return resp
}

// wait streams WaitRequest on replica A in the background.
type waiter struct {
	progress chan *pushauthv1.Progress
	result   chan *pushauthv1.Request
	err      chan error
}

func (w *world) wait(t *testing.T, id string) *waiter {
	t.Helper()
	stream, err := w.a.RP.WaitRequest(w.a.WithToken(servertest.Context(t), w.key), &pushauthv1.WaitRequestRequest{RequestId: id})
	if err != nil {
		t.Fatal(err)
	}
	wt := &waiter{progress: make(chan *pushauthv1.Progress, 100), result: make(chan *pushauthv1.Request, 1), err: make(chan error, 1)}
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				wt.err <- err
				return
			}
			if p := ev.GetProgress(); p != nil {
				wt.progress <- p
			}
			if r := ev.GetResult(); r != nil {
				wt.result <- r
				return
			}
		}
	}()
	return wt
}

func (wt *waiter) final(t *testing.T) *pushauthv1.Request {
	t.Helper()
	select {
	case r := <-wt.result:
		return r
	case err := <-wt.err:
		t.Fatalf("WaitRequest ended without result: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("WaitRequest gave no result")
	}
	return nil
}

func (wt *waiter) until(t *testing.T, kind pushauthv1.Progress_Kind) *pushauthv1.Progress {
	t.Helper()
	for {
		select {
		case p := <-wt.progress:
			if p.GetKind() == kind {
				return p
			}
		case err := <-wt.err:
			t.Fatalf("WaitRequest ended: %v", err)
		case <-time.After(time.Minute):
			t.Fatalf("no %v progress", kind)
		}
	}
}

func wantCode(t *testing.T, err error, code codes.Code, contains string) *status.Status {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code || !strings.Contains(st.Message(), contains) {
		t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), code, contains)
	}
	return st
}

func TestLoginApprovedAcrossReplicas(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, nil)
		c := w.login(t)
		if c.GetNumber() != "" || c.GetNumberMatching() != pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NONE {
			t.Fatalf("no number matching expected: %v", c)
		}
		wt := w.wait(t, c.GetRequestId())
		dr := w.b.Pending(t, w.phone)
		if dr.GetId() != c.GetRequestId() || dr.GetContext().GetLocation() != "Utrecht, NL" || dr.GetAccountLabel() != "jan@example.nl" {
			t.Fatalf("phone sees %v", dr)
		}
		if _, err := w.b.Device.GetRequest(w.b.WithToken(servertest.Context(t), w.phone.Credential), &pushauthv1.DeviceServiceGetRequestRequest{RequestId: dr.GetId()}); err != nil {
			t.Fatal(err)
		}
		if p := wt.until(t, pushauthv1.Progress_KIND_SEEN); p.GetDeviceId() != w.phone.DeviceID {
			t.Fatalf("seen by %q", p.GetDeviceId())
		}
		got, err := w.b.Decide(t, w.phone, dr, pushauthv1.Decision_DECISION_APPROVE, "")
		if err != nil {
			t.Fatal(err)
		}
		r := wt.final(t)
		if r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED || r.GetReason() != pushauthv1.DecisionReason_DECISION_REASON_USER || r.GetDecidingDeviceId() != w.phone.DeviceID {
			t.Fatalf("result %v", r)
		}
		// The login server verifies the decision itself with the device key.
		key, err := w.a.RP.GetDeviceKey(w.a.WithToken(servertest.Context(t), w.key), &pushauthv1.GetDeviceKeyRequest{DeviceId: r.GetDecidingDeviceId()})
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.ParsePKIXPublicKey(key.GetPublicKey())
		if err != nil {
			t.Fatal(err)
		}
		sd := r.GetSignedDecision()
		h := sha256.Sum256(sd.GetPayload())
		if !ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), h[:], sd.GetSignature()) {
			t.Fatal("signed decision does not verify with the device key")
		}
		if !strings.Contains(string(sd.GetPayload()), "decision=APPROVE") || !strings.Contains(string(sd.GetPayload()), "request_id="+r.GetId()) {
			t.Fatalf("payload %q", sd.GetPayload())
		}
		// The same decision again gets the stored result; another is refused.
		again, err := w.b.Decide(t, w.phone, dr, pushauthv1.Decision_DECISION_APPROVE, "")
		if err != nil || again.GetStatus() != got.GetStatus() {
			t.Fatalf("repeat: %v %v", again, err)
		}
		_, err = w.b.Decide(t, w.phone, dr, pushauthv1.Decision_DECISION_DENY, "")
		wantCode(t, err, codes.FailedPrecondition, "already APPROVED")
	})
}

func TestLoginDeniedAndBackoff(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, nil)
		for i, wantWait := range []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second} {
			c := w.login(t)
			wt := w.wait(t, c.GetRequestId())
			if _, err := w.b.Decide(t, w.phone, w.b.Pending(t, w.phone), pushauthv1.Decision_DECISION_DENY, ""); err != nil {
				t.Fatal(err)
			}
			if r := wt.final(t); r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_DENIED || r.GetReason() != pushauthv1.DecisionReason_DECISION_REASON_USER {
				t.Fatalf("denial %d: %v", i, r)
			}
			_, err := w.a.RP.CreateApproval(w.a.WithToken(servertest.Context(t), w.key), &pushauthv1.CreateApprovalRequest{UserRef: w.user})
			st := wantCode(t, err, codes.ResourceExhausted, "try again")
			if d := retryOf(st); d != wantWait {
				t.Fatalf("after %d denials retry %v, want %v", i+1, d, wantWait)
			}
			w.a.Clock.Advance(wantWait)
		}
		// A success resets the count.
		w.login(t)
		if _, err := w.b.Decide(t, w.phone, w.b.Pending(t, w.phone), pushauthv1.Decision_DECISION_APPROVE, ""); err != nil {
			t.Fatal(err)
		}
		w.login(t)
		if _, err := w.b.Decide(t, w.phone, w.b.Pending(t, w.phone), pushauthv1.Decision_DECISION_DENY, ""); err != nil {
			t.Fatal(err)
		}
		_, err := w.a.RP.CreateApproval(w.a.WithToken(servertest.Context(t), w.key), &pushauthv1.CreateApprovalRequest{UserRef: w.user})
		if d := retryOf(wantCode(t, err, codes.ResourceExhausted, "")); d != 10*time.Second {
			t.Fatalf("after a success the back-off restarts at 10s, got %v", d)
		}
	})
}

func retryOf(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

func TestNumberMatching(t *testing.T) {
	for _, mode := range []pushauthv1.NumberMatchingMode{pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER, pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE} {
		t.Run(mode.String(), func(t *testing.T) {
			servertest.ForEachBackend(t, func(t *testing.T, url string) {
				w := newWorld(t, url, &pushauthv1.RelyingPartyPolicy{NumberMatching: mode})
				c := w.login(t)
				digits := map[pushauthv1.NumberMatchingMode]int{pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER: 2, pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE: 6}[mode]
				if len(c.GetNumber()) != digits {
					t.Fatalf("number %q, want %d digits", c.GetNumber(), digits)
				}
				dr := w.b.Pending(t, w.phone)
				if dr.GetNumberMatching() != mode {
					t.Fatalf("phone not told to ask for the number: %v", dr)
				}
				wrong := strings.Repeat("1", digits)
				if wrong == c.GetNumber() {
					wrong = strings.Repeat("2", digits)
				}
				r, err := w.b.Decide(t, w.phone, dr, pushauthv1.Decision_DECISION_APPROVE, wrong)
				if err != nil {
					t.Fatal(err)
				}
				if r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_DENIED || r.GetReason() != pushauthv1.DecisionReason_DECISION_REASON_NUMBER_MISMATCH {
					t.Fatalf("wrong number: %v", r)
				}
				w.a.Clock.Advance(10 * time.Second)
				c = w.login(t)
				r, err = w.b.Decide(t, w.phone, w.b.Pending(t, w.phone), pushauthv1.Decision_DECISION_APPROVE, c.GetNumber())
				if err != nil || r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
					t.Fatalf("right number: %v %v", r, err)
				}
			})
		})
	}
}

func TestTwoDevicesOneWinner(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, nil)
		second := servertest.NewPhone(t, true)
		w.a.Clock.Advance(time.Minute)
		w.a.Register(t, second, "+31612345679")
		w.a.Pair(t, second, w.key, w.user, "jan@example.nl")
		c := w.login(t)
		phones := []*servertest.Phone{w.phone, second}
		servers := []*servertest.TestServer{w.b, w.a}
		drs := make([]*pushauthv1.DeviceRequest, 2)
		for i := range phones {
			drs[i] = servers[i].Pending(t, phones[i])
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range phones {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := pushauthv1.Decision_DECISION_APPROVE
				if i == 1 {
					d = pushauthv1.Decision_DECISION_DENY
				}
				_, errs[i] = servers[i].Decide(t, phones[i], drs[i], d, "")
			}()
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			if err == nil {
				wins++
			} else {
				wantCode(t, err, codes.FailedPrecondition, "already")
			}
		}
		if wins != 1 {
			t.Fatalf("%d winners: %v", wins, errs)
		}
		r, err := w.a.RP.GetRequest(w.a.WithToken(servertest.Context(t), w.key), &pushauthv1.GetRequestRequest{RequestId: c.GetRequestId()})
		if err != nil || r.GetRequest().GetStatus() == pushauthv1.RequestStatus_REQUEST_STATUS_PENDING {
			t.Fatalf("final: %v %v", r, err)
		}
	})
}

func TestExpirySupersedeAndCancel(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, &pushauthv1.RelyingPartyPolicy{ApprovalTtl: durationpb.New(30 * time.Second)})
		ctx := servertest.Context(t)

		// Supersede: a second login cancels the first.
		first := w.login(t)
		wt := w.wait(t, first.GetRequestId())
		second := w.login(t)
		if r := wt.final(t); r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_CANCELLED || r.GetReason() != pushauthv1.DecisionReason_DECISION_REASON_SUPERSEDED {
			t.Fatalf("superseded: %v", r)
		}
		// Expiry: the sweeper (here called by hand) ends it and the waiter hears.
		wt = w.wait(t, second.GetRequestId())
		dr := w.b.Pending(t, w.phone)
		w.a.Clock.Advance(31 * time.Second)
		if _, err := w.b.Server.Engine.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if r := wt.final(t); r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_EXPIRED || r.GetReason() != pushauthv1.DecisionReason_DECISION_REASON_TIMEOUT {
			t.Fatalf("expired: %v", r)
		}
		_, err := w.b.Decide(t, w.phone, dr, pushauthv1.Decision_DECISION_APPROVE, "")
		wantCode(t, err, codes.FailedPrecondition, "EXPIRED")

		// Cancel by the relying party. The supersede and the timeout each
		// counted as a failure (10 s, then 20 s back-off): wait it out.
		w.a.Clock.Advance(20 * time.Second)
		third := w.login(t)
		cr, err := w.a.RP.CancelRequest(w.a.WithToken(ctx, w.key), &pushauthv1.CancelRequestRequest{RequestId: third.GetRequestId()})
		if err != nil || cr.GetRequest().GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_CANCELLED {
			t.Fatalf("cancel: %v %v", cr, err)
		}
		_, err = w.a.RP.CancelRequest(w.a.WithToken(ctx, w.key), &pushauthv1.CancelRequestRequest{RequestId: third.GetRequestId()})
		wantCode(t, err, codes.FailedPrecondition, "already CANCELLED")
	})
}

func TestFraudReport(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, nil)
		subj, err := events.RelyingPartySubject(w.rpID)
		if err != nil {
			t.Fatal(err)
		}
		rpEvents, cancel, err := w.a.Bus.Subscribe(subj, 10)
		if err != nil {
			t.Fatal(err)
		}
		defer cancel()
		c := w.login(t)
		r, err := w.b.Decide(t, w.phone, w.b.Pending(t, w.phone), pushauthv1.Decision_DECISION_REPORT_FRAUD, "")
		if err != nil || r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_DENIED || r.GetReason() != pushauthv1.DecisionReason_DECISION_REASON_FRAUD_REPORT {
			t.Fatalf("fraud: %v %v", r, err)
		}
		var ev events.RelyingPartyEvent
		select {
		case b := <-rpEvents:
			if err := json.Unmarshal(b, &ev); err != nil || ev.Type != "fraud_report" || ev.RequestID != c.GetRequestId() || ev.UserRef != w.user {
				t.Fatalf("event %s", b)
			}
		case <-time.After(time.Minute):
			t.Fatal("no fraud event")
		}
		// Pushes are muted for an hour, but the app still lists requests.
		w.a.Clock.Advance(10 * time.Second)
		c = w.login(t)
		wt := w.wait(t, c.GetRequestId())
		if p := wt.until(t, pushauthv1.Progress_KIND_DELIVERY_FAILED); !strings.Contains(p.GetDetail(), "muted") ||
			p.GetFailureReason() != pushauthv1.DeliveryFailureReason_DELIVERY_FAILURE_REASON_MUTED {
			t.Fatalf("progress %v", p)
		}
		if dr := w.b.Pending(t, w.phone); dr.GetId() != c.GetRequestId() {
			t.Fatalf("muted request not listed: %v", dr)
		}
	})
}

func TestSignatureChecks(t *testing.T) {
	w := newWorld(t, servertest.Backends[0].NewURL(t), nil)
	c := w.login(t)
	dr := w.b.Pending(t, w.phone)
	ctx := w.b.WithToken(servertest.Context(t), w.phone.Credential)
	tests := []struct {
		name   string
		change func(*pushauthv1.RespondToRequestRequest)
		code   codes.Code
		want   string
	}{
		{"signature for another decision", func(r *pushauthv1.RespondToRequestRequest) { r.Decision = pushauthv1.Decision_DECISION_APPROVE }, codes.PermissionDenied, "signature"},
		{"stale time", func(r *pushauthv1.RespondToRequestRequest) {
			*r = *w.phone.SignedResponse(t, dr, pushauthv1.Decision_DECISION_DENY, "", w.b.Clock.Now().Add(-6*time.Minute))
		}, codes.PermissionDenied, "5 minutes"},
		{"time changed after signing", func(r *pushauthv1.RespondToRequestRequest) {
			r.SignedTime = timestamppb.New(w.b.Clock.Now().Add(time.Second))
		}, codes.PermissionDenied, "signature"},
		{"other key", func(r *pushauthv1.RespondToRequestRequest) {
			other := servertest.NewPhone(t, false)
			other.DeviceID = w.phone.DeviceID
			*r = *other.SignedResponse(t, dr, pushauthv1.Decision_DECISION_DENY, "", w.b.Clock.Now())
		}, codes.PermissionDenied, "signature"},
		{"auto approval not allowed", func(r *pushauthv1.RespondToRequestRequest) {
			f := approvalFields(dr, w.phone.DeviceID, w.b.Clock.Now())
			f.AutoApproved, f.LocationRuleID = true, "rule-1"
			r.Decision, r.AutoApproved, r.LocationRuleId = pushauthv1.Decision_DECISION_APPROVE, true, "rule-1"
			r.Signature = w.phone.Sign(t, f.Payload())
		}, codes.PermissionDenied, "does not allow location rules"},
		{"unknown request", func(r *pushauthv1.RespondToRequestRequest) { r.RequestId = "req_nope" }, codes.NotFound, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := w.phone.SignedResponse(t, dr, pushauthv1.Decision_DECISION_DENY, "", w.b.Clock.Now())
			tt.change(req)
			_, err := w.b.Device.RespondToRequest(ctx, req)
			wantCode(t, err, tt.code, tt.want)
		})
	}
	r, err := w.a.RP.GetRequest(w.a.WithToken(servertest.Context(t), w.key), &pushauthv1.GetRequestRequest{RequestId: c.GetRequestId()})
	if err != nil || r.GetRequest().GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_PENDING {
		t.Fatalf("a refused answer changed the request: %v %v", r, err)
	}
}

func TestLocationAutomation(t *testing.T) {
	w := newWorld(t, servertest.Backends[0].NewURL(t), &pushauthv1.RelyingPartyPolicy{AllowLocationAutomation: true})
	w.login(t)
	dr := w.b.Pending(t, w.phone)
	if !dr.GetLocationAutomationAllowed() {
		t.Fatal("phone not told location rules are allowed")
	}
	now := w.b.Clock.Now()
	req := w.phone.SignedResponse(t, dr, pushauthv1.Decision_DECISION_APPROVE, "", now)
	// Re-sign with the auto-approval fields.
	fields := approvalFields(dr, w.phone.DeviceID, now)
	fields.AutoApproved, fields.LocationRuleID = true, "rule-home"
	req.AutoApproved, req.LocationRuleId, req.Signature = true, "rule-home", w.phone.Sign(t, fields.Payload())
	resp, err := w.b.Device.RespondToRequest(w.b.WithToken(servertest.Context(t), w.phone.Credential), req)
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetRequest()
	if r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED || r.GetReason() != pushauthv1.DecisionReason_DECISION_REASON_LOCATION_RULE || !r.GetAutoApproved() || r.GetLocationRuleId() != "rule-home" {
		t.Fatalf("auto approval: %v", r)
	}
	ev, err := w.a.Admin.ListAuditEvents(w.a.AdminCtx(servertest.Context(t)), &pushauthv1.ListAuditEventsRequest{PageSize: 1})
	if err != nil || ev.GetEvents()[0].GetDetails()["auto_approved"] != "true" {
		t.Fatalf("audit does not show the automation: %v %v", ev, err)
	}
}

// approvalFields signs an approval of dr using the context hash the server
// sent (servertest's phone computes its own; both must agree).
func approvalFields(dr *pushauthv1.DeviceRequest, deviceID string, at time.Time) approval.SignedFields {
	return approval.SignedFields{
		RequestID: dr.GetId(), Kind: "LOGIN", Decision: "APPROVE", DeviceID: deviceID, RelyingPartyID: dr.GetRelyingPartyId(),
		UserRef: dr.GetUserRef(), ContextSHA256: dr.GetContextSha256(), SignedAt: at,
	}
}

func TestIsolation(t *testing.T) {
	w := newWorld(t, servertest.Backends[0].NewURL(t), nil)
	ctx := servertest.Context(t)
	other := w.a.CreateRelyingParty(t, "andere-portal", nil)
	_, otherKey := w.a.CreateAPIKey(t, other.GetId())
	c := w.login(t)
	octx := w.a.WithToken(ctx, otherKey)
	_, err := w.a.RP.GetRequest(octx, &pushauthv1.GetRequestRequest{RequestId: c.GetRequestId()})
	wantCode(t, err, codes.NotFound, "")
	_, err = w.a.RP.CancelRequest(octx, &pushauthv1.CancelRequestRequest{RequestId: c.GetRequestId()})
	wantCode(t, err, codes.NotFound, "")
	stream, err := w.a.RP.WaitRequest(octx, &pushauthv1.WaitRequestRequest{RequestId: c.GetRequestId()})
	if err == nil {
		_, err = stream.Recv()
	}
	wantCode(t, err, codes.NotFound, "")
	_, err = w.a.RP.GetDeviceKey(octx, &pushauthv1.GetDeviceKeyRequest{DeviceId: w.phone.DeviceID})
	wantCode(t, err, codes.NotFound, "")
	devs, err := w.a.RP.ListUserDevices(octx, &pushauthv1.ListUserDevicesRequest{UserRef: w.user})
	if err != nil || len(devs.GetDevices()) != 0 {
		t.Fatalf("other relying party sees devices: %v %v", devs, err)
	}
	_, err = w.a.RP.CreateApproval(octx, &pushauthv1.CreateApprovalRequest{UserRef: w.user})
	wantCode(t, err, codes.FailedPrecondition, "no active device")

	// A device that was not asked cannot read or answer.
	stranger := servertest.NewPhone(t, false)
	w.a.Clock.Advance(time.Minute)
	w.a.Register(t, stranger, "+31612345670")
	dr := w.b.Pending(t, w.phone)
	_, err = w.a.Device.GetRequest(w.a.WithToken(ctx, stranger.Credential), &pushauthv1.DeviceServiceGetRequestRequest{RequestId: c.GetRequestId()})
	wantCode(t, err, codes.NotFound, "")
	_, err = w.a.Decide(t, stranger, dr, pushauthv1.Decision_DECISION_APPROVE, "")
	wantCode(t, err, codes.NotFound, "")
}

func TestPairingAndDevices(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, nil)
		ctx := servertest.Context(t)
		rctx := w.a.WithToken(ctx, w.key)
		devs, err := w.a.RP.ListUserDevices(rctx, &pushauthv1.ListUserDevicesRequest{UserRef: w.user})
		if err != nil || len(devs.GetDevices()) != 1 || devs.GetDevices()[0].GetDeviceId() != w.phone.DeviceID || !devs.GetDevices()[0].GetPushTokenAlive() {
			t.Fatalf("devices: %v %v", devs, err)
		}
		conns, err := w.b.Device.ListConnections(w.b.WithToken(ctx, w.phone.Credential), &pushauthv1.ListConnectionsRequest{})
		if err != nil || len(conns.GetConnections()) != 1 || conns.GetConnections()[0].GetAccountLabel() != "jan@example.nl" {
			t.Fatalf("connections: %v %v", conns, err)
		}

		// Unknown phrases: NotFound, and limited per user.
		for range 10 {
			_, err := w.a.RP.ClaimPairingPhrase(rctx, &pushauthv1.ClaimPairingPhraseRequest{Phrase: "no such", UserRef: "piet", AccountLabel: "piet"})
			wantCode(t, err, codes.NotFound, "pairing phrase")
		}
		_, err = w.a.RP.ClaimPairingPhrase(rctx, &pushauthv1.ClaimPairingPhraseRequest{Phrase: "no such", UserRef: "piet", AccountLabel: "piet"})
		wantCode(t, err, codes.ResourceExhausted, "try again")

		// A phrase is single use, and denial leaves nothing active.
		second := servertest.NewPhone(t, false)
		w.a.Clock.Advance(time.Minute)
		w.b.Register(t, second, "+31612345671")
		watch, err := w.a.Device.WatchRequests(w.a.WithToken(ctx, w.phone.Credential), &pushauthv1.WatchRequestsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		ph, err := w.b.Device.CreatePairingPhrase(w.b.WithToken(ctx, second.Credential), &pushauthv1.CreatePairingPhraseRequest{})
		if err != nil {
			t.Fatal(err)
		}
		claim, err := w.a.RP.ClaimPairingPhrase(rctx, &pushauthv1.ClaimPairingPhraseRequest{Phrase: "  " + strings.ReplaceAll(ph.GetPhrase(), " ", "-") + " ", UserRef: w.user, AccountLabel: "jan"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.a.RP.ClaimPairingPhrase(rctx, &pushauthv1.ClaimPairingPhraseRequest{Phrase: ph.GetPhrase(), UserRef: w.user, AccountLabel: "jan"})
		wantCode(t, err, codes.NotFound, "")
		dr := w.b.Pending(t, second)
		if dr.GetKind() != pushauthv1.RequestKind_REQUEST_KIND_PAIRING || dr.GetId() != claim.GetRequestId() {
			t.Fatalf("pairing request %v", dr)
		}
		if _, err := w.b.Decide(t, second, dr, pushauthv1.Decision_DECISION_APPROVE, ""); err != nil {
			t.Fatal(err)
		}
		// The first phone hears that a new one was connected.
		for {
			ev, err := watch.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if n := ev.GetNotice(); n != "" {
				if !strings.Contains(n, "new phone") {
					t.Fatalf("notice %q", n)
				}
				break
			}
		}
		devs, _ = w.a.RP.ListUserDevices(rctx, &pushauthv1.ListUserDevicesRequest{UserRef: w.user})
		if len(devs.GetDevices()) != 2 {
			t.Fatalf("want 2 devices, got %v", devs)
		}
		if _, err := w.a.RP.RemoveUserDevice(rctx, &pushauthv1.RemoveUserDeviceRequest{UserRef: w.user, DeviceId: second.DeviceID}); err != nil {
			t.Fatal(err)
		}
		devs, _ = w.a.RP.ListUserDevices(rctx, &pushauthv1.ListUserDevicesRequest{UserRef: w.user})
		if len(devs.GetDevices()) != 1 {
			t.Fatalf("after removal: %v", devs)
		}
	})
}

func TestWatchRequests(t *testing.T) {
	w := newWorld(t, servertest.Backends[0].NewURL(t), nil)
	watch, err := w.b.Device.WatchRequests(w.b.WithToken(servertest.Context(t), w.phone.Credential), &pushauthv1.WatchRequestsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first := w.login(t) // on replica A; the watch is on B
	ev, err := watch.Recv()
	if err != nil || ev.GetRequest().GetId() != first.GetRequestId() {
		t.Fatalf("new request: %v %v", ev, err)
	}
	second := w.login(t) // supersedes the first
	got := map[string]bool{}
	for len(got) < 2 {
		ev, err := watch.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if id := ev.GetClosedRequestId(); id == first.GetRequestId() {
			got["closed"] = true
		}
		if ev.GetRequest().GetId() == second.GetRequestId() {
			got["new"] = true
		}
	}
}

func TestConsecutiveFailuresLockTheAccount(t *testing.T) {
	cfg := approval.DefaultConfig()
	cfg.MaxConsecutiveFailures, cfg.BackoffBase, cfg.BackoffMax = 3, time.Second, 4*time.Second
	cl := servertest.NewCluster(t, servertest.Backends[0].NewURL(t), 1, func(o *server.Options) { o.Approval = cfg })
	w := &world{a: cl[0], b: cl[0], user: "jan@example.nl"}
	rp := w.a.CreateRelyingParty(t, "mijn-portal", nil)
	_, w.key = w.a.CreateAPIKey(t, rp.GetId())
	w.phone = servertest.NewPhone(t, false)
	w.b.Register(t, w.phone, "+31612345678")
	w.b.Pair(t, w.phone, w.key, w.user, "jan")
	ctx := w.a.WithToken(servertest.Context(t), w.key)
	for i := range 3 {
		w.login(t)
		if _, err := w.b.Decide(t, w.phone, w.b.Pending(t, w.phone), pushauthv1.Decision_DECISION_DENY, ""); err != nil {
			t.Fatal(err)
		}
		_, err := w.a.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: w.user})
		st := wantCode(t, err, codes.ResourceExhausted, "")
		if i < 2 {
			w.a.Clock.Advance(retryOf(st))
			continue
		}
		if !strings.Contains(st.Message(), "locked") || retryOf(st) != 24*time.Hour {
			t.Fatalf("after 3 failures: %q retry %v", st.Message(), retryOf(st))
		}
	}
	// Waiting out the back-off (4s max) is not enough: the lock holds.
	w.a.Clock.Advance(time.Hour)
	_, err := w.a.RP.CreateApproval(ctx, &pushauthv1.CreateApprovalRequest{UserRef: w.user})
	wantCode(t, err, codes.ResourceExhausted, "locked")
}

func TestPairingDeniedOrExpiredLeavesNothing(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		w := newWorld(t, url, &pushauthv1.RelyingPartyPolicy{ApprovalTtl: durationpb.New(30 * time.Second)})
		ctx := servertest.Context(t)
		rctx := w.a.WithToken(ctx, w.key)
		second := servertest.NewPhone(t, false)
		w.a.Clock.Advance(time.Minute)
		w.b.Register(t, second, "+31612345671")
		claim := func() *pushauthv1.DeviceRequest {
			ph, err := w.b.Device.CreatePairingPhrase(w.b.WithToken(ctx, second.Credential), &pushauthv1.CreatePairingPhraseRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.a.RP.ClaimPairingPhrase(rctx, &pushauthv1.ClaimPairingPhraseRequest{Phrase: ph.GetPhrase(), UserRef: w.user, AccountLabel: "jan"}); err != nil {
				t.Fatal(err)
			}
			return w.b.Pending(t, second)
		}
		devices := func() int {
			d, err := w.a.RP.ListUserDevices(rctx, &pushauthv1.ListUserDevicesRequest{UserRef: w.user})
			if err != nil {
				t.Fatal(err)
			}
			return len(d.GetDevices())
		}
		r, err := w.b.Decide(t, second, claim(), pushauthv1.Decision_DECISION_DENY, "")
		if err != nil || r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_DENIED {
			t.Fatalf("deny: %v %v", r, err)
		}
		if n := devices(); n != 1 {
			t.Fatalf("denied pairing left %d devices", n)
		}
		claim()
		w.a.Clock.Advance(31 * time.Second)
		if _, err := w.a.Server.Engine.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if n := devices(); n != 1 {
			t.Fatalf("expired pairing left %d devices", n)
		}
		conns, err := w.b.Device.ListConnections(w.b.WithToken(ctx, second.Credential), &pushauthv1.ListConnectionsRequest{})
		if err != nil || len(conns.GetConnections()) != 0 {
			t.Fatalf("second phone has connections: %v %v", conns, err)
		}

		// The first phone removes its own account; then logins have no device.
		pctx := w.b.WithToken(ctx, w.phone.Credential)
		conns, err = w.b.Device.ListConnections(pctx, &pushauthv1.ListConnectionsRequest{})
		if err != nil || len(conns.GetConnections()) != 1 {
			t.Fatalf("connections: %v %v", conns, err)
		}
		_, err = w.b.Device.RemoveConnection(w.b.WithToken(ctx, second.Credential), &pushauthv1.RemoveConnectionRequest{ConnectionId: conns.GetConnections()[0].GetId()})
		wantCode(t, err, codes.NotFound, "connection")
		if _, err := w.b.Device.RemoveConnection(pctx, &pushauthv1.RemoveConnectionRequest{ConnectionId: conns.GetConnections()[0].GetId()}); err != nil {
			t.Fatal(err)
		}
		_, err = w.a.RP.CreateApproval(rctx, &pushauthv1.CreateApprovalRequest{UserRef: w.user})
		wantCode(t, err, codes.FailedPrecondition, "no active device")
	})
}

func TestDeregisteredDeviceLosesItsAccounts(t *testing.T) {
	w := newWorld(t, servertest.Backends[0].NewURL(t), nil)
	ctx := servertest.Context(t)
	if _, err := w.b.Device.DeregisterDevice(w.b.WithToken(ctx, w.phone.Credential), &pushauthv1.DeregisterDeviceRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := w.a.RP.CreateApproval(w.a.WithToken(ctx, w.key), &pushauthv1.CreateApprovalRequest{UserRef: w.user})
	wantCode(t, err, codes.FailedPrecondition, "no active device")
}
