package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

func TestRPCreateAndGet(t *testing.T) {
	s := startServer(t)
	want := "" +
		"ID    NAME    DISPLAY NAME  MATCHING  TTL    LOCATION  RESTORE  CREATED\n" +
		"rp_1  portal  Mijn Portal   code      1m30s  yes       no       2026-01-02T03:04:05Z\n"
	got := s.mustAdmin(t, "rp", "create", "--name", "portal", "--display-name", "Mijn Portal",
		"--number-matching", "code", "--approval-ttl", "90s", "--allow-location-automation")
	if got != want {
		t.Errorf("create:\n%s\nwant:\n%s", got, want)
	}
	for _, rp := range []string{"portal", "rp_1"} {
		if got := s.mustAdmin(t, "rp", "get", rp); got != want {
			t.Errorf("get %s:\n%s\nwant:\n%s", rp, got, want)
		}
	}

	// The server's defaults show; the policy sent holds only what was given.
	got = s.mustAdmin(t, "rp", "create", "--name", "shop", "--display-name", "Shop")
	if !strings.Contains(got, "rp_2  shop  Shop          none      2m   no        no       2026-01-02T04:04:05Z\n") {
		t.Errorf("create with defaults:\n%s", got)
	}
}

// TestTableSanitizes checks that text from the server cannot inject
// terminal escapes or break the columns.
func TestTableSanitizes(t *testing.T) {
	s := startServer(t)
	got := s.mustAdmin(t, "rp", "create", "--name", "evil", "--display-name", "Evil\x1b[2J\tPortal")
	if strings.ContainsAny(got, "\x1b") || !strings.Contains(got, `"Evil\x1b[2J\tPortal"`) {
		t.Errorf("output:\n%q", got)
	}
}

