package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) (func(string) string, []string) {
	var list []string
	for k, v := range m {
		list = append(list, k+"="+v)
	}
	return func(k string) string { return m[k] }, list
}

func TestLoadConfigDefaults(t *testing.T) {
	getenv, environ := env(nil)
	cfg, err := LoadConfig(nil, getenv, environ, io.Discard)
	if err != nil {
		t.Fatalf("zero configuration must be valid: %v", err)
	}
	want := DefaultConfig()
	if cfg.GRPCAddr != want.GRPCAddr || cfg.DataDir != "./data" || cfg.DatabaseURL != "" || cfg.NATSURL != "" {
		t.Fatalf("defaults: got %+v", cfg)
	}
	if got := cfg.databaseURL(); got != "sqlite:data/pushauth.db" {
		t.Fatalf("default database URL = %q", got)
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pushauthd.yaml")
	writeFile(t, file, "grpc_addr: 127.0.0.1:1000\nops_addr: 127.0.0.1:1001\nshutdown_timeout: 3s\nadmin_cert_names: [ops-a, ops-b]\nlog_level: debug\n")
	ca := filepath.Join(dir, "ca.pem")
	writeFile(t, ca, "x")
	getenv, environ := env(map[string]string{
		"PUSHAUTH_CONFIG":             file,
		"PUSHAUTH_OPS_ADDR":           "127.0.0.1:2001",
		"PUSHAUTH_LOG_LEVEL":          "warn",
		"PUSHAUTH_TEST_POSTGRES_DSN":  "ignored",
		"PUSHAUTH_TLS_CERT_FILE":      ca,
		"PUSHAUTH_TLS_KEY_FILE":       ca,
		"PUSHAUTH_TLS_CLIENT_CA_FILE": ca,
	})
	cfg, err := LoadConfig([]string{"--log-level", "error"}, getenv, environ, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.GRPCAddr != "127.0.0.1:1000" {
		t.Errorf("file value lost: grpc_addr = %q", cfg.GRPCAddr)
	}
	if cfg.OpsAddr != "127.0.0.1:2001" {
		t.Errorf("environment must beat the file: ops_addr = %q", cfg.OpsAddr)
	}
	if cfg.LogLevel != "error" {
		t.Errorf("flag must beat the environment: log_level = %q", cfg.LogLevel)
	}
	if cfg.ShutdownTimeout != 3*time.Second {
		t.Errorf("shutdown_timeout = %v", cfg.ShutdownTimeout)
	}
	if strings.Join(cfg.AdminCertNames, ",") != "ops-a,ops-b" {
		t.Errorf("admin_cert_names = %v", cfg.AdminCertNames)
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.yaml")
	writeFile(t, file, "grpc_adr: 127.0.0.1:1\nshutdown_timeout: soon\n")
	getenv, environ := env(map[string]string{
		"PUSHAUTH_CONFIG":   file,
		"PUSHAUTH_COLOUR":   "blue",
		"PUSHAUTH_OPS_ADDR": "nocolon",
	})
	_, err := LoadConfig([]string{
		"--database-url", "mysql://x",
		"--nats-url", "http://x",
		"--log-format", "xml",
		"--tls-cert-file", filepath.Join(dir, "missing.pem"),
		"--admin-token", "short",
	}, getenv, environ, io.Discard)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		`unknown key "grpc_adr"`,
		"shutdown_timeout: not a duration",
		"unknown variable PUSHAUTH_COLOUR",
		"ops_addr:",
		"database_url: scheme must be",
		"nats_url:",
		"log_format:",
		"tls_cert_file: tls_cert_file and tls_key_file go together",
		"tls_cert_file: cannot read",
		"admin_token: too short",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
	if lines := strings.Count(err.Error(), "\n") + 1; lines < 10 {
		t.Errorf("want one line per problem, got %d lines:\n%v", lines, err)
	}
}

func TestLoadConfigRejectsStrayArgument(t *testing.T) {
	getenv, environ := env(nil)
	if _, err := LoadConfig([]string{"serve"}, getenv, environ, io.Discard); err == nil || !strings.Contains(err.Error(), `unexpected argument "serve"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestRedactURL(t *testing.T) {
	if got := redactURL("postgres://u:secret@h/db"); strings.Contains(got, "secret") {
		t.Fatalf("password leaked: %s", got)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestREADMEListsEveryOption keeps the README's configuration table honest.
func TestREADMEListsEveryOption(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var cfg Config
	for _, o := range cfg.options() {
		row := "| `" + o.key + "` | `--" + flagName(o.key) + "` | `" + envName(o.key) + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README configuration table lacks the row for %s: %s", o.key, row)
		}
	}
}
