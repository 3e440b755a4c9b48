package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTransportConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pushauthd.yaml")
	writeFile(t, file, "trusted_proxies: [10.0.0.0/8, 192.0.2.1]\nmax_connection_age: 0s\napi_key_rate: 0\nmax_connections: 20\n")
	getenv, environ := env(map[string]string{"PUSHAUTH_CONFIG": file, "PUSHAUTH_WATCH_STREAMS_PER_DEVICE": "2"})
	cfg, err := LoadConfig([]string{"--keepalive-time", "90s"}, getenv, environ, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.TrustedProxies, ",") != "10.0.0.0/8,192.0.2.1" {
		t.Errorf("trusted_proxies = %v", cfg.TrustedProxies)
	}
	l := cfg.transportLimits()
	if l.MaxConnections != 20 || l.WatchStreamsPerDevice != 2 || l.KeepaliveTime != 90*time.Second {
		t.Errorf("limits from file, environment and flag: %+v", l)
	}
	if l.APIKeyRate >= 0 || l.MaxConnectionAge >= 0 {
		t.Errorf("0 in the configuration must switch the limit off (negative in server.Limits): %+v", l)
	}
	if d := DefaultConfig().transportLimits(); d.WaitStreamsPerAPIKey != 100 || d.MaxConnectionAgeGrace != 11*time.Minute {
		t.Errorf("defaults: %+v", d)
	}

	getenv, environ = env(nil)
	_, err = LoadConfig([]string{
		"--trusted-proxies", "10.0.0.0/33,proxy.example",
		"--max-connections", "-1",
		"--max-concurrent-streams", "0",
		"--max-recv-msg-bytes", "10",
		"--keepalive-timeout", "0s",
		"--max-connection-age-grace", "5m",
		"--api-key-burst", "0",
	}, getenv, environ, io.Discard)
	for _, want := range []string{
		`trusted_proxies: "10.0.0.0/33"`,
		`trusted_proxies: "proxy.example"`,
		"max_connections: must not be negative",
		"max_concurrent_streams: must be at least 1",
		"max_recv_msg_bytes: must be between",
		"keepalive_timeout: must be at least 1s",
		"max_connection_age_grace: must be at least 10m",
		"api_key_burst: must be at least 1",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
}
