package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testKey(b byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
}

// TestSecretKeyRequiredWhenShared: replicas must not each generate their
// own master key, so a deployment that can have several replicas refuses to
// start without secret_key; the embedded single-node default may generate.
func TestSecretKeyRequiredWhenShared(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // "" means valid
	}{
		{"embedded defaults", nil, ""},
		{"explicit sqlite, embedded nats", []string{"--database-url", "sqlite:/tmp/x.db"}, ""},
		{"postgres", []string{"--database-url", "postgres://u@db/pushauth"},
			"secret_key: must be set because database_url is PostgreSQL, so that every replica uses the same key: make one with openssl rand -base64 32"},
		{"postgresql scheme", []string{"--database-url", "postgresql://u@db/pushauth"}, "because database_url is PostgreSQL,"},
		{"external nats", []string{"--nats-url", "nats://nats:4222"}, "secret_key: must be set because nats_url names an external NATS,"},
		{"both", []string{"--database-url", "postgres://u@db/pushauth", "--nats-url", "nats://nats:4222"},
			"because database_url is PostgreSQL and nats_url names an external NATS,"},
		{"postgres with key", []string{"--database-url", "postgres://u@db/pushauth", "--secret-key", testKey(1)}, ""},
		{"external nats with keys", []string{"--nats-url", "nats://nats:4222", "--secret-key", "k2:" + testKey(2) + ",k1:" + testKey(1)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv, environ := env(nil)
			_, err := LoadConfig(tt.args, getenv, environ, io.Discard)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want valid, got:\n%v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want %q, got:\n%v", tt.want, err)
			}
			if n := strings.Count(err.Error(), "secret_key:"); n != 1 {
				t.Errorf("want one secret_key line, got %d:\n%v", n, err)
			}
		})
	}
}

// TestSecretKeyRefusalAmongOtherProblems: the refusal is one line of the
// config report, next to the other problems, and pushauthd exits 2.
func TestSecretKeyRefusalAmongOtherProblems(t *testing.T) {
	getenv, environ := env(map[string]string{"PUSHAUTH_DATABASE_URL": "postgres://u:hunter2@db/pushauth"})
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"--log-format", "xml"}, getenv, environ, io.Discard, &stderr, nil)
	if code != 2 {
		t.Fatalf("exit %d, want 2:\n%s", code, stderr.String())
	}
	for _, want := range []string{"pushauthd: config: log_format:", "pushauthd: config: secret_key: must be set because database_url is PostgreSQL"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "hunter2") {
		t.Error("password leaked")
	}
}

// TestSecretKeyParsing: several keys parse; every malformed entry is
// reported on its own line, without key material.
func TestSecretKeyParsing(t *testing.T) {
	getenv, environ := env(nil)
	if _, err := LoadConfig([]string{"--secret-key", " k2:" + testKey(2) + ", k1:" + testKey(1)}, getenv, environ, io.Discard); err != nil {
		t.Fatalf("two keys: %v", err)
	}
	if _, err := LoadConfig([]string{"--secret-key", testKey(1)}, getenv, environ, io.Discard); err != nil {
		t.Fatalf("one bare key: %v", err)
	}
	short := base64.StdEncoding.EncodeToString([]byte("only sixteen b.."))
	bad := strings.Join([]string{"k 1:" + testKey(1), "k2:%%%", "k3:" + short, "k4:" + testKey(4), "k4:" + testKey(5)}, ",")
	_, err := LoadConfig([]string{"--secret-key", bad, "--log-level", "loud"}, getenv, environ, io.Discard)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		"secret_key: key 1: the id before ':' must be",
		"secret_key: key 2 (k2): not base64",
		"secret_key: key 3 (k3): must decode to 32 bytes, got 16",
		`secret_key: key 5: id "k4" is used twice`,
		"log_level:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "secret_key:"); n != 4 {
		t.Errorf("want 4 secret_key lines, got %d:\n%v", n, err)
	}
	for _, k := range []string{testKey(1), short, testKey(4)} {
		if strings.Contains(err.Error(), k) {
			t.Error("key material in the config report")
		}
	}
}

// TestLoadKeys: configured keys rotate; the embedded default keeps its
// generated key across restarts; a generated key missing from secret_key
// is warned about.
func TestLoadKeys(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	dir := t.TempDir()

	gen, err := loadKeys(Config{DataDir: dir}, log)
	if err != nil {
		t.Fatal(err)
	}
	sealed := gen.Seal("p", []byte("row"), []byte("x"))
	again, err := loadKeys(Config{DataDir: dir}, log)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Open("p", []byte("row"), sealed); err != nil || string(got) != "x" {
		t.Fatalf("generated key after restart: %q, %v", got, err)
	}
	generated, err := os.ReadFile(filepath.Join(dir, "secret-key"))
	if err != nil {
		t.Fatal(err)
	}

	// Moving to a shared setup: the generated key listed as an older key.
	logs.Reset()
	rotated, err := loadKeys(Config{DataDir: dir, SecretKey: "k1:" + testKey(1) + ",k0:" + strings.TrimSpace(string(generated))}, log)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Open("p", []byte("row"), sealed); err != nil || string(got) != "x" {
		t.Fatalf("after rotation: %q, %v", got, err)
	}
	if strings.Contains(logs.String(), "secret_key lacks") {
		t.Errorf("warned although the generated key is listed:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "sealing_key_id=k1") {
		t.Errorf("key ids not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), testKey(1)) || strings.Contains(logs.String(), strings.TrimSpace(string(generated))) {
		t.Error("key material logged")
	}

	logs.Reset()
	if _, err := loadKeys(Config{DataDir: dir, SecretKey: testKey(1)}, log); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "data_dir/secret-key holds a key that secret_key lacks") {
		t.Errorf("no warning about the generated key:\n%s", logs.String())
	}
}
