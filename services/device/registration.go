package device

import (
	"context"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/internal/clientaddr"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/registration"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// StartPhoneVerification sends the verification SMS.
func (s *Server) StartPhoneVerification(ctx context.Context, req *pushauthv1.StartPhoneVerificationRequest) (*pushauthv1.StartPhoneVerificationResponse, error) {
	st, err := s.reg.Start(ctx, registration.StartParams{
		PhoneNumber:   req.GetPhoneNumber(),
		DefaultRegion: req.GetDefaultRegion(),
		Locale:        req.GetLocale(),
		ClientAddress: clientaddr.From(ctx),
	})
	if err != nil {
		return nil, err
	}
	return &pushauthv1.StartPhoneVerificationResponse{
		VerificationId:    st.VerificationID,
		MaskedPhoneNumber: st.MaskedNumber,
		ExpireTime:        timestamppb.New(st.ExpiresAt),
		ResendTime:        timestamppb.New(st.ResendAt),
	}, nil
}

// CompletePhoneVerification registers the device.
func (s *Server) CompletePhoneVerification(ctx context.Context, req *pushauthv1.CompletePhoneVerificationRequest) (*pushauthv1.CompletePhoneVerificationResponse, error) {
	d := req.GetDevice()
	dev, cred, err := s.reg.Complete(ctx, registration.CompleteParams{
		VerificationID: req.GetVerificationId(),
		Code:           req.GetCode(),
		LinkToken:      req.GetLinkToken(),
		PublicKey:      d.GetPublicKey(),
		ProofSignature: d.GetProofSignature(),
		Platform:       platform(d.GetPlatform()),
		PushToken:      d.GetPushToken(),
		Name:           d.GetName(),
		AppVersion:     d.GetAppVersion(),
	})
	if err != nil {
		return nil, err
	}
	return &pushauthv1.CompletePhoneVerificationResponse{Device: wire.Device(dev), DeviceCredential: cred}, nil
}

// GetDevice returns the calling device.
func (s *Server) GetDevice(ctx context.Context, _ *pushauthv1.GetDeviceRequest) (*pushauthv1.GetDeviceResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	// Read fresh: the credential's device may be cached from before an
	// UpdateDevice.
	dev, err := s.devices.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return &pushauthv1.GetDeviceResponse{Device: wire.Device(dev)}, nil
}

// deviceFields are what an empty update_mask changes; "locale" only
// changes when named, so apps that predate it do not clear it.
var deviceFields = []string{"push_token", "name", "app_version"}

// UpdateDevice changes the calling device's own fields.
func (s *Server) UpdateDevice(ctx context.Context, req *pushauthv1.UpdateDeviceRequest) (*pushauthv1.UpdateDeviceResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	paths := req.GetUpdateMask().GetPaths()
	for _, p := range paths {
		if !slices.Contains(deviceFields, p) && p != "locale" {
			return nil, fault.Invalid("update_mask", "unknown field \""+p+"\"; known: push_token, name, app_version, locale")
		}
	}
	if len(paths) == 0 {
		paths = deviceFields
	}
	var c registration.DeviceChange
	for _, p := range paths {
		switch p {
		case "push_token":
			c.PushToken = ptr(req.GetPushToken())
		case "name":
			c.Name = ptr(req.GetName())
		case "app_version":
			c.AppVersion = ptr(req.GetAppVersion())
		case "locale":
			c.Locale = ptr(req.GetLocale())
		}
	}
	dev, err := s.devices.Update(ctx, id, c)
	if err != nil {
		return nil, err
	}
	return &pushauthv1.UpdateDeviceResponse{Device: wire.Device(dev)}, nil
}

// DeregisterDevice revokes the calling device, takes it off pending
// requests and ends its open streams.
func (s *Server) DeregisterDevice(ctx context.Context, _ *pushauthv1.DeregisterDeviceRequest) (*pushauthv1.DeregisterDeviceResponse, error) {
	id, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.devices.Deregister(ctx, id); err != nil {
		return nil, err
	}
	// Off its pending requests, and its open streams end on every replica.
	// Repeating the call after a failure here finishes the job.
	if err := s.engine.DeviceRevoked(ctx, "device:"+id, id); err != nil {
		return nil, err
	}
	return &pushauthv1.DeregisterDeviceResponse{}, nil
}

func ptr[T any](v T) *T { return &v }

func platform(p pushauthv1.Platform) string {
	switch p {
	case pushauthv1.Platform_PLATFORM_ANDROID:
		return registration.PlatformAndroid
	case pushauthv1.Platform_PLATFORM_IOS:
		return registration.PlatformIOS
	}
	return ""
}
