package main

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pushauth/pushauth/internal/server"
	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// TestWebhookCommands runs create, list, rotate-secret, deliveries and
// disable against a real server.
func TestWebhookCommands(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url, func(o *server.Options) { o.Webhooks.AllowHTTP = false })
		ts.CreateRelyingParty(t, "portal", nil)

		out := mustRealAdmin(t, ts, "webhook", "create", "portal", "https://hooks.example.com/pushauth", "--description", "siem")
		if n := strings.Count(out, "whsec_"); n != 1 || !strings.Contains(out, "WARNING: this is the only time the secret is shown") {
			t.Fatalf("create shows the secret %d times, or without a warning:\n%s", n, out)
		}
		r := realAdmin(t, ts, "webhook", "create", "portal", "https://hooks.example.com/2", "--json")
		var created pushauthv1.CreateWebhookResponse
		if err := protojson.Unmarshal([]byte(r.stdout), &created); err != nil || r.code != 0 {
			t.Fatalf("create --json: exit %d, %v\n%s", r.code, err, r.stdout)
		}
		id := created.GetWebhook().GetId()
		if !strings.HasPrefix(created.GetSecret(), "whsec_") || !strings.HasPrefix(id, "whe_") {
			t.Fatalf("create --json: %v", &created)
		}
		if r := realAdmin(t, ts, "webhook", "create", "portal", "http://hooks.example.com/plain"); r.code == 0 || !strings.Contains(r.stderr, "url") {
			t.Errorf("an http:// endpoint: exit %d, %s", r.code, r.stderr)
		}

		out = mustRealAdmin(t, ts, "webhook", "list", "portal")
		if !strings.Contains(out, "https://hooks.example.com/pushauth") || !strings.Contains(out, id) || strings.Contains(out, "whsec_") {
			t.Errorf("list:\n%s", out)
		}
		out = mustRealAdmin(t, ts, "webhook", "rotate-secret", id)
		if !strings.Contains(out, "whsec_") || strings.Contains(out, created.GetSecret()) {
			t.Errorf("rotate-secret:\n%s", out)
		}
		if out := mustRealAdmin(t, ts, "webhook", "deliveries", id); !strings.HasPrefix(out, "ID ") {
			t.Errorf("deliveries:\n%s", out)
		}
		mustRealAdmin(t, ts, "webhook", "disable", id, "--reason", "moved")
		if out := mustRealAdmin(t, ts, "webhook", "list", "portal"); strings.Contains(out, id) {
			t.Errorf("a disabled endpoint is listed:\n%s", out)
		}
		if out := mustRealAdmin(t, ts, "webhook", "list", "--include-disabled"); !strings.Contains(out, "moved") {
			t.Errorf("list --include-disabled lacks the reason:\n%s", out)
		}
	})
}
