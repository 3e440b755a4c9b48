package main

import (
	"context"
	"flag"
	"io"
	"strings"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

const maxOutboxLimit = 100

var outboxCmd = &command{
	path:    "admin outbox",
	args:    "[--phone NUMBER] [--limit N] [flags]",
	summary: "show the SMS the development outbox kept instead of sending, newest first",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		phone := fs.String("phone", "", "only messages to this `number`, in E.164 (+31612345678)")
		limit := fs.Int("limit", 0, "show at most `N` messages, up to 100 (default: the server's, 20)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			if *limit < 0 || *limit > maxOutboxLimit {
				return usageErrorf("--limit must be between 0 and %d", maxOutboxLimit)
			}
			number := strings.TrimSpace(*phone)
			if n := normalizePhone(number, ""); n != "" {
				number = n // "+31 6 1234 5678" works too
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.ListOutboxMessagesResponse, error) {
				return a.ListOutboxMessages(ctx, &pushauthv1.ListOutboxMessagesRequest{PhoneNumber: number, Limit: int32(*limit)})
			}, func(w io.Writer, resp *pushauthv1.ListOutboxMessagesResponse) error {
				return printOutbox(w, resp.GetMessages()...)
			})
		}
	},
}

// printOutbox prints outbox messages as a table.
func printOutbox(w io.Writer, msgs ...*pushauthv1.OutboxMessage) error {
	t := newTable(w, "TIME", "NUMBER", "BODY")
	for _, m := range msgs {
		t.row(fmtTime(m.GetCreateTime()), m.GetPhoneNumber(), m.GetBody())
	}
	return t.flush()
}
