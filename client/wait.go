package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/decision"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// WaitOption changes how Wait reports progress.
type WaitOption func(*waitConfig)

type waitConfig struct {
	progress []func(*pushauthv1.Progress)
	ch       chan<- *pushauthv1.Progress
}

// OnProgress calls f with each piece of news (queued, sent, delivery
// failed, seen), once each even across re-attaches. f runs on Wait's
// goroutine: keep it short.
func OnProgress(f func(*pushauthv1.Progress)) WaitOption {
	return func(c *waitConfig) { c.progress = append(c.progress, f) }
}

// ProgressTo sends each piece of news on ch; Wait blocks while ch is full
// (unless its context ends). Wait does not close ch.
func ProgressTo(ch chan<- *pushauthv1.Progress) WaitOption {
	return func(c *waitConfig) { c.ch = ch }
}

// Outcome is how a request ended, as checked by Wait.
type Outcome struct {
	Request *pushauthv1.Request
	// Signed is the verified signed decision: set whenever a device decided
	// (approved, denied, wrong number, fraud report); nil when none did
	// (expired, cancelled), and for a pairing the phone declined (it is not
	// connected, so its key is not the relying party's to read).
	Signed *decision.Fields
}

// Approved reports whether the request was approved with a verified
// signature: the only outcome that lets the user in.
func (o *Outcome) Approved() bool {
	return o != nil && o.Signed != nil && o.Request.GetStatus() == pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED
}

// Status and Reason are the request's final state.
func (o *Outcome) Status() pushauthv1.RequestStatus { return o.Request.GetStatus() }

// Reason is why the request ended as it did.
func (o *Outcome) Reason() pushauthv1.DecisionReason { return o.Request.GetReason() }

// ErrUntrusted means a decision's signature or content does not hold: treat
// the request as failed and alert someone.
var ErrUntrusted = errors.New("client: the signed decision cannot be trusted")

// Re-attaching: Wait tries again with a pause growing from 50 ms to
// maxReattachPause, and gives up after reattachPatience without news. The
// patience rides out what a cluster goes through (a replica restarting, a
// PostgreSQL restart: ~10 s in docs/operations.md), where every replica
// answers Unavailable for a while; a count of tries alone was used up in
// under 2 s and left logins decided but never reported.
const (
	maxReattachPause = 2 * time.Second
	reattachPatience = 30 * time.Second
)

