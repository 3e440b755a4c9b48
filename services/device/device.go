// Package device implements pushauth.v1.DeviceService for the authenticator
// app. The caller is the device of the credential in use and sees only its
// own connections and requests.
package device

import (
	"context"

	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/fault"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
	"github.com/pushauth/pushauth/services/wire"
)

// Server is the DeviceService.
type Server struct {
	pushauthv1.UnimplementedDeviceServiceServer
}

// New returns the DeviceService.
func New() *Server { return &Server{} }

// GetDevice returns the calling device.
func (s *Server) GetDevice(ctx context.Context, _ *pushauthv1.GetDeviceRequest) (*pushauthv1.GetDeviceResponse, error) {
	dev, ok := auth.DeviceFrom(ctx)
	if !ok {
		return nil, fault.New(fault.Unauthenticated, "no device credentials")
	}
	return &pushauthv1.GetDeviceResponse{Device: wire.Device(dev)}, nil
}
