package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// matchingFlag is a --number-matching value: none, number or code.
type matchingFlag struct{ mode pushauthv1.NumberMatchingMode }

func (f *matchingFlag) String() string {
	if f == nil {
		return ""
	}
	return fmtMatching(f.mode)
}

func (f *matchingFlag) Set(s string) error {
	switch strings.ToLower(strings.TrimPrefix(strings.ToUpper(s), "NUMBER_MATCHING_MODE_")) {
	case "none":
		f.mode = pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NONE
	case "number":
		f.mode = pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER
	case "code":
		f.mode = pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE
	default:
		return errors.New("want none, number or code")
	}
	return nil
}

// policyFlags are the flags of a relying party policy. flagPaths maps each
// flag to its field in RelyingPartyPolicy, for update masks.
type policyFlags struct {
	matching matchingFlag
	ttl      time.Duration
	location bool
	restore  bool
}

var policyFlagPaths = map[string]string{
	"number-matching":           "number_matching",
	"approval-ttl":              "approval_ttl",
	"allow-location-automation": "allow_location_automation",
	"allow-backup-restore":      "allow_backup_restore",
}

func registerPolicyFlags(fs *flag.FlagSet, update bool) *policyFlags {
	p := &policyFlags{}
	ttlHelp := "how long a login request stays answerable, 10s to 10m (default: the server's, 2m)"
	if update {
		ttlHelp = "how long a login request stays answerable, 10s to 10m; 0 resets to the server's default"
	}
	fs.Var(&p.matching, "number-matching", "what the phone must type back to approve: `none|number|code`")
	fs.DurationVar(&p.ttl, "approval-ttl", 0, ttlHelp)
	fs.BoolVar(&p.location, "allow-location-automation", false, "let \"always approve from this location\" answer for users (=true|false)")
	fs.BoolVar(&p.restore, "allow-backup-restore", false, "let a backup restore move connections to a new phone (=true|false)")
	return p
}

// policy returns the policy the flags describe; unset flags are zero.
func (p *policyFlags) policy() (*pushauthv1.RelyingPartyPolicy, error) {
	pol := &pushauthv1.RelyingPartyPolicy{
		NumberMatching:          p.matching.mode,
		AllowLocationAutomation: p.location,
		AllowBackupRestore:      p.restore,
	}
	switch {
	case p.ttl < 0:
		return nil, usageErrorf("--approval-ttl must not be negative")
	case p.ttl > 0:
		pol.ApprovalTtl = durationpb.New(p.ttl)
	}
	return pol, nil
}

var rpCreateCmd = &command{
	path:    "admin rp create",
	args:    "--name NAME --display-name TEXT [flags]",
	summary: "register a relying party (a login server)",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		name := fs.String("name", "", "unique machine `name`: lower-case letters, digits and hyphens (required)")
		display := fs.String("display-name", "", "`text` shown to users on their phones (required)")
		pf := registerPolicyFlags(fs, false)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			if *name == "" {
				return usageErrorf("--name is required")
			}
			if *display == "" {
				return usageErrorf("--display-name is required")
			}
			pol, err := pf.policy()
			if err != nil {
				return err
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.CreateRelyingPartyResponse, error) {
				return a.CreateRelyingParty(ctx, &pushauthv1.CreateRelyingPartyRequest{
					Name: *name, DisplayName: *display, Policy: pol,
				})
			}, func(w io.Writer, resp *pushauthv1.CreateRelyingPartyResponse) error {
				return printRelyingParties(w, resp.GetRelyingParty())
			})
		}
	},
}

var rpGetCmd = &command{
	path:    "admin rp get",
	args:    "RP [flags]",
	summary: "show a relying party, by id or name",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "rp"); err != nil {
				return err
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.GetRelyingPartyResponse, error) {
				return a.GetRelyingParty(ctx, &pushauthv1.GetRelyingPartyRequest{RelyingParty: args[0]})
			}, func(w io.Writer, resp *pushauthv1.GetRelyingPartyResponse) error {
				return printRelyingParties(w, resp.GetRelyingParty())
			})
		}
	},
}

