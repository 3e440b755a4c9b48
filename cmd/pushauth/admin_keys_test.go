package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

func TestKeys(t *testing.T) {
	s := startServer(t)
	s.mustAdmin(t, "rp", "create", "--name", "portal", "--display-name", "Portal")

	out := s.mustAdmin(t, "key", "create", "portal", "--description", "web server")
	wantTable := "" +
		"ID     PREFIX  RELYING PARTY  DESCRIPTION  CREATED               LAST USED  REVOKED\n" +
		"key_2  pak_2   rp_1           web server   2026-01-02T04:04:05Z  -          -\n"
	if !strings.HasPrefix(out, wantTable) {
		t.Errorf("create:\n%s\nwant it to start with:\n%s", out, wantTable)
	}
	if n := strings.Count(out, "pak_2_s3cr3t"); n != 1 {
		t.Errorf("the secret shows %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "\n    pak_2_s3cr3t\n") || !strings.Contains(out, "WARNING: this is the only time the secret is shown") {
		t.Errorf("the secret is not shown prominently with a warning:\n%s", out)
	}

	r := s.admin(t, "key", "create", "rp_1", "--json")
	var created pushauthv1.CreateApiKeyResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &created); err != nil || r.code != 0 {
		t.Fatalf("create --json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if created.GetSecret() != "pak_3_s3cr3t" || created.GetApiKey().GetId() != "key_3" {
		t.Errorf("create --json: %v", &created)
	}
	if strings.Contains(r.stdout, "WARNING") {
		t.Errorf("--json prints more than the response:\n%s", r.stdout)
	}

	revoked := "key_2  pak_2   rp_1           web server   2026-01-02T04:04:05Z  -          2026-01-02T06:04:05Z\n"
	out = s.mustAdmin(t, "key", "revoke", "pak_2")
	if !strings.HasSuffix(out, revoked) {
		t.Errorf("revoke by prefix:\n%s\nwant the row:\n%s", out, revoked)
	}
	if out := s.mustAdmin(t, "key", "revoke", "key_2"); !strings.HasSuffix(out, revoked) {
		t.Errorf("revoke again by id:\n%s", out)
	}

	tests := []struct {
		args []string
		ids  []string
	}{
		{[]string{"key", "list", "portal"}, []string{"key_3"}},
		{[]string{"key", "list", "portal", "--include-revoked"}, []string{"key_2", "key_3"}},
	}
	for _, tt := range tests {
		out := s.mustAdmin(t, tt.args...)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if !strings.HasPrefix(lines[0], "ID ") || len(lines) != len(tt.ids)+1 {
			t.Errorf("%v:\n%s", tt.args, out)
			continue
		}
		for i, id := range tt.ids {
			if !strings.HasPrefix(lines[i+1], id+" ") {
				t.Errorf("%v: row %d is %q, want key %s", tt.args, i, lines[i+1], id)
			}
		}
	}
	if out := s.mustAdmin(t, "key", "list", "portal", "--include-revoked"); strings.Contains(out, "s3cr3t") {
		t.Errorf("list shows a secret:\n%s", out)
	}
}
