package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// runCLI runs pushauthd with args and the environment vars, to its end.
func runCLI(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	getenv, environ := env(vars)
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, getenv, environ, &out, &errOut, nil)
	return code, out.String(), errOut.String()
}

// TestHelp: --help, -h and "help" print the usage on stdout and exit 0;
// every flag shows the type of its value and its default.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"--log-level", "debug", "--help"}} {
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != 0 || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
		for _, want := range []string{
			"usage: pushauthd [flags]", "pushauthd migrate up|down|version", "pushauthd version | --version",
			"  --config file\n",
			"  --grpc-addr string\n        gRPC listen address (env PUSHAUTH_GRPC_ADDR; default 127.0.0.1:8470)\n",
			"  --shutdown-timeout duration\n", "(env PUSHAUTH_SHUTDOWN_TIMEOUT; default 15s)",
			"  --allowed-regions list\n", "default NL,BE,LU,DE,FR,GB,IE)",
			"  --max-connections int\n", "  --retention-requests duration\n", "default 720h)",
			"  --fraud-mute duration\n", "default 1h)", "  --keepalive-time duration\n", "default 2m)",
		} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%q: usage lacks %q:\n%s", args, want, stdout)
			}
		}
	}
}

// TestVersion: --version and "version" print the build: the module and its
// version, the commit (or why it is unknown) and the Go version.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != 0 || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
		for _, want := range []string{"pushauthd ", "\nmodule:  github.com/pushauth/pushauth", "\ncommit:  ", "\ngo:      " + runtime.Version()} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%q: output lacks %q:\n%s", args, want, stdout)
			}
		}
	}
}

// TestBadFlagIsOneLine: a mistyped flag is one line and a hint, not the
// usage.
func TestBadFlagIsOneLine(t *testing.T) {
	code, stdout, stderr := runCLI(t, nil, "--grpc-adr", "127.0.0.1:9")
	want := "pushauthd: config: --grpc-adr: no such flag\npushauthd: run \"pushauthd --help\" for every setting\n"
	if code != 2 || stderr != want || stdout != "" {
		t.Errorf("exit %d\nstderr: %q\nwant:   %q\nstdout: %q", code, stderr, want, stdout)
	}
}

// TestFlagYAMLAndEnvironmentProblemsTogether: a bad flag does not hide the
// problems of the file and the environment, nor they each other.
func TestFlagYAMLAndEnvironmentProblemsTogether(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pushauthd.yaml")
	writeFile(t, file, "grpc_adr: 127.0.0.1:1\nsweep_interval: often\n")
	code, _, stderr := runCLI(t, map[string]string{"PUSHAUTH_CONFIG": file, "PUSHAUTH_COLOUR": "blue", "PUSHAUTH_MAX_CONNECTIONS": "many"},
		"--colour", "red", "--health-interval", "soon", "--log-format", "xml", "stray", "--ops-addr")
	if code != 2 {
		t.Fatalf("exit %d:\n%s", code, stderr)
	}
	for _, want := range []string{
		"pushauthd: config: --colour: no such flag\n",
		"pushauthd: config: --health-interval: not a duration like 15s or 2m: \"soon\"\n",
		"pushauthd: config: unexpected argument \"stray\"\n",
		"pushauthd: config: --ops-addr needs a value (string)\n",
		"unknown key \"grpc_adr\"",
		"sweep_interval: not a duration",
		"pushauthd: config: environment: unknown variable PUSHAUTH_COLOUR\n",
		"pushauthd: config: environment PUSHAUTH_MAX_CONNECTIONS: not a whole number",
		"pushauthd: config: log_format: must be json or text",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "usage:") || strings.Count(stderr, "--help") != 1 {
		t.Errorf("want the problems and one hint, not the usage:\n%s", stderr)
	}
}

// TestTakenPortTouchesNothing: a second server on a taken port fails before
// it creates its data directory, generates secrets or opens the database
// and NATS.
func TestTakenPortTouchesNothing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tt := range []struct{ name, flag string }{{"grpc", "grpc_addr"}, {"ops", "ops_addr"}} {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			args := []string{"--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0", "--ops-addr", "127.0.0.1:0"}
			args = append(args, "--"+flagName(tt.flag), taken.Addr().String())
			code, _, stderr := runCLI(t, nil, args...)
			if code != 1 || !strings.Contains(stderr, "pushauthd: "+tt.flag+": listen tcp "+taken.Addr().String()) {
				t.Fatalf("exit %d:\n%s", code, stderr)
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Errorf("the data directory was made (%v)", err)
			}
			if strings.Contains(stderr, "generated") || strings.Contains(stderr, "migrat") {
				t.Errorf("it did things before failing:\n%s", stderr)
			}
		})
	}
}
