package main

import (
	"bytes"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/pushauth/pushauth/client"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// --setup makes the relying party (number matching on) and a working API
// key once; a second run keeps the key.
func TestSetup(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, dbURL string) {
		ts := servertest.New(t, dbURL)
		dir := t.TempDir()
		tokenFile, keyFile := filepath.Join(dir, "admin-token"), filepath.Join(dir, "data", "portal-api-key")
		if err := os.WriteFile(tokenFile, []byte(ts.AdminToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := parseFlags([]string{"--setup", "--admin-token-file", tokenFile, "--api-key-file", keyFile, "--rp-name", "demo-portal"}, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		if err := setup(servertest.Context(t), cfg, ts.Addr, nil, &log); err != nil {
			t.Fatal(err)
		}
		key, err := os.ReadFile(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("key file mode %v", fi.Mode().Perm())
		}
		c, err := client.Dial(client.Config{Addrs: []string{ts.Addr}, APIKey: strings.TrimSpace(string(key))})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rp, err := c.WhoAmI(servertest.Context(t))
		if err != nil || rp.GetName() != "demo-portal" || rp.GetDisplayName() != "Mijn Portal" ||
			rp.GetPolicy().GetNumberMatching() != pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER {
			t.Fatalf("relying party: %v %v", rp, err)
		}
		if err := setup(servertest.Context(t), cfg, ts.Addr, nil, &log); err != nil {
			t.Fatal(err)
		}
		if again, _ := os.ReadFile(keyFile); !bytes.Equal(again, key) {
			t.Error("a second --setup replaced the key")
		}
		if strings.Contains(log.String(), strings.TrimSpace(string(key))) {
			t.Error("setup printed the API key")
		}
	})
}

func TestUsers(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("geheim"), bcrypt.MinCost)
	path := filepath.Join(t.TempDir(), "users.yaml")
	doc := "users:\n  - username: Jan\n    name: Jan de Vries\n    email: jan@example.nl\n    password_hash: '" + string(hash) + "'\n"
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	us, err := loadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if u, ok := us.check("jan", "geheim"); !ok || u.label() != "jan@example.nl" {
		t.Fatalf("check: %v %v", u, ok)
	}
	for _, c := range [][2]string{{"jan", "wrong"}, {"nobody", "geheim"}, {"", ""}} {
		if _, ok := us.check(c[0], c[1]); ok {
			t.Errorf("check(%q, %q) passed", c[0], c[1])
		}
	}
	if err := us.addFlag("piet:pw"); err != nil {
		t.Fatal(err)
	}
	if _, ok := us.check("piet", "pw"); !ok {
		t.Error("--user piet:pw does not sign in")
	}
	for _, bad := range []string{"users:\n  - username: x\n    password_hash: plain\n", "users:\n  - username: x\n    pasword_hash: x\n"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadUsers(path); err == nil {
			t.Errorf("loadUsers accepted %q", bad)
		}
	}
}

func TestHashPassword(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"hash-password"}, strings.NewReader("geheim\n"), &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword(bytes.TrimSpace(out.Bytes()), []byte("geheim")); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
}

func TestFlags(t *testing.T) {
	for _, bad := range [][]string{{"--tls-cert", "c.pem"}, {"extra"}, {"--nope"}} {
		if _, err := parseFlags(bad, &bytes.Buffer{}); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
	if err := run(t.Context(), []string{"--api-key-file", "/nonexistent"}, nil, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no users") {
		t.Errorf("run without users: %v", err)
	}
}

// The commands docs/portal.md gives parse, and the portal imports no
// internal package: it is built on package client, as an integrator's would.
func TestDocAndImports(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "portal.md"))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, line := range strings.Split(string(doc), "\n") {
		args, ok := strings.CutPrefix(line, "go run ./cmd/pushauth-portal ")
		if !ok {
			continue
		}
		found++
		if _, err := parseFlags(strings.Fields(args), &bytes.Buffer{}); err != nil {
			t.Errorf("docs/portal.md: %q: %v", line, err)
		}
	}
	if found == 0 {
		t.Error("docs/portal.md shows no command starting the portal")
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), e.Name(), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if strings.Contains(imp.Path.Value, "/pushauth/internal/") {
				t.Errorf("%s imports %s", e.Name(), imp.Path.Value)
			}
		}
	}
}
