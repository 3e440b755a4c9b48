package decision_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOneCopy keeps the signed strings in this package: no other Go file of
// the module spells their version lines, so nothing can build them on its
// own (and drift).
func TestOneCopy(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || path == filepath.Join(root, "decision")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, v := range []string{"pushauth-decision-" + "v1", "pushauth-register-" + "v1"} {
			if strings.Contains(string(b), v) {
				t.Errorf("%s spells %q: use package decision", path, v)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