var rpListCmd = &command{
	path:    "admin rp list",
	args:    "[flags]",
	summary: "list relying parties, oldest first",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		pageSize := fs.Int("page-size", 0, "relying parties per page, at most 500 (default: the server's, 50)")
		pageToken := fs.String("page-token", "", "continue from a previous response's next_page_token")
		all := fs.Bool("all", false, "fetch all pages")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			if *pageSize < 0 || *pageSize > 500 {
				return usageErrorf("--page-size must be between 0 and 500")
			}
			c, err := cf.dial(e)
			if err != nil {
				return err
			}
			defer c.close()
			req := &pushauthv1.ListRelyingPartiesRequest{PageSize: int32(*pageSize), PageToken: *pageToken}
			out := &pushauthv1.ListRelyingPartiesResponse{}
			for {
				cctx, cancel := c.ctx(ctx)
				resp, err := c.admin.ListRelyingParties(cctx, req)
				cancel()
				if err != nil {
					return err
				}
				out.RelyingParties = append(out.RelyingParties, resp.GetRelyingParties()...)
				out.NextPageToken = resp.GetNextPageToken()
				if !*all || out.NextPageToken == "" {
					break
				}
				if out.NextPageToken == req.PageToken {
					return errors.New("the server returned the same page token again; stopping")
				}
				req.PageToken = out.NextPageToken
			}
			return output(e.stdout, cf, out, func(w io.Writer) error {
				if err := printRelyingParties(w, out.RelyingParties...); err != nil {
					return err
				}
				moreHint(e.stderr, out.NextPageToken)
				return nil
			})
		}
	},
}

var rpSetPolicyCmd = &command{
	path:    "admin rp set-policy",
	args:    "RP [policy flags]",
	summary: "change the policy of a relying party (only the flags given)",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		pf := registerPolicyFlags(fs, true)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "rp"); err != nil {
				return err
			}
			mask := &fieldmaskpb.FieldMask{}
			fs.Visit(func(f *flag.Flag) {
				if path, ok := policyFlagPaths[f.Name]; ok {
					mask.Paths = append(mask.Paths, path)
				}
			})
			if len(mask.Paths) == 0 {
				return usageErrorf("nothing to change: give at least one of --number-matching, --approval-ttl, --allow-location-automation, --allow-backup-restore")
			}
			pol, err := pf.policy()
			if err != nil {
				return err
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.UpdateRelyingPartyPolicyResponse, error) {
				return a.UpdateRelyingPartyPolicy(ctx, &pushauthv1.UpdateRelyingPartyPolicyRequest{
					RelyingParty: args[0], Policy: pol, UpdateMask: mask,
				})
			}, func(w io.Writer, resp *pushauthv1.UpdateRelyingPartyPolicyResponse) error {
				return printRelyingParties(w, resp.GetRelyingParty())
			})
		}
	},
}

// printRelyingParties prints relying parties as a table.
func printRelyingParties(w io.Writer, rps ...*pushauthv1.RelyingParty) error {
	t := newTable(w, "ID", "NAME", "DISPLAY NAME", "MATCHING", "TTL", "LOCATION", "RESTORE", "CREATED")
	for _, rp := range rps {
		p := rp.GetPolicy()
		t.row(rp.GetId(), rp.GetName(), rp.GetDisplayName(),
			fmtMatching(p.GetNumberMatching()), fmtDuration(p.GetApprovalTtl()),
			fmtBool(p.GetAllowLocationAutomation()), fmtBool(p.GetAllowBackupRestore()),
			fmtTime(rp.GetCreateTime()))
	}
	return t.flush()
}

// moreHint tells people on stderr that there are more pages.
func moreHint(w io.Writer, nextPageToken string) {
	if nextPageToken != "" {
		fmt.Fprintf(w, "(more results: add --all, or --page-token=%s for the next page)\n", sanitize(nextPageToken))
	}
}
