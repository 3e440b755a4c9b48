package device

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/store"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

func callerDevice(ctx context.Context) (store.Device, error) {
	dev, ok := auth.DeviceFrom(ctx)
	if !ok {
		return store.Device{}, fault.New(fault.Unauthenticated, "no device credentials")
	}
	return dev, nil
}

// PutBackup stores the app's encrypted backup.
func (s *Server) PutBackup(ctx context.Context, req *pushauthv1.PutBackupRequest) (*pushauthv1.PutBackupResponse, error) {
	dev, err := callerDevice(ctx)
	if err != nil {
		return nil, err
	}
	share, at, err := s.backups.Put(ctx, dev, req.GetBlob(), req.GetPasscode(), req.GetCurrentPasscode(), req.GetKeyShare())
	if err != nil {
		return nil, err
	}
	return &pushauthv1.PutBackupResponse{KeyShare: share, UpdateTime: timestamppb.New(at)}, nil
}

// RestoreBackup moves the number's backup and accounts to this phone.
func (s *Server) RestoreBackup(ctx context.Context, req *pushauthv1.RestoreBackupRequest) (*pushauthv1.RestoreBackupResponse, error) {
	dev, err := callerDevice(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.backups.Restore(ctx, dev, req.GetPasscode())
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.RestoreBackupResponse{Blob: r.Blob, KeyShare: r.KeyShare, ReplacedDeviceId: r.OldDevice}
	for _, c := range r.Moved {
		rp := r.RPsOfMoved[c.RelyingPartyID]
		resp.MovedConnections = append(resp.MovedConnections, &pushauthv1.Connection{
			Id: c.ID, RelyingPartyId: rp.ID, RelyingPartyName: rp.DisplayName, AccountLabel: c.AccountLabel, ConnectTime: wire.OptionalTime(c.ActivatedAt),
		})
	}
	for _, sk := range r.Skipped {
		resp.NeedsRepairing = append(resp.NeedsRepairing, &pushauthv1.NotRestored{
			RelyingPartyName: sk.RelyingParty.DisplayName, AccountLabel: sk.Connection.AccountLabel, Reason: sk.Reason,
		})
	}
	return resp, nil
}

// DeleteBackup removes the number's backup.
func (s *Server) DeleteBackup(ctx context.Context, req *pushauthv1.DeleteBackupRequest) (*pushauthv1.DeleteBackupResponse, error) {
	dev, err := callerDevice(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.backups.Delete(ctx, dev, req.GetPasscode()); err != nil {
		return nil, err
	}
	return &pushauthv1.DeleteBackupResponse{}, nil
}

// GetBackupInfo describes the number's backup.
func (s *Server) GetBackupInfo(ctx context.Context, _ *pushauthv1.GetBackupInfoRequest) (*pushauthv1.GetBackupInfoResponse, error) {
	dev, err := callerDevice(ctx)
	if err != nil {
		return nil, err
	}
	i, err := s.backups.Info(ctx, dev)
	if err != nil {
		return nil, err
	}
	resp := &pushauthv1.GetBackupInfoResponse{Exists: i.Exists, AttemptsLeft: int32(i.AttemptsLeft), LockedUntil: wire.OptionalTime(i.LockedUntil)}
	if i.Exists {
		resp.UpdateTime = timestamppb.New(i.UpdatedAt)
	}
	return resp, nil
}
