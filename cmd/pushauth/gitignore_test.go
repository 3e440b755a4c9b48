package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSecretFilesAreIgnored checks that git ignores the files holding
// secrets that following the README leaves in a clone: the device state
// files (the default one, every --state FILE the README and docs name, and
// their temporary files) and the server's data directory.
func TestSecretFilesAreIgnored(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	root, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skip("not in a git work tree")
	}
	paths := []string{
		defaultStateFile,
		"." + defaultStateFile + ".123456.tmp",
		"data/pushauth.db",
		"data/admin-token",
		"data/secret-key",
		"data/nats/jetstream/x",
	}
	docs, _ := filepath.Glob("../../docs/*.md")
	stateFlag := regexp.MustCompile(`--state[ =]([A-Za-z0-9._-]+\.json)`)
	for _, doc := range append([]string{"../../README.md"}, docs...) {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range stateFlag.FindAllStringSubmatch(string(b), -1) {
			paths = append(paths, m[1], "."+m[1]+".123456.tmp")
		}
	}
	for _, p := range paths {
		cmd := exec.Command("git", "check-ignore", "--no-index", "-q", p)
		cmd.Dir = strings.TrimSpace(string(root))
		if err := cmd.Run(); err != nil {
			t.Errorf("git does not ignore %s (it holds secrets): add it to .gitignore", p)
		}
	}
}
