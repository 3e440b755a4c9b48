package phone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/metadata"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Device is a registered phone talking to the DeviceService: its key, its
// id and the credential it sends on every call.
type Device struct {
	Key        *Key
	ID         string
	Credential string
	API        pushauthv1.DeviceServiceClient
	// Now is the phone's clock, for signing; nil means time.Now.
	Now func() time.Time
}

// Proof completes a phone verification: the SMS code, or the token of the
// SMS link.
type Proof struct {
	Code      string
	LinkToken string
}

// Register completes the phone verification verificationID (from
// StartPhoneVerification) with proof, registering key, and returns the
// registered device. The credential is shown only once: keep it.
func Register(ctx context.Context, api pushauthv1.DeviceServiceClient, key *Key, verificationID string, proof Proof, info DeviceInfo) (*Device, error) {
	reg, err := key.Registration(verificationID, info)
	if err != nil {
		return nil, err
	}
	req := &pushauthv1.CompletePhoneVerificationRequest{VerificationId: verificationID, Device: reg}
	if proof.LinkToken != "" {
		req.Proof = &pushauthv1.CompletePhoneVerificationRequest_LinkToken{LinkToken: proof.LinkToken}
	} else {
		req.Proof = &pushauthv1.CompletePhoneVerificationRequest_Code{Code: proof.Code}
	}
	resp, err := api.CompletePhoneVerification(ctx, req)
	if err != nil {
		return nil, err
	}
	return &Device{Key: key, ID: resp.GetDevice().GetId(), Credential: resp.GetDeviceCredential(), API: api}, nil
}

// Context returns ctx sending the device credential (and no other
// authorization).
func (d *Device) Context(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set("authorization", "Bearer "+d.Credential)
	return metadata.NewOutgoingContext(ctx, md)
}

func (d *Device) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// PairingPhrase asks for the two words to type on a login page ("add an
// account"); they work once, until expires.
func (d *Device) PairingPhrase(ctx context.Context) (phrase string, expires time.Time, err error) {
	resp, err := d.API.CreatePairingPhrase(d.Context(ctx), &pushauthv1.CreatePairingPhraseRequest{})
	if err != nil {
		return "", time.Time{}, err
	}
	return resp.GetPhrase(), resp.GetExpireTime().AsTime(), nil
}

// Pending lists the requests waiting for this phone's answer.
func (d *Device) Pending(ctx context.Context) ([]*pushauthv1.DeviceRequest, error) {
	resp, err := d.API.ListPendingRequests(d.Context(ctx), &pushauthv1.ListPendingRequestsRequest{})
	return resp.GetRequests(), err
}

// Get fetches a request's details, as the app does on a push; this tells the
// login page the request was seen.
func (d *Device) Get(ctx context.Context, id string) (*pushauthv1.DeviceRequest, error) {
	resp, err := d.API.GetRequest(d.Context(ctx), &pushauthv1.DeviceServiceGetRequestRequest{RequestId: id})
	return resp.GetRequest(), err
}

// Next waits, on WatchRequests, for a pending request of kind (any kind for
// REQUEST_KIND_UNSPECIFIED) and returns its details from Get. Requests
// already pending count: WatchRequests sends them first.
func (d *Device) Next(ctx context.Context, kind pushauthv1.RequestKind) (*pushauthv1.DeviceRequest, error) {
	sctx, cancel := context.WithCancel(d.Context(ctx))
	defer cancel()
	stream, err := d.API.WatchRequests(sctx, &pushauthv1.WatchRequestsRequest{})
	if err != nil {
		return nil, err
	}
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, errors.New("phone: the server ended the watch")
		}
		if err != nil {
			return nil, err
		}
		r := m.GetRequest()
		if r == nil || (kind != pushauthv1.RequestKind_REQUEST_KIND_UNSPECIFIED && r.GetKind() != kind) {
			continue
		}
		dr, err := d.Get(ctx, r.GetId())
		if err != nil {
			return nil, err
		}
		if dr.GetStatus() == pushauthv1.RequestStatus_REQUEST_STATUS_PENDING {
			return dr, nil
		}
	}
}

// Answer signs a on dr as shown (see Key.Respond) and sends it. A zero
// a.SignedAt is the phone's clock now. The response holds the request's new
// state and, for an approved pairing, the connection's TOTP seed.
func (d *Device) Answer(ctx context.Context, dr *pushauthv1.DeviceRequest, a Answer) (*pushauthv1.RespondToRequestResponse, error) {
	if a.SignedAt.IsZero() {
		a.SignedAt = d.now()
	}
	req, err := d.Key.Respond(d.ID, dr, a)
	if err != nil {
		return nil, err
	}
	resp, err := d.API.RespondToRequest(d.Context(ctx), req)
	if err != nil {
		return nil, fmt.Errorf("answer request %s: %w", dr.GetId(), err)
	}
	return resp, nil
}

// Approve answers dr with APPROVE and number (the digits the login page
// shows, or "" without number matching).
func (d *Device) Approve(ctx context.Context, dr *pushauthv1.DeviceRequest, number string) (*pushauthv1.Request, error) {
	resp, err := d.Answer(ctx, dr, Answer{Decision: pushauthv1.Decision_DECISION_APPROVE, Number: number})
	return resp.GetRequest(), err
}

// Deny answers dr with DENY.
func (d *Device) Deny(ctx context.Context, dr *pushauthv1.DeviceRequest) (*pushauthv1.Request, error) {
	resp, err := d.Answer(ctx, dr, Answer{Decision: pushauthv1.Decision_DECISION_DENY})
	return resp.GetRequest(), err
}
