// Command pushauthd is the pushauth server. With no configuration it runs a
// self-contained development server: SQLite and an embedded NATS server under
// ./data, gRPC on 127.0.0.1:8470 and ops HTTP on 127.0.0.1:8471.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pushauth/pushauth/internal/requestid"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Environ(), os.Stdout, os.Stderr, nil))
}

// run is main without the process: tests call it with their own args,
// environment and output, and learn the listening addresses through started.
func run(ctx context.Context, args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer, started func(grpcAddr, opsAddr string)) int {
	if len(args) > 0 {
		switch args[0] {
		case "migrate":
			return runMigrate(ctx, args[1:], getenv, environ, stdout, stderr)
		case "reseal":
			return runReseal(ctx, args[1:], getenv, environ, stdout, stderr)
		case "help":
			printUsage(stdout)
			return 0
		case "version":
			printVersion(stdout)
			return 0
		}
	}
	cfg, log, code := configure(args, getenv, environ, stdout, stderr)
	if code >= 0 {
		return code
	}
	if err := serve(ctx, cfg, log, started); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "pushauthd: %s\n", line)
		}
		return 1
	}
	return 0
}

// configure is loadOrReport plus the logger the configuration asks for;
// code is as for loadOrReport (2 also for a bad log setting).
func configure(args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) (Config, *slog.Logger, int) {
	cfg, code := loadOrReport(args, getenv, environ, stdout, stderr)
	if code >= 0 {
		return cfg, nil, code
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pushauthd: %v\n", err)
		return cfg, nil, 2
	}
	return cfg, log, -1
}

// loadOrReport loads the configuration. On a problem it prints one line per
// problem and a hint to --help, and returns the exit code 2; on --help or
// --version it prints them to stdout and returns 0; else the code is -1.
func loadOrReport(args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) (Config, int) {
	cfg, err := LoadConfig(args, getenv, environ, stdout)
	switch {
	case errors.Is(err, errHelp):
		return cfg, 0
	case errors.Is(err, errVersion):
		printVersion(stdout)
		return cfg, 0
	case err != nil:
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "pushauthd: config: %s\n", line)
		}
		fmt.Fprintln(stderr, "pushauthd: run \"pushauthd --help\" for every setting")
		return cfg, 2
	}
	return cfg, -1
}

func newLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("log_level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	// Lines logged while serving an RPC carry its request_id.
	if cfg.LogFormat == "text" {
		return slog.New(requestid.Handler(slog.NewTextHandler(w, opts))), nil
	}
	return slog.New(requestid.Handler(slog.NewJSONHandler(w, opts))), nil
}

// dataSecret returns configured, or the secret kept in the data directory
// under name, generating it on first start. Secrets are never logged.
func dataSecret(configured string, dataDir, name string, log *slog.Logger) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(dataDir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		if tok := strings.TrimSpace(string(b)); len(tok) >= 24 {
			return tok, nil
		}
		return "", fmt.Errorf("%s is too short; delete it to have a new one made", path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	log.Info("generated a secret; it is kept in this file", "path", path)
	return tok, nil
}

// isLoopback reports whether a listen address only accepts local clients.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
