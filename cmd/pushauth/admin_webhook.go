package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// printWebhookSecret prints a signing secret shown once.
func printWebhookSecret(w io.Writer, secret string) error {
	_, err := fmt.Fprintf(w, "\nSigning secret (verify the webhook-signature header with it):\n\n    %s\n\n"+
		"WARNING: this is the only time the secret is shown. Store it safely now;\n"+
		"if it is lost, rotate it with `pushauth admin webhook rotate-secret`.\n", sanitize(secret))
	return err
}

var webhookCreateCmd = &command{
	path:    "admin webhook create",
	args:    "RP URL [--description TEXT] [flags]",
	summary: "register an https:// endpoint for a relying party's security events; its signing secret is shown only once",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		desc := fs.String("description", "", "what the endpoint is")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "rp", "url"); err != nil {
				return err
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.CreateWebhookResponse, error) {
				return a.CreateWebhook(ctx, &pushauthv1.CreateWebhookRequest{RelyingParty: args[0], Url: args[1], Description: *desc})
			}, func(w io.Writer, resp *pushauthv1.CreateWebhookResponse) error {
				if err := printWebhooks(w, resp.GetWebhook()); err != nil {
					return err
				}
				return printWebhookSecret(w, resp.GetSecret())
			})
		}
	},
}

var webhookListCmd = &command{
	path:    "admin webhook list",
	args:    "[RP] [--include-disabled] [flags]",
	summary: "list webhook endpoints, of one relying party or all",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		disabled := fs.Bool("include-disabled", false, "also list disabled endpoints")
		return func(ctx context.Context, e *env, args []string) error {
			rp := ""
			if len(args) > 0 {
				rp, args = args[0], args[1:]
			}
			if err := wantArgs(args); err != nil {
				return err
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.ListWebhooksResponse, error) {
				return a.ListWebhooks(ctx, &pushauthv1.ListWebhooksRequest{RelyingParty: rp, IncludeDisabled: *disabled})
			}, func(w io.Writer, resp *pushauthv1.ListWebhooksResponse) error {
				return printWebhooks(w, resp.GetWebhooks()...)
			})
		}
	},
}

var webhookRotateCmd = &command{
	path:    "admin webhook rotate-secret",
	args:    "WEBHOOK [flags]",
	summary: "give a webhook endpoint a new signing secret, shown only once",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "webhook"); err != nil {
				return err
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.RotateWebhookSecretResponse, error) {
				return a.RotateWebhookSecret(ctx, &pushauthv1.RotateWebhookSecretRequest{Webhook: args[0]})
			}, func(w io.Writer, resp *pushauthv1.RotateWebhookSecretResponse) error {
				if err := printWebhooks(w, resp.GetWebhook()); err != nil {
					return err
				}
				return printWebhookSecret(w, resp.GetSecret())
			})
		}
	},
}

var webhookDisableCmd = &command{
	path:    "admin webhook disable",
	args:    "WEBHOOK [--reason TEXT] [flags]",
	summary: "stop deliveries to a webhook endpoint",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		reason := fs.String("reason", "", "why, kept in the audit log")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "webhook"); err != nil {
				return err
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.DisableWebhookResponse, error) {
				return a.DisableWebhook(ctx, &pushauthv1.DisableWebhookRequest{Webhook: args[0], Reason: *reason})
			}, func(w io.Writer, resp *pushauthv1.DisableWebhookResponse) error {
				return printWebhooks(w, resp.GetWebhook())
			})
		}
	},
}

var webhookDeliveriesCmd = &command{
	path:    "admin webhook deliveries",
	args:    "WEBHOOK [--limit N] [flags]",
	summary: "list a webhook endpoint's deliveries, newest first",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		limit := fs.Int("limit", 50, "at most this many (up to 500)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "webhook"); err != nil {
				return err
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.ListWebhookDeliveriesResponse, error) {
				return a.ListWebhookDeliveries(ctx, &pushauthv1.ListWebhookDeliveriesRequest{Webhook: args[0], Limit: int32(*limit)})
			}, func(w io.Writer, resp *pushauthv1.ListWebhookDeliveriesResponse) error {
				t := newTable(w, "ID", "EVENT", "TYPE", "STATE", "ATTEMPTS", "LAST STATUS", "LAST ERROR", "NEXT ATTEMPT", "CREATED")
				for _, d := range resp.GetDeliveries() {
					t.row(d.GetId(), d.GetEventId(), d.GetEventType(), d.GetState(), strconv.Itoa(int(d.GetAttempts())),
						strconv.Itoa(int(d.GetLastStatus())), d.GetLastError(), fmtTime(d.GetNextAttemptTime()), fmtTime(d.GetCreateTime()))
				}
				return t.flush()
			})
		}
	},
}

// printWebhooks prints webhook endpoints as a table.
func printWebhooks(w io.Writer, hooks ...*pushauthv1.Webhook) error {
	t := newTable(w, "ID", "RELYING PARTY", "URL", "DESCRIPTION", "CREATED", "FAILING SINCE", "DISABLED", "REASON")
	for _, h := range hooks {
		t.row(h.GetId(), h.GetRelyingPartyId(), h.GetUrl(), h.GetDescription(), fmtTime(h.GetCreateTime()),
			fmtTime(h.GetFailingSince()), fmtTime(h.GetDisableTime()), h.GetDisabledReason())
	}
	return t.flush()
}
