package main

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/pushauth/pushauth/internal/server/servertest"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// realCLI runs the command line against the real server ts, with --addr
// after the arguments and nothing of the process environment. No output may
// ever show a device credential.
func realCLI(t *testing.T, ts *servertest.TestServer, stdin string, args ...string) result {
	t.Helper()
	r := cli(t, nil, strings.NewReader(stdin), append(args, "--addr", ts.Addr)...)
	if strings.Contains(r.stdout+r.stderr, "pdc_") {
		t.Errorf("pushauth %s shows a device credential:\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.stdout, r.stderr)
	}
	return r
}

// realAdmin runs "pushauth admin args..." against ts with its admin token.
func realAdmin(t *testing.T, ts *servertest.TestServer, args ...string) result {
	t.Helper()
	return realCLI(t, ts, "", append(append([]string{"admin"}, args...), "--token", ts.AdminToken)...)
}

// mustRealAdmin is realAdmin that fails the test unless the command succeeds.
func mustRealAdmin(t *testing.T, ts *servertest.TestServer, args ...string) string {
	t.Helper()
	r := realAdmin(t, ts, args...)
	if r.code != 0 {
		t.Fatalf("pushauth admin %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// tableRows returns the rows of a table without its header, split in cells
// on runs of two or more spaces.
func tableRows(t *testing.T, out string, header string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !strings.HasPrefix(lines[0], header) {
		t.Fatalf("table does not start with %q:\n%s", header, out)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		var cells []string
		for _, c := range strings.Split(l, "  ") {
			if c = strings.TrimSpace(c); c != "" {
				cells = append(cells, c)
			}
		}
		rows = append(rows, cells)
	}
	return rows
}

// TestAdminEndToEnd is the acceptance flow of the admin commands against the
// real server: a relying party, its API key, and the audit log of both.
func TestAdminEndToEnd(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		created := servertest.Epoch.Format("2006-01-02T15:04:05Z")

		// admin rp create
		out := mustRealAdmin(t, ts, "rp", "create", "--name", "portal", "--display-name", "Mijn Portal",
			"--number-matching", "code", "--approval-ttl", "90s", "--allow-location-automation")
		rows := tableRows(t, out, "ID  ")
		if len(rows) != 1 {
			t.Fatalf("rp create:\n%s", out)
		}
		rp := rows[0]
		if want := []string{"portal", "Mijn Portal", "code", "1m30s", "yes", "no", created}; !strings.HasPrefix(rp[0], "rp_") ||
			strings.Join(rp[1:], "|") != strings.Join(want, "|") {
			t.Errorf("rp create row %q, want rp_… %q", rp, want)
		}
		rpID := rp[0]
		// The server orders objects of the same time by id, which is
		// random within a millisecond: let time pass between them.
		ts.Clock.Advance(time.Minute)
		mustRealAdmin(t, ts, "rp", "create", "--name", "shop", "--display-name", "Shop")
		ts.Clock.Advance(time.Minute)

		// A taken name is the server's AlreadyExists.
		r := realAdmin(t, ts, "rp", "create", "--name", "portal", "--display-name", "Again")
		if r.code != 1 || !strings.HasPrefix(r.stderr, "pushauth: AlreadyExists: ") || r.stdout != "" {
			t.Errorf("duplicate rp: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
		}

		// admin rp list
		out = mustRealAdmin(t, ts, "rp", "list")
		rows = tableRows(t, out, "ID  ")
		if len(rows) != 2 || rows[0][0] != rpID || rows[0][1] != "portal" || rows[1][1] != "shop" {
			t.Errorf("rp list:\n%s", out)
		}
		var list pushauthv1.ListRelyingPartiesResponse
		if err := protojson.Unmarshal([]byte(mustRealAdmin(t, ts, "rp", "list", "--json")), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.GetRelyingParties()) != 2 || list.GetRelyingParties()[0].GetPolicy().GetNumberMatching() != pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE {
			t.Errorf("rp list --json: %v", &list)
		}

		// admin key create: the secret is shown once and works.
		out = mustRealAdmin(t, ts, "key", "create", "portal", "--description", "login host")
		if !strings.Contains(out, "WARNING: this is the only time the secret is shown") {
			t.Errorf("key create:\n%s", out)
		}
		keyRow := tableRows(t, strings.SplitN(out, "\n\n", 2)[0], "ID  ")[0]
		keyID, prefix := keyRow[0], keyRow[1]
		if keyRow[2] != rpID || keyRow[3] != "login host" {
			t.Errorf("key create row %q", keyRow)
		}
		var secret string
		for _, l := range strings.Split(out, "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, prefix) && l != strings.Join(keyRow, " ") && !strings.Contains(l, " ") {
				secret = l
			}
		}
		if secret == "" {
			t.Fatalf("no secret starting with %q in:\n%s", prefix, out)
		}
		who, err := ts.RP.WhoAmI(ts.WithToken(servertest.Context(t), secret), &pushauthv1.WhoAmIRequest{})
		if err != nil {
			t.Fatalf("the printed secret does not work: %v", err)
		}
		if who.GetRelyingParty().GetId() != rpID {
			t.Errorf("WhoAmI with the printed secret: %v", who)
		}

		// admin key list: by prefix, never the secret.
		out = mustRealAdmin(t, ts, "key", "list", "portal")
		rows = tableRows(t, out, "ID  ")
		if len(rows) != 1 || rows[0][0] != keyID || rows[0][1] != prefix || strings.Contains(out, secret) {
			t.Errorf("key list:\n%s", out)
		}

		// admin audit: newest first, both actions by the admin.
		out = mustRealAdmin(t, ts, "audit")
		rows = tableRows(t, out, "TIME  ")
		var actions []string
		for _, row := range rows {
			if row[1] != "admin" {
				t.Errorf("audit actor %q, want admin: %q", row[1], row)
			}
			actions = append(actions, row[2])
		}
		if want := "api_key.created relying_party.created relying_party.created"; strings.Join(actions, " ") != want {
			t.Errorf("audit actions %q, want %q\n%s", actions, want, out)
		}
		if strings.Contains(out, secret) {
			t.Errorf("audit shows the key secret:\n%s", out)
		}
		var events pushauthv1.ListAuditEventsResponse
		if err := protojson.Unmarshal([]byte(mustRealAdmin(t, ts, "audit", "--rp", "portal", "--json")), &events); err != nil {
			t.Fatal(err)
		}
		if n := len(events.GetEvents()); n != 2 || events.GetEvents()[0].GetTarget() != keyID || events.GetEvents()[1].GetTarget() != rpID {
			t.Errorf("audit --rp portal --json: %v", &events)
		}

		// The real server's refusal of a wrong token.
		r = realCLI(t, ts, "", "admin", "rp", "list", "--token", "adm_wrong")
		if r.code != 1 || !strings.HasPrefix(r.stderr, "pushauth: Unauthenticated: ") || !strings.Contains(r.stderr, "hint: check the admin token") {
			t.Errorf("wrong token: exit %d\nstderr: %s", r.code, r.stderr)
		}
	})
}
