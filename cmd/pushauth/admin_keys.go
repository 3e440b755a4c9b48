package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

var keyCreateCmd = &command{
	path:    "admin key create",
	args:    "RP [--description TEXT] [flags]",
	summary: "issue an API key for a relying party; its secret is shown only once",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		desc := fs.String("description", "", "what the key is for, e.g. the host that uses it")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "rp"); err != nil {
				return err
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.CreateApiKeyResponse, error) {
				return a.CreateApiKey(ctx, &pushauthv1.CreateApiKeyRequest{RelyingParty: args[0], Description: *desc})
			}, func(w io.Writer, resp *pushauthv1.CreateApiKeyResponse) error {
				if err := printAPIKeys(w, resp.GetApiKey()); err != nil {
					return err
				}
				_, err := fmt.Fprintf(w, "\nAPI key secret (send it as \"authorization: Bearer <secret>\"):\n\n    %s\n\n"+
					"WARNING: this is the only time the secret is shown. Store it safely now;\n"+
					"it cannot be retrieved later. If it is lost, create a new key and revoke this one.\n",
					sanitize(resp.GetSecret()))
				return err
			})
		}
	},
}

var keyListCmd = &command{
	path:    "admin key list",
	args:    "RP [--include-revoked] [flags]",
	summary: "list the API keys of a relying party (never their secrets)",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		revoked := fs.Bool("include-revoked", false, "also list revoked keys")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "rp"); err != nil {
				return err
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.ListApiKeysResponse, error) {
				return a.ListApiKeys(ctx, &pushauthv1.ListApiKeysRequest{RelyingParty: args[0], IncludeRevoked: *revoked})
			}, func(w io.Writer, resp *pushauthv1.ListApiKeysResponse) error {
				return printAPIKeys(w, resp.GetApiKeys()...)
			})
		}
	},
}

var keyRevokeCmd = &command{
	path:    "admin key revoke",
	args:    "KEY [flags]",
	summary: "revoke an API key, by id or prefix, at once",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "key"); err != nil {
				return err
			}
			return adminCall(ctx, e, cf, func(ctx context.Context, a pushauthv1.AdminServiceClient) (*pushauthv1.RevokeApiKeyResponse, error) {
				return a.RevokeApiKey(ctx, &pushauthv1.RevokeApiKeyRequest{ApiKey: args[0]})
			}, func(w io.Writer, resp *pushauthv1.RevokeApiKeyResponse) error {
				return printAPIKeys(w, resp.GetApiKey())
			})
		}
	},
}

// printAPIKeys prints API keys as a table.
func printAPIKeys(w io.Writer, keys ...*pushauthv1.ApiKey) error {
	t := newTable(w, "ID", "PREFIX", "RELYING PARTY", "DESCRIPTION", "CREATED", "LAST USED", "REVOKED")
	for _, k := range keys {
		t.row(k.GetId(), k.GetPrefix(), k.GetRelyingPartyId(), k.GetDescription(),
			fmtTime(k.GetCreateTime()), fmtTime(k.GetLastUsedTime()), fmtTime(k.GetRevokeTime()))
	}
	return t.flush()
}
