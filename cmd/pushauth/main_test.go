package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

func TestHelp(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		stdout   []string // substrings of stdout
		stderr   []string // substrings of stderr
		noStdout bool
	}{
		{args: []string{"help"}, stdout: []string{"Commands:", "admin rp create", "admin key revoke KEY", "admin audit"}},
		{args: []string{"-h"}, stdout: []string{"Commands:", "admin rp set-policy RP"}},
		{args: []string{"--help"}, stdout: []string{"Commands:"}},
		{args: []string{"help", "admin", "rp", "create"}, stdout: []string{"Usage: pushauth admin rp create --name NAME", "--display-name text", "--number-matching none|number|code", "Connection and output flags:", "--token-file file"}},
		{args: []string{"admin", "audit", "-h"}, stdout: []string{"Usage: pushauth admin audit", "--since TIME", "--addr host:port"}},
		{args: []string{"help", "admin", "key"}, stdout: []string{"Usage: pushauth admin key <command>", "create RP", "revoke KEY"}},
		{args: []string{"admin", "rp", "--help"}, stdout: []string{"Usage: pushauth admin rp <command>", "set-policy RP"}},
		{args: []string{"help"}, stdout: []string{"admin outbox", "device register", "device show", "device update", "device deregister", "pushauth device <command>", "PUSHAUTH_DEVICE_STATE"}},
		{args: []string{"help", "device"}, stdout: []string{"Usage: pushauth device <command>", "register", "deregister"}},
		{args: []string{"device", "register", "-h"}, stdout: []string{"Usage: pushauth device register --phone NUMBER", "--code code", "--link link", "--platform android|ios", "--state file", "--force", "--addr host:port"}},
		{args: []string{"help", "admin", "outbox"}, stdout: []string{"Usage: pushauth admin outbox", "--phone number", "--limit N"}},
		{args: []string{"device"}, code: 2, stderr: []string{`"device" needs a subcommand`, "Usage: pushauth device <command>"}, noStdout: true},
		{args: nil, code: 2, stderr: []string{"Commands:"}, noStdout: true},
		{args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`, "Commands:"}, noStdout: true},
		{args: []string{"admin"}, code: 2, stderr: []string{`"admin" needs a subcommand`, "Usage: pushauth admin <command>"}, noStdout: true},
		{args: []string{"admin", "rp", "delete"}, code: 2, stderr: []string{`unknown command "admin rp delete"`, "Usage: pushauth admin rp <command>"}, noStdout: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// The real run, with the real environment: help needs none.
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if tt.noStdout && stdout.Len() > 0 {
				t.Errorf("unexpected stdout:\n%s", stdout.String())
			}
		})
	}
}

// TestUsageErrors checks that bad command lines exit 2 with the command's
// usage, without calling the server.
func TestUsageErrors(t *testing.T) {
	s := startServer(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"rp", "list", "--frob"}, "flag provided but not defined: -frob"},
		{"missing rp", []string{"rp", "get"}, "missing argument RP"},
		{"extra arg", []string{"rp", "get", "a", "b"}, `unexpected argument "b"`},
		{"bool flag with space", []string{"rp", "set-policy", "portal", "--allow-backup-restore", "false"}, "--flag=false"},
		{"no policy flags", []string{"rp", "set-policy", "portal"}, "nothing to change"},
		{"create without name", []string{"rp", "create", "--display-name", "P"}, "--name is required"},
		{"create without display name", []string{"rp", "create", "--name", "p"}, "--display-name is required"},
		{"bad matching", []string{"rp", "create", "--name", "p", "--display-name", "P", "--number-matching", "emoji"}, "want none, number or code"},
		{"negative ttl", []string{"rp", "set-policy", "p", "--approval-ttl", "-1s"}, "--approval-ttl must not be negative"},
		{"bad duration", []string{"rp", "set-policy", "p", "--approval-ttl", "soon"}, `invalid value "soon" for flag -approval-ttl`},
		{"page size", []string{"rp", "list", "--page-size", "501"}, "--page-size must be between 0 and 500"},
		{"key without rp", []string{"key", "create"}, "missing argument RP"},
		{"revoke without key", []string{"key", "revoke"}, "missing argument KEY"},
		{"audit bad since", []string{"audit", "--since", "yesterday"}, "--since:"},
		{"audit since after until", []string{"audit", "--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z"}, "--since must be before --until"},
		{"audit negative limit", []string{"audit", "--limit", "-1"}, "--limit must not be negative"},
		{"key file without cert", []string{"rp", "list", "--key-file", "k.pem"}, "--key-file needs --cert-file"},
		{"server name without tls", []string{"rp", "list", "--server-name", "x"}, "--server-name needs --tls"},
		{"negative timeout", []string{"rp", "list", "--timeout", "-1s"}, "--timeout must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.admin(t, tt.args...)
			if r.code != 2 {
				t.Fatalf("exit code = %d, want 2\nstderr: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr lacks %q:\n%s", tt.want, r.stderr)
			}
			if !strings.Contains(r.stderr, "Usage: pushauth admin "+tt.args[0]) {
				t.Errorf("stderr lacks the command's usage:\n%s", r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("unexpected stdout:\n%s", r.stdout)
			}
		})
	}
	if n := s.calls(); n != 0 {
		t.Errorf("the server got %d calls, want none", n)
	}
}

func TestServerErrors(t *testing.T) {
	s := startServer(t)
	s.mustAdmin(t, "rp", "create", "--name", "portal", "--display-name", "Portal")
	tests := []struct {
		name string
		args []string
		want string // all of stderr
	}{
		{
			name: "field violation",
			args: []string{"admin", "rp", "create", "--name", "bad", "--display-name", "Bad", "--addr", s.addr, "--token", testToken},
			want: "pushauth: InvalidArgument: invalid relying party\n  name: must not be \"bad\"\n",
		},
		{
			name: "already exists",
			args: []string{"admin", "rp", "create", "--name", "portal", "--display-name", "Again", "--addr", s.addr, "--token", testToken},
			want: "pushauth: AlreadyExists: relying party \"portal\" exists\n",
		},
		{
			name: "not found",
			args: []string{"admin", "key", "revoke", "pak_404", "--addr", s.addr, "--token", testToken},
			want: "pushauth: NotFound: api key \"pak_404\" not found\n",
		},
		{
			name: "wrong token",
			args: []string{"admin", "rp", "get", "portal", "--addr", s.addr, "--token", "nope"},
			want: "pushauth: Unauthenticated: invalid admin token\n" +
				"hint: check the admin token (--token, --token-file, PUSHAUTH_ADMIN_TOKEN, ./data/admin-token)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := cli(t, nil, nil, tt.args...)
			if r.code != 1 {
				t.Errorf("exit code = %d, want 1", r.code)
			}
			if r.stderr != tt.want {
				t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, tt.want)
			}
			if r.stdout != "" {
				t.Errorf("unexpected stdout:\n%s", r.stdout)
			}
		})
	}
}

// TestConnectionFlagsFirst checks that connection flags may come before the
// subcommand, like global flags.
func TestConnectionFlagsFirst(t *testing.T) {
	s := startServer(t)
	s.mustAdmin(t, "rp", "create", "--name", "portal", "--display-name", "Portal")
	r := cli(t, nil, nil, "admin", "--addr", s.addr, "rp", "--token="+testToken, "--json", "get", "portal")
	var resp pushauthv1.GetRelyingPartyResponse
	if r.code != 0 || protojson.Unmarshal([]byte(r.stdout), &resp) != nil || resp.GetRelyingParty().GetName() != "portal" {
		t.Errorf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = cli(t, nil, nil, "admin", "--frob", "rp", "list")
	if r.code != 2 || !strings.Contains(r.stderr, `unknown flag "--frob" before a subcommand of "admin"`) {
		t.Errorf("unknown flag: exit %d, stderr: %s", r.code, r.stderr)
	}
}

func TestUnavailableHint(t *testing.T) {
	// Nothing listens on port 1.
	r := cli(t, nil, nil, "admin", "rp", "list", "--addr", "127.0.0.1:1", "--token", testToken)
	if r.code != 1 || !strings.HasPrefix(r.stderr, "pushauth: Unavailable: ") ||
		!strings.Contains(r.stderr, "hint: is the pushauth server running at 127.0.0.1:1?") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

func TestCanceledContext(t *testing.T) {
	s := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := runEnv(ctx, []string{"admin", "rp", "list", "--addr", s.addr, "--token", testToken},
		strings.NewReader(""), &stdout, &stderr, func(string) string { return "" })
	if code != 1 || !strings.HasPrefix(stderr.String(), "pushauth: Canceled: ") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr.String())
	}
}

// TestTokenSources checks where the admin token comes from, and in which order.
func TestTokenSources(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(good, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(dir, "wrong-token")
	if err := os.WriteFile(wrong, []byte("wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		stdin   string
		args    []string
		code    int
		wantErr string // substring of stderr
	}{
		{name: "flag", args: []string{"--token", testToken}},
		{name: "token file flag", args: []string{"--token-file", good}},
		{name: "token file stdin", args: []string{"--token-file", "-"}, stdin: testToken + "\n"},
		{name: "env token", env: map[string]string{envToken: testToken}},
		{name: "env token file", env: map[string]string{envTokenFile: good}},
		{name: "flag beats env", env: map[string]string{envToken: "wrong"}, args: []string{"--token-file", good}},
		{name: "env token beats env file", env: map[string]string{envToken: testToken, envTokenFile: wrong}},
		{name: "env addr", env: map[string]string{envAddr: s.addr, envToken: testToken}, args: []string{}},
		{name: "both flags", args: []string{"--token", testToken, "--token-file", good}, code: 2, wantErr: "use either --token or --token-file"},
		{name: "missing file", args: []string{"--token-file", filepath.Join(dir, "nope")}, code: 1, wantErr: "pushauth: cannot read the admin token: open "},
		{name: "empty file", args: []string{"--token-file", empty}, code: 1, wantErr: "pushauth: the admin token from " + empty + " is empty"},
		{name: "wrong token file", args: []string{"--token-file", wrong}, code: 1, wantErr: "pushauth: Unauthenticated: invalid admin token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"admin", "rp", "list"}
			if tt.env[envAddr] == "" {
				args = append(args, "--addr", s.addr)
			}
			args = append(args, tt.args...)
			r := cli(t, tt.env, strings.NewReader(tt.stdin), args...)
			if r.code != tt.code {
				t.Fatalf("exit code = %d, want %d\nstderr: %s", r.code, tt.code, r.stderr)
			}
			if tt.code == 0 {
				if got := s.lastAuth(); got != "Bearer "+testToken {
					t.Errorf("authorization = %q", got)
				}
				if !strings.HasPrefix(r.stdout, "ID ") {
					t.Errorf("stdout:\n%s", r.stdout)
				}
			}
			if !strings.Contains(r.stderr, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, r.stderr)
			}
		})
	}
}

// TestDefaultTokenFile checks that ./data/admin-token, where the server
// writes its generated token, is used when no token is given.
func TestDefaultTokenFile(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	t.Chdir(dir)
	args := []string{"admin", "rp", "list", "--addr", s.addr}

	r := cli(t, nil, nil, args...)
	if r.code != 1 {
		t.Fatalf("without a token: exit %d, want 1; stderr:\n%s", r.code, r.stderr)
	}
	want := "pushauth: no admin token: pass --token-file FILE (or --token), set PUSHAUTH_ADMIN_TOKEN_FILE or PUSHAUTH_ADMIN_TOKEN, " +
		"or run this in the server's working directory so ./data/admin-token is found\n"
	if r.stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, want)
	}
	if n := s.calls(); n != 0 {
		t.Errorf("the server got %d calls without a token, want none", n)
	}

	if err := os.Mkdir("data", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("data", "admin-token"), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = cli(t, nil, nil, args...)
	if r.code != 0 {
		t.Fatalf("with ./data/admin-token: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	if got := s.lastAuth(); got != "Bearer "+testToken {
		t.Errorf("authorization = %q", got)
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		wantPos []string
		wantX   bool
		wantN   string
	}{
		{[]string{"a", "-x", "b"}, []string{"a", "b"}, true, ""},
		{[]string{"-n", "v", "a"}, []string{"a"}, false, "v"},
		{[]string{"a", "--", "-x"}, []string{"a", "-x"}, false, ""},
		{[]string{}, []string{}, false, ""},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		x := fs.Bool("x", false, "")
		n := fs.String("n", "", "")
		pos, err := parseInterspersed(fs, tt.args)
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		if strings.Join(pos, "|") != strings.Join(tt.wantPos, "|") || *x != tt.wantX || *n != tt.wantN {
			t.Errorf("%q: pos %q x %v n %q", tt.args, pos, *x, *n)
		}
	}
}
