package relyingparty

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// ClaimPairingPhrase sends a PAIRING request to the phone showing the phrase.
func (s *Server) ClaimPairingPhrase(ctx context.Context, req *pushauthv1.ClaimPairingPhraseRequest) (*pushauthv1.ClaimPairingPhraseResponse, error) {
	rp, actor, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	rc := wire.ContextFromProto(req.GetContext())
	r, err := s.engine.ClaimPairing(ctx, actor, rp, req.GetPhrase(), req.GetUserRef(), req.GetAccountLabel(), rc.IPAddress, rc)
	if err != nil {
		return nil, err
	}
	return &pushauthv1.ClaimPairingPhraseResponse{RequestId: r.ID, ExpireTime: timestamppb.New(r.ExpiresAt)}, nil
}

// ListUserDevices lists a user's connected phones.
func (s *Server) ListUserDevices(ctx context.Context, req *pushauthv1.ListUserDevicesRequest) (*pushauthv1.ListUserDevicesResponse, error) {
	rp, _, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	devs, err := s.conns.UserDevices(ctx, rp.ID, req.GetUserRef())
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.ListUserDevicesResponse{}
	for _, d := range devs {
		pd := wire.Device(d.Device)
		resp.Devices = append(resp.Devices, &pushauthv1.UserDevice{
			DeviceId:       d.Device.ID,
			ConnectionId:   d.Connection.ID,
			Name:           d.Device.Name,
			Platform:       pd.GetPlatform(),
			AccountLabel:   d.Connection.AccountLabel,
			ConnectTime:    wire.OptionalTime(d.Connection.ActivatedAt),
			LastSeenTime:   wire.OptionalTime(d.Device.LastSeenAt),
			PushTokenAlive: !d.Device.PushTokenDead && d.Device.PushToken != "",
		})
	}
	return resp, nil
}

// RemoveUserDevice disconnects a phone from a user.
func (s *Server) RemoveUserDevice(ctx context.Context, req *pushauthv1.RemoveUserDeviceRequest) (*pushauthv1.RemoveUserDeviceResponse, error) {
	rp, actor, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.conns.RemoveUserDevice(ctx, actor, rp.ID, req.GetUserRef(), req.GetDeviceId()); err != nil {
		return nil, err
	}
	return &pushauthv1.RemoveUserDeviceResponse{}, nil
}

// GetDeviceKey returns a connected device's public key.
func (s *Server) GetDeviceKey(ctx context.Context, req *pushauthv1.GetDeviceKeyRequest) (*pushauthv1.GetDeviceKeyResponse, error) {
	rp, _, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	key, err := s.conns.DeviceKey(ctx, rp.ID, req.GetDeviceId())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.GetDeviceKeyResponse{DeviceId: req.GetDeviceId(), PublicKey: key}, nil
}
