package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/retention"
)

func TestRetentionConfig(t *testing.T) {
	getenv, environ := env(map[string]string{"PUSHAUTH_RETENTION_AUDIT": "8760h"})
	cfg, err := LoadConfig([]string{"--retention-requests", "48h"}, getenv, environ, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.retentionConfig()
	want := retention.Config{
		Period:        10 * time.Minute,
		Requests:      48 * time.Hour,
		Verifications: retention.Day,
		Outbox:        retention.Day,
		Audit:         365 * retention.Day,
		Counters:      retention.Day,
	}
	if got != want {
		t.Errorf("retention config = %+v, want %+v", got, want)
	}
	// The defaults agree with the sweeper's own.
	def := DefaultConfig().retentionConfig()
	def.Batch = retention.DefaultConfig().Batch
	if def != retention.DefaultConfig() {
		t.Errorf("pushauthd defaults %+v differ from retention.DefaultConfig() %+v", def, retention.DefaultConfig())
	}
}

func TestRetentionConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--retention-requests", "0s"}, "retention_requests: must be positive"},
		{[]string{"--retention-outbox", "-1h"}, "retention_outbox: must be positive"},
		{[]string{"--retention-interval", "0s"}, "retention_interval: must be positive"},
		{[]string{"--retention-interval", "10ms"}, "retention_interval: must be at least 1s"},
		{[]string{"--retention-audit", "0s"}, "retention_audit: must be positive"},
		{[]string{"--retention-requests", "800h", "--retention-audit", "700h"}, "retention_audit: must be at least retention_requests"},
		{[]string{"--retention-counters", "1h"}, "retention_counters: must be at least 24h"},
		{[]string{"--retention-verifications", "1m", "--sms-resend-cooldown", "2m"}, "retention_verifications: must be at least sms_resend_cooldown"},
	} {
		getenv, environ := env(nil)
		_, err := LoadConfig(tc.args, getenv, environ, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadConfig(%v) = %v, want %q", tc.args, err, tc.want)
		}
	}
}
