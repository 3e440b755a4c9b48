package push

import (
	"context"
	"fmt"
	"log/slog"
)

// RouterConfig names the configured providers; leave a field nil when that
// provider is not configured.
type RouterConfig struct {
	FCM    Sender
	APNs   Sender
	Logger *slog.Logger // for the development fallback; nil means slog.Default()
}

// Router sends each job through the provider its device's token belongs to.
// Android tokens are FCM tokens. An iOS token is an APNs device token (hex)
// when the app registers with APNs directly, or an FCM token when the iOS
// app uses FCM; so iOS goes to APNs when APNs is configured and the token
// looks like an APNs token, else to FCM. With no provider configured at all
// (development) every job goes to a LogSender.
type Router struct {
	fcm, apns, fallback Sender
}

// NewRouter returns a Router for the configured providers.
func NewRouter(cfg RouterConfig) *Router {
	r := &Router{}
	if !isNil(cfg.FCM) {
		r.fcm = cfg.FCM
	}
	if !isNil(cfg.APNs) {
		r.apns = cfg.APNs
	}
	if r.fcm == nil && r.apns == nil {
		r.fallback = NewLogSender(cfg.Logger)
	}
	return r
}

// Name returns "router".
func (*Router) Name() string { return "router" }

// Route returns the sender for j, or an error wrapping ErrNoSender.
func (r *Router) Route(j Job) (Sender, error) {
	if r.fallback != nil {
		return r.fallback, nil
	}
	switch j.Platform {
	case PlatformAndroid:
		if r.fcm != nil {
			return r.fcm, nil
		}
	case PlatformIOS:
		switch {
		case r.apns != nil && isAPNsToken(j.PushToken):
			return r.apns, nil
		case r.fcm != nil:
			return r.fcm, nil
		case r.apns != nil:
			return r.apns, nil // APNs itself will say whether the token is bad
		}
	}
	return nil, fmt.Errorf("%w: platform %q", ErrNoSender, j.Platform)
}

// Send routes j and sends it.
func (r *Router) Send(ctx context.Context, j Job) error {
	s, err := r.Route(j)
	if err != nil {
		return err
	}
	return s.Send(ctx, j)
}

// isAPNsToken reports whether t has the form of an APNs device token: an
// even number of hex digits (64 today; Apple says the length may grow). FCM
// tokens contain ':' and other non-hex characters.
func isAPNsToken(t string) bool {
	if len(t) < 32 || len(t)%2 != 0 {
		return false
	}
	for _, c := range t {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
