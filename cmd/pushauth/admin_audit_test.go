package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// takeAuditCalls returns the ListAuditEvents requests so far and forgets them.
func (f *fakeAdmin) takeAuditCalls() []*pushauthv1.ListAuditEventsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls := f.auditCalls
	f.auditCalls = nil
	return calls
}

func TestAuditTableAndPaging(t *testing.T) {
	s := startServer(t)
	s.mustAdmin(t, "rp", "create", "--name", "portal", "--display-name", "Portal")
	s.mustAdmin(t, "rp", "create", "--name", "shop", "--display-name", "Shop")
	newest := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.addEvents("rp_1", 5, newest)
	s.addEvents("rp_2", 2, newest.Add(-30*time.Second))
	s.mu.Lock()
	s.auditMaxPage = 2 // the server sends at most 2 events a page
	s.mu.Unlock()
	s.takeAuditCalls()

	rows := func(out string) int { return strings.Count(out, "\n") - 1 }
	tests := []struct {
		name      string
		args      []string
		rows      int
		pageSizes []int32 // of the requests sent
		hint      bool
	}{
		{"one page", []string{}, 2, []int32{0}, true},
		{"all", []string{"--all"}, 7, []int32{1000, 1000, 1000, 1000}, false},
		{"limit", []string{"--limit", "3"}, 3, []int32{3, 1}, false},
		{"limit beyond the end", []string{"--limit", "50", "--rp", "shop"}, 2, []int32{50}, false},
		{"all with limit", []string{"--all", "--limit", "5"}, 5, []int32{5, 3, 1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.admin(t, append([]string{"audit"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if !strings.HasPrefix(r.stdout, "TIME  ") || rows(r.stdout) != tt.rows {
				t.Errorf("want %d rows:\n%s", tt.rows, r.stdout)
			}
			var sizes []int32
			for _, req := range s.takeAuditCalls() {
				sizes = append(sizes, req.PageSize)
			}
			if !slices.Equal(sizes, tt.pageSizes) {
				t.Errorf("page sizes sent = %v, want %v", sizes, tt.pageSizes)
			}
			if hint := strings.Contains(r.stderr, "more results"); hint != tt.hint {
				t.Errorf("stderr = %q, want a hint: %v", r.stderr, tt.hint)
			}
		})
	}

	out := s.mustAdmin(t, "audit", "--limit", "1")
	want := "" +
		"TIME                  ACTOR  ACTION                 RELYING PARTY  TARGET  DETAILS                                REQUEST ID\n" +
		"2026-03-01T12:00:00Z  admin  relying_party.updated  rp_1           rp_1    field=number_matching note=\"was none\"  req_0\n"
	if out != want {
		t.Errorf("table:\n%s\nwant:\n%s", out, want)
	}

	// With a limit, the merged response continues where it stopped.
	r := s.admin(t, "audit", "--limit", "3", "--json")
	var resp pushauthv1.ListAuditEventsResponse
	if err := protojson.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(resp.Events) != 3 || resp.NextPageToken != "3" {
		t.Errorf("got %d events, next_page_token %q", len(resp.Events), resp.NextPageToken)
	}
}

func TestAuditFilters(t *testing.T) {
	s := startServer(t)
	before := time.Now()
	s.mustAdmin(t, "audit", "--since", "24h", "--rp", "portal")
	after := time.Now()
	s.mustAdmin(t, "audit", "--since", "2026-03-01", "--until", "2026-03-02T10:30:00+02:00")
	calls := s.takeAuditCalls()
	if len(calls) != 2 {
		t.Fatalf("%d calls", len(calls))
	}

	start := calls[0].GetStartTime().AsTime()
	if start.Before(before.Add(-24*time.Hour)) || start.After(after.Add(-24*time.Hour)) {
		t.Errorf("--since 24h: start_time %v, want 24h before %v..%v", start, before, after)
	}
	if calls[0].EndTime != nil || calls[0].RelyingParty != "portal" {
		t.Errorf("request: %v", calls[0])
	}
	if got, want := calls[1].GetStartTime().AsTime(), time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("start_time = %v, want %v", got, want)
	}
	if got, want := calls[1].GetEndTime().AsTime(), time.Date(2026, 3, 2, 8, 30, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("end_time = %v, want %v", got, want)
	}
}

func TestParseTimeArg(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{in: "2026-05-01T08:00:00Z", want: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)},
		{in: "2026-05-01T08:00:00.5+01:00", want: time.Date(2026, 5, 1, 7, 0, 0, 5e8, time.UTC)},
		{in: "2026-05-01", want: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)},
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "0s", want: now},
		{in: "-1h", wantErr: true},
		{in: "yesterday", wantErr: true},
		{in: "d", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseTimeArg(tt.in, now)
		if (err != nil) != tt.wantErr || err == nil && !got.Equal(tt.want) {
			t.Errorf("parseTimeArg(%q) = %v, %v; want %v (error: %v)", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
