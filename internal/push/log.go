package push

import (
	"context"
	"log/slog"
)

// LogSender is the development sender: it logs the push it would send and
// succeeds, so the whole flow works without FCM or APNs credentials (the
// app's live stream still delivers the request). It never logs the full
// token.
type LogSender struct {
	logger *slog.Logger
}

// NewLogSender logs to logger (nil means slog.Default()).
func NewLogSender(logger *slog.Logger) *LogSender {
	if logger == nil {
		logger = slog.Default()
	}
	return &LogSender{logger: logger}
}

// Name returns "log".
func (*LogSender) Name() string { return "log" }

// Send logs the push and returns nil.
func (l *LogSender) Send(ctx context.Context, j Job) error {
	n := NewNotification(j)
	l.logger.InfoContext(ctx, "push: not sent (no push provider configured)",
		"approval_id", j.RequestID, "device_id", j.DeviceID, "platform", j.Platform,
		"kind", j.Kind, "title", n.Title, "token", redactToken(j.PushToken),
		"expires_at", j.ExpiresAt)
	return nil
}
