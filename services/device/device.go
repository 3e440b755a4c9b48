// Package device implements pushauth.v1.DeviceService for the authenticator
// app. The caller is the device of the credential in use and sees only its
// own connections and requests; registration needs no credential.
package device

import (
	"context"

	"github.com/pushauth/pushauth/internal/approval"
	"github.com/pushauth/pushauth/internal/auth"
	"github.com/pushauth/pushauth/internal/backup"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/pairing"
	"github.com/pushauth/pushauth/internal/registration"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/totp"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// PublicMethods are the DeviceService methods that need no credential.
var PublicMethods = []string{
	pushauthv1.DeviceService_StartPhoneVerification_FullMethodName,
	pushauthv1.DeviceService_CompletePhoneVerification_FullMethodName,
}

// Server is the DeviceService.
type Server struct {
	pushauthv1.UnimplementedDeviceServiceServer
	reg     *registration.Service
	devices *registration.Devices
	engine  *approval.Engine
	phrases *pairing.Phrases
	conns   *pairing.Connections
	rps     store.RelyingParties
	bus     Subscriber
	backups *backup.Service
	totp    *totp.Service
	guard   *auth.Guard
}

// Subscriber delivers one subject's messages; events.Bus is one.
type Subscriber interface {
	Subscribe(subject string, buf int) (<-chan []byte, func(), error)
}

// New returns the DeviceService. The phone's requests go to engine, its
// pairing phrases to phrases and its accounts to conns. guard ends the
// WatchRequests streams of revoked devices and sets how often they re-check
// (nil: never).
func New(reg *registration.Service, devices *registration.Devices, engine *approval.Engine, phrases *pairing.Phrases, conns *pairing.Connections,
	rps store.RelyingParties, bus Subscriber, backups *backup.Service, codes *totp.Service, guard *auth.Guard) *Server {
	return &Server{reg: reg, devices: devices, engine: engine, phrases: phrases, conns: conns, rps: rps, bus: bus, backups: backups, totp: codes, guard: guard}
}

// caller returns the calling device or an error for a call without one.
func caller(ctx context.Context) (string, error) {
	dev, ok := auth.DeviceFrom(ctx)
	if !ok {
		return "", fault.New(fault.Unauthenticated, "no device credentials")
	}
	return dev.ID, nil
}
