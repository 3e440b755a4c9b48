package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

const maxAuditPageSize = 1000

var auditCmd = &command{
	path:    "admin audit",
	args:    "[--rp RP] [--since TIME] [--until TIME] [--limit N] [--all] [flags]",
	summary: "show the audit log, newest first",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		rp := fs.String("rp", "", "only events of this relying party (`id or name`)")
		since := fs.String("since", "", "only events at or after `TIME`: RFC 3339 (2026-01-02T15:04:05Z), a date, or an age like 90m, 24h, 7d")
		until := fs.String("until", "", "only events before `TIME`, in the forms of --since")
		limit := fs.Int("limit", 0, "show at most `N` events, fetching pages as needed (default: one page)")
		all := fs.Bool("all", false, "fetch all pages")
		pageToken := fs.String("page-token", "", "continue from a previous response's next_page_token")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			if *limit < 0 {
				return usageErrorf("--limit must not be negative")
			}
			now := time.Now()
			req := &pushauthv1.ListAuditEventsRequest{RelyingParty: *rp, PageToken: *pageToken}
			if *since != "" {
				t, err := parseTimeArg(*since, now)
				if err != nil {
					return usageErrorf("--since: %v", err)
				}
				req.StartTime = timestamppb.New(t)
			}
			if *until != "" {
				t, err := parseTimeArg(*until, now)
				if err != nil {
					return usageErrorf("--until: %v", err)
				}
				req.EndTime = timestamppb.New(t)
			}
			if req.StartTime != nil && req.EndTime != nil && !req.StartTime.AsTime().Before(req.EndTime.AsTime()) {
				return usageErrorf("--since must be before --until")
			}
			c, err := cf.dial(e)
			if err != nil {
				return err
			}
			defer c.close()
			out, err := listAudit(ctx, c, req, *limit, *all)
			if err != nil {
				return err
			}
			return output(e.stdout, cf, out, func(w io.Writer) error {
				if err := printAuditEvents(w, out.Events...); err != nil {
					return err
				}
				if *limit == 0 {
					moreHint(e.stderr, out.NextPageToken)
				}
				return nil
			})
		}
	},
}

// listAudit fetches audit events: one page, or pages until limit events
// (if limit > 0) or the end (if all). The pages are merged into one response
// whose next_page_token continues after the events it holds, if it can.
func listAudit(ctx context.Context, c *conn, req *pushauthv1.ListAuditEventsRequest, limit int, all bool) (*pushauthv1.ListAuditEventsResponse, error) {
	out := &pushauthv1.ListAuditEventsResponse{}
	if all && limit == 0 {
		req.PageSize = maxAuditPageSize
	}
	for {
		if limit > 0 {
			req.PageSize = int32(min(limit-len(out.Events), maxAuditPageSize))
		}
		cctx, cancel := c.ctx(ctx)
		resp, err := c.admin.ListAuditEvents(cctx, req)
		cancel()
		if err != nil {
			return nil, err
		}
		events := resp.GetEvents()
		out.NextPageToken = resp.GetNextPageToken()
		if limit > 0 && len(out.Events)+len(events) > limit {
			// The server sent more than asked: the token would skip some.
			events = events[:limit-len(out.Events)]
			out.NextPageToken = ""
		}
		out.Events = append(out.Events, events...)
		switch {
		case out.NextPageToken == "":
			return out, nil
		case limit > 0 && len(out.Events) >= limit:
			return out, nil
		case limit == 0 && !all:
			return out, nil
		case out.NextPageToken == req.PageToken:
			return nil, errors.New("the server returned the same page token again; stopping")
		}
		req.PageToken = out.NextPageToken
	}
}

// parseTimeArg parses an RFC 3339 time, a date (UTC), or an age before now
// as a Go duration or a number of days ("7d").
func parseTimeArg(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time, a date, nor an age like 24h or 7d", s)
	}
	if d < 0 {
		return time.Time{}, fmt.Errorf("%q: an age must not be negative", s)
	}
	return now.Add(-d), nil
}

// printAuditEvents prints audit events as a table.
func printAuditEvents(w io.Writer, events ...*pushauthv1.AuditEvent) error {
	t := newTable(w, "TIME", "ACTOR", "ACTION", "RELYING PARTY", "TARGET", "DETAILS", "REQUEST ID")
	for _, ev := range events {
		t.row(fmtTime(ev.GetTime()), ev.GetActor(), ev.GetAction(), ev.GetRelyingPartyId(),
			ev.GetTarget(), fmtDetails(ev.GetDetails()), ev.GetRequestId())
	}
	return t.flush()
}
