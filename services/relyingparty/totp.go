package relyingparty

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// EnrollTotp starts enrolling another authenticator app.
func (s *Server) EnrollTotp(ctx context.Context, req *pushauthv1.EnrollTotpRequest) (*pushauthv1.EnrollTotpResponse, error) {
	rp, actor, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	e, err := s.totp.Enroll(ctx, actor, rp, req.GetUserRef(), req.GetAccountLabel())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.EnrollTotpResponse{FactorId: e.FactorID, Secret: e.Secret, OtpauthUri: e.URI, QrPng: e.QRPNG}, nil
}

// ConfirmTotp activates an enrolled factor.
func (s *Server) ConfirmTotp(ctx context.Context, req *pushauthv1.ConfirmTotpRequest) (*pushauthv1.ConfirmTotpResponse, error) {
	rp, actor, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.totp.Confirm(ctx, actor, rp, req.GetUserRef(), req.GetFactorId(), req.GetCode()); err != nil {
		return nil, err
	}
	return &pushauthv1.ConfirmTotpResponse{}, nil
}

// RemoveTotp removes a factor.
func (s *Server) RemoveTotp(ctx context.Context, req *pushauthv1.RemoveTotpRequest) (*pushauthv1.RemoveTotpResponse, error) {
	rp, actor, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.totp.Remove(ctx, actor, rp, req.GetUserRef(), req.GetFactorId()); err != nil {
		return nil, err
	}
	return &pushauthv1.RemoveTotpResponse{}, nil
}

// VerifyTotp checks a code against the user's factors.
func (s *Server) VerifyTotp(ctx context.Context, req *pushauthv1.VerifyTotpRequest) (*pushauthv1.VerifyTotpResponse, error) {
	rp, actor, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	f, err := s.totp.Verify(ctx, actor, rp, req.GetUserRef(), req.GetCode())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.VerifyTotpResponse{FactorId: f.ID, FactorKind: f.Kind}, nil
}

// ListUserFactors says what the login page can offer.
func (s *Server) ListUserFactors(ctx context.Context, req *pushauthv1.ListUserFactorsRequest) (*pushauthv1.ListUserFactorsResponse, error) {
	devs, err := s.ListUserDevices(ctx, &pushauthv1.ListUserDevicesRequest{UserRef: req.GetUserRef()})
	if err != nil {
		return nil, err
	}
	rp, _, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	factors, err := s.totp.List(ctx, rp.ID, req.GetUserRef())
	if err != nil {
		return nil, err
	}
	us, err := s.engine.UserState(ctx, rp.ID, req.GetUserRef())
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListUserFactorsResponse{PushDevices: devs.GetDevices(), State: &pushauthv1.UserState{
		PushBackoffUntil: wire.OptionalTime(us.BackoffUntil), PushLocked: us.Locked, ConsecutiveFailures: int32(us.ConsecutiveFailures),
		PushMutedUntil: wire.OptionalTime(us.MutedUntil), TotpLockedUntil: wire.OptionalTime(us.TOTPLockedUntil),
	}}
	byConn := map[string]string{}
	for _, d := range devs.GetDevices() {
		byConn[d.GetConnectionId()] = d.GetDeviceId()
	}
	for _, f := range factors {
		if f.Kind == store.TOTPKindConnection && byConn[f.ConnectionID] == "" {
			continue // the connection is gone
		}
		resp.TotpFactors = append(resp.TotpFactors, &pushauthv1.TotpFactor{
			Id: f.ID, Kind: f.Kind, Label: f.Label, Confirmed: f.Status == store.TOTPActive,
			CreateTime: timestamppb.New(f.CreatedAt), DeviceId: byConn[f.ConnectionID],
		})
	}
	return resp, nil
}
