package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestServeExportsTracesOnShutdown: OTEL_TRACES_EXPORTER=otlp sends the
// server's spans to the collector, at the latest when it shuts down; the
// default (tested by every other serve test) exports nothing. And a bad
// exporter name stops the start with a clear line.
func TestServeExportsTracesOnShutdown(t *testing.T) {
	var exports atomic.Int64
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" {
			exports.Add(1)
		}
	}))
	defer col.Close()
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "3600000") // only the shutdown flush exports

	r := start(t, "--data-dir", t.TempDir())
	conn := dial(t, r.addr)
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	r.shutdown(t)
	if exports.Load() == 0 {
		t.Fatalf("no spans exported by shutdown:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr.String(), `"exporter":"otlp"`) {
		t.Errorf("the log does not say tracing is on:\n%s", r.stderr)
	}

	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin")
	getenv, environ := env(nil)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--data-dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--ops-addr", "", "--http-addr", ""}, getenv, environ, &bytes.Buffer{}, &stderr, nil)
	if code != 1 || !strings.Contains(stderr.String(), "pushauthd: tracing: OTEL_TRACES_EXPORTER") {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
}
