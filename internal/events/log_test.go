package events

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestEmbeddedLogsNoURL: the embedded server listens on no port, so its
// log names no URL: "nats://0.0.0.0:4222" would send an operator looking
// for a port that is not open.
func TestEmbeddedLogsNoURL(t *testing.T) {
	var log bytes.Buffer
	b, err := Start(testCtx(t), Config{StoreDir: t.TempDir(), ServerName: "test"}, slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	out := log.String()
	if !strings.Contains(out, `msg="nats connected" target="in-process server" embedded=true`) {
		t.Errorf("no connection line:\n%s", out)
	}
	if strings.Contains(out, "nats://") || strings.Contains(out, "4222") || strings.Contains(out, "url=") {
		t.Errorf("the log names a URL the embedded server does not listen on:\n%s", out)
	}
}