// Wait follows p until it ends and returns the checked outcome (see Check).
// When the stream breaks (the replica stopped, the network dropped, the
// server is Unavailable), Wait opens it again, on another replica if there
// is one, for up to 30 s without news; progress already seen is not
// reported twice. The server ends the wait at the request's expiry.
func (c *Client) Wait(ctx context.Context, p *Pending, opts ...WaitOption) (*Outcome, error) {
	var cfg waitConfig
	for _, o := range opts {
		o(&cfg)
	}
	seen := map[string]bool{}
	emit := func(pr *pushauthv1.Progress) error {
		key := pr.GetKind().String() + "/" + pr.GetDeviceId() + "/" + pr.GetDetail()
		if seen[key] {
			return nil
		}
		seen[key] = true
		for _, f := range cfg.progress {
			f(pr)
		}
		if cfg.ch != nil {
			select {
			case cfg.ch <- pr:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	failures := 0
	var quietSince time.Time // the first failure since the last news
	for {
		r, news, err := c.waitOnce(ctx, p.RequestID, emit, failures > 0)
		if err == nil {
			out, cerr := c.Check(ctx, p, r)
			if cerr == nil || errors.Is(cerr, ErrUntrusted) || status.Code(cerr) != codes.Unavailable {
				return out, cerr
			}
			// The device's key could not be fetched just now: the ended
			// request is sent again on the next attach.
			err, news = cerr, false
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !reattachable(err) {
			return nil, err
		}
		if news {
			failures, quietSince = 0, time.Time{}
		}
		if quietSince.IsZero() {
			quietSince = time.Now()
		}
		failures++
		if time.Since(quietSince) > reattachPatience {
			return nil, fmt.Errorf("client: waiting for %s: %w", p.RequestID, err)
		}
		t := time.NewTimer(min(maxReattachPause, (50*time.Millisecond)<<min(failures-1, 6)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// errNoResult is a stream that ended without the final request.
var errNoResult = errors.New("client: the server ended the wait without a result")

// reattachable reports whether a broken wait may go on elsewhere.
func reattachable(err error) bool {
	if errors.Is(err, errNoResult) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.Canceled:
		return true
	}
	return false
}

// waitOnce reads one WaitRequest stream; news says it delivered anything.
func (c *Client) waitOnce(ctx context.Context, id string, emit func(*pushauthv1.Progress) error, again bool) (r *pushauthv1.Request, news bool, err error) {
	sctx, cancel := context.WithCancel(c.ctx(ctx))
	defer cancel()
	var opts []grpc.CallOption
	if again {
		// Wait for a replica that is up rather than fail at once.
		opts = append(opts, grpc.WaitForReady(true))
	}
	stream, err := c.api.WaitRequest(sctx, &pushauthv1.WaitRequestRequest{RequestId: id}, opts...)
	if err != nil {
		return nil, false, err
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, news, errNoResult
		}
		if err != nil {
			return nil, news, err
		}
		news = true
		if res := ev.GetResult(); res != nil {
			return res, true, nil
		}
		if pr := ev.GetProgress(); pr != nil {
			if err := emit(pr); err != nil {
				return nil, true, err
			}
		}
	}
}

// DeviceKey returns a device's public key (SubjectPublicKeyInfo DER),
// fetched with GetDeviceKey once and then kept: a device's key never
// changes (a new registration is a new device).
func (c *Client) DeviceKey(ctx context.Context, deviceID string) ([]byte, error) {
	c.mu.Lock()
	k, ok := c.keys[deviceID]
	c.mu.Unlock()
	if ok {
		return k, nil
	}
	resp, err := c.api.GetDeviceKey(c.ctx(ctx), &pushauthv1.GetDeviceKeyRequest{DeviceId: deviceID})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.keys[deviceID] = resp.GetPublicKey()
	c.mu.Unlock()
	return resp.GetPublicKey(), nil
}

// kinds are the request kinds as the decision string spells them.
var kinds = map[pushauthv1.RequestKind]string{
	pushauthv1.RequestKind_REQUEST_KIND_LOGIN:   decision.KindLogin,
	pushauthv1.RequestKind_REQUEST_KIND_PAIRING: decision.KindPairing,
}

// signedDecision is what the signed string must say for a final state.
func signedDecision(r *pushauthv1.Request) (string, bool) {
	switch r.GetStatus() {
	case pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED:
		return decision.Approve, true
	case pushauthv1.RequestStatus_REQUEST_STATUS_DENIED:
		switch r.GetReason() {
		case pushauthv1.DecisionReason_DECISION_REASON_USER:
			return decision.Deny, true
		case pushauthv1.DecisionReason_DECISION_REASON_FRAUD_REPORT:
			return decision.ReportFraud, true
		case pushauthv1.DecisionReason_DECISION_REASON_NUMBER_MISMATCH:
			return decision.Approve, true // the phone approved with a wrong number
		}
	}
	return "", false
}

// Check verifies a final request r of p as a login server must: it is the
// request asked for; when a device decided, the signature verifies with that
// device's key (DeviceKey) and the signed string names this request, kind,
// user, relying party and device, the decision its status says, and for an
// approval with number matching the number the page showed. An approval
// without a signed decision is never accepted. Failures wrap ErrUntrusted.
func (c *Client) Check(ctx context.Context, p *Pending, r *pushauthv1.Request) (*Outcome, error) {
	untrusted := func(format string, a ...any) error {
		return fmt.Errorf("%w: request %s: %s", ErrUntrusted, p.RequestID, fmt.Sprintf(format, a...))
	}
	switch {
	case r.GetId() != p.RequestID:
		return nil, untrusted("the server returned request %q", r.GetId())
	case r.GetKind() != p.Kind:
		return nil, untrusted("it is a %s, not a %s", r.GetKind(), p.Kind)
	case r.GetUserRef() != p.UserRef:
		return nil, untrusted("it is for another user")
	}
	out := &Outcome{Request: r}
	sd := r.GetSignedDecision()
	want, decided := signedDecision(r)
	if sd == nil {
		if r.GetStatus() == pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
			return nil, untrusted("approved without a signed decision")
		}
		return out, nil
	}
	if sd.GetDeviceId() != r.GetDecidingDeviceId() {
		return nil, untrusted("signed by device %s, not by the deciding device %s", sd.GetDeviceId(), r.GetDecidingDeviceId())
	}
	key, err := c.DeviceKey(ctx, sd.GetDeviceId())
	if status.Code(err) == codes.NotFound && r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
		// A phone that declined a pairing is not connected, so its key is
		// not this relying party's to read. A refusal grants nothing.
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("client: the key of device %s: %w", sd.GetDeviceId(), err)
	}
	f, err := decision.Verify(key, sd.GetPayload(), sd.GetSignature())
	if err != nil {
		return nil, untrusted("%v", err)
	}
	rpID, err := c.relyingPartyID(ctx)
	if err != nil {
		return nil, err
	}
	for _, chk := range []struct{ name, got, want string }{
		{"request_id", f.RequestID, p.RequestID},
		{"kind", f.Kind, kinds[p.Kind]},
		{"user_ref", f.UserRef, p.UserRef},
		{"relying_party_id", f.RelyingPartyID, rpID},
		{"device_id", f.DeviceID, sd.GetDeviceId()},
	} {
		if chk.got != chk.want {
			return nil, untrusted("the signed %s is %q, not %q", chk.name, chk.got, chk.want)
		}
	}
	if !decided || f.Decision != want {
		return nil, untrusted("the signed decision is %s, but the request is %s (%s)", f.Decision, r.GetStatus(), r.GetReason())
	}
	if r.GetStatus() == pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
		if p.ShowNumber() && f.NumberAnswer != p.Number {
			return nil, untrusted("approved with a number other than the one shown")
		}
		if f.AutoApproved != r.GetAutoApproved() {
			return nil, untrusted("auto_approved differs from the request")
		}
	}
	out.Signed = &f
	return out, nil
}