func TestRPList(t *testing.T) {
	s := startServer(t)
	for _, n := range []string{"one", "two", "three"} {
		s.mustAdmin(t, "rp", "create", "--name", n, "--display-name", strings.ToUpper(n))
	}
	names := func(out string) []string {
		var ns []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			ns = append(ns, strings.Fields(line)[1])
		}
		return ns
	}

	r := s.admin(t, "rp", "list", "--page-size", "2")
	if r.code != 0 || !slices.Equal(names(r.stdout), []string{"one", "two"}) {
		t.Errorf("one page: exit %d\n%s", r.code, r.stdout)
	}
	if want := "(more results: add --all, or --page-token=2 for the next page)\n"; r.stderr != want {
		t.Errorf("stderr = %q, want %q", r.stderr, want)
	}

	r = s.admin(t, "rp", "list", "--page-token", "2")
	if r.code != 0 || !slices.Equal(names(r.stdout), []string{"three"}) || r.stderr != "" {
		t.Errorf("last page: exit %d\n%s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	s.mu.Lock()
	s.listRPCalls = nil
	s.mu.Unlock()
	r = s.admin(t, "rp", "list", "--all", "--page-size", "1")
	if r.code != 0 || !slices.Equal(names(r.stdout), []string{"one", "two", "three"}) || r.stderr != "" {
		t.Errorf("--all: exit %d\n%s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	var tokens []string
	for _, req := range s.listRPCalls {
		tokens = append(tokens, req.PageToken)
		if req.PageSize != 1 {
			t.Errorf("page_size = %d, want 1", req.PageSize)
		}
	}
	if !slices.Equal(tokens, []string{"", "1", "2"}) {
		t.Errorf("page tokens sent = %q", tokens)
	}
}

// TestSetPolicyUpdateMask checks that only the policy flags given go into
// the update mask.
func TestSetPolicyUpdateMask(t *testing.T) {
	s := startServer(t)
	s.mustAdmin(t, "rp", "create", "--name", "portal", "--display-name", "Portal", "--allow-backup-restore", "--approval-ttl", "3m")
	tests := []struct {
		name   string
		args   []string
		paths  []string
		policy *pushauthv1.RelyingPartyPolicy
		row    string // the changed relying party, as printed
	}{
		{
			name:   "number matching",
			args:   []string{"--number-matching", "number"},
			paths:  []string{"number_matching"},
			policy: &pushauthv1.RelyingPartyPolicy{NumberMatching: pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER},
			row:    "rp_1  portal  Portal        number    3m   no        yes      ",
		},
		{
			name:   "ttl, with output flags that are no policy",
			args:   []string{"--approval-ttl=5m", "--timeout", "5s"},
			paths:  []string{"approval_ttl"},
			policy: &pushauthv1.RelyingPartyPolicy{ApprovalTtl: durationpb.New(5 * time.Minute)},
			row:    "rp_1  portal  Portal        number    5m   no        yes      ",
		},
		{
			name:   "zero ttl resets",
			args:   []string{"--approval-ttl", "0"},
			paths:  []string{"approval_ttl"},
			policy: &pushauthv1.RelyingPartyPolicy{},
			row:    "rp_1  portal  Portal        number    2m   no        yes      ",
		},
		{
			name:   "explicit false",
			args:   []string{"--allow-backup-restore=false"},
			paths:  []string{"allow_backup_restore"},
			policy: &pushauthv1.RelyingPartyPolicy{},
			row:    "rp_1  portal  Portal        number    2m   no        no       ",
		},
		{
			name:   "two",
			args:   []string{"--number-matching=code", "--allow-location-automation"},
			paths:  []string{"allow_location_automation", "number_matching"},
			policy: &pushauthv1.RelyingPartyPolicy{NumberMatching: pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE, AllowLocationAutomation: true},
			row:    "rp_1  portal  Portal        code      2m   yes       no       ",
		},
		{
			name:  "all",
			args:  []string{"--number-matching", "none", "--approval-ttl", "10s", "--allow-location-automation=false", "--allow-backup-restore=true"},
			paths: []string{"allow_backup_restore", "allow_location_automation", "approval_ttl", "number_matching"},
			policy: &pushauthv1.RelyingPartyPolicy{
				NumberMatching: pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NONE,
				ApprovalTtl:    durationpb.New(10 * time.Second), AllowBackupRestore: true,
			},
			row: "rp_1  portal  Portal        none      10s  no        yes      ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := s.mustAdmin(t, append([]string{"rp", "set-policy", "portal"}, tt.args...)...)
			s.mu.Lock()
			req := s.updates[len(s.updates)-1]
			s.mu.Unlock()
			paths := slices.Sorted(slices.Values(req.GetUpdateMask().GetPaths()))
			if !slices.Equal(paths, tt.paths) {
				t.Errorf("update_mask = %q, want %q", paths, tt.paths)
			}
			if !proto.Equal(req.GetPolicy(), tt.policy) {
				t.Errorf("policy = %v, want %v", req.GetPolicy(), tt.policy)
			}
			if req.GetRelyingParty() != "portal" {
				t.Errorf("relying_party = %q", req.GetRelyingParty())
			}
			if !strings.Contains(out, "\n"+tt.row) {
				t.Errorf("output lacks %q:\n%s", tt.row, out)
			}
		})
	}
}

// TestJSONOutput checks that --json prints the response message, which
// parses back with protojson.
func TestJSONOutput(t *testing.T) {
	s := startServer(t)
	s.mustAdmin(t, "rp", "create", "--name", "portal", "--display-name", "Portal", "--number-matching", "number")
	s.mustAdmin(t, "rp", "create", "--name", "shop", "--display-name", "Shop")
	s.mustAdmin(t, "key", "create", "portal", "--description", "web")
	s.addEvents("rp_1", 3, time.Now())

	s.mu.Lock()
	rp1 := proto.Clone(s.rps[0]).(*pushauthv1.RelyingParty)
	rp2 := proto.Clone(s.rps[1]).(*pushauthv1.RelyingParty)
	key := proto.Clone(s.keys[0]).(*pushauthv1.ApiKey)
	events := slices.Clone(s.events)
	s.mu.Unlock()

	tests := []struct {
		args []string
		got  proto.Message // to parse into
		want proto.Message
	}{
		{[]string{"rp", "get", "portal"}, &pushauthv1.GetRelyingPartyResponse{}, &pushauthv1.GetRelyingPartyResponse{RelyingParty: rp1}},
		{[]string{"rp", "list", "--all", "--page-size", "1"}, &pushauthv1.ListRelyingPartiesResponse{},
			&pushauthv1.ListRelyingPartiesResponse{RelyingParties: []*pushauthv1.RelyingParty{rp1, rp2}}},
		{[]string{"rp", "list", "--page-size", "1"}, &pushauthv1.ListRelyingPartiesResponse{},
			&pushauthv1.ListRelyingPartiesResponse{RelyingParties: []*pushauthv1.RelyingParty{rp1}, NextPageToken: "1"}},
		{[]string{"key", "list", "portal"}, &pushauthv1.ListApiKeysResponse{}, &pushauthv1.ListApiKeysResponse{ApiKeys: []*pushauthv1.ApiKey{key}}},
		{[]string{"audit", "--rp", "portal"}, &pushauthv1.ListAuditEventsResponse{}, &pushauthv1.ListAuditEventsResponse{Events: events}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := s.admin(t, append(tt.args, "--json")...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("exit %d, stderr: %s", r.code, r.stderr)
			}
			if err := protojson.Unmarshal([]byte(r.stdout), tt.got); err != nil {
				t.Fatalf("output does not parse: %v\n%s", err, r.stdout)
			}
			if !proto.Equal(tt.got, tt.want) {
				t.Errorf("got %v\nwant %v", tt.got, tt.want)
			}
			if !strings.HasPrefix(r.stdout, "{\n") || !strings.HasSuffix(r.stdout, "}\n") {
				t.Errorf("want indented multi-line JSON:\n%s", r.stdout)
			}
		})
	}

	// Unset fields are left out.
	out := s.mustAdmin(t, "rp", "get", "shop", "--json")
	if strings.Contains(out, "updateTime") || strings.Contains(out, "allowLocationAutomation") {
		t.Errorf("unset fields in JSON:\n%s", out)
	}
}
