package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// rpUserCall is the body of an rp command that needs --user: it checks
// the flag, opens the API key connection and runs f.
func rpUserCall(ctx context.Context, e *env, cf *connFlags, k *apiKeyFlags, user string, f func(ctx context.Context, r *rpCall) error) error {
	if user == "" {
		return usageErrorf("--user is required")
	}
	r, err := openRP(e, cf, k)
	if err != nil {
		return err
	}
	defer r.c.close()
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	return f(cctx, r)
}

var rpTotpEnrollCmd = &command{
	path:    "rp totp enroll",
	args:    "--user USER --label LABEL [--qr FILE.png] [flags]",
	summary: "enroll another authenticator app for a user: print its secret and otpauth URI, and the factor id",
	details: `Show the secret (or the QR code written with --qr) to the user, who adds it to
Google or Microsoft Authenticator and types the first code; send that code with
"pushauth rp totp confirm". The secret is shown only here.`,
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		user := userFlag(fs)
		label := fs.String("label", "", "how the authenticator app names the account, e.g. jan@example.nl (required)")
		qr := fs.String("qr", "", "write the QR code of the otpauth URI to this PNG `file`")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			if *label == "" && *user != "" {
				return usageErrorf("--label is required")
			}
			return rpUserCall(ctx, e, cf, k, *user, func(cctx context.Context, r *rpCall) error {
				resp, err := r.c.rp.EnrollTotp(cctx, &pushauthv1.EnrollTotpRequest{UserRef: *user, AccountLabel: *label})
				if err != nil {
					return r.explain(err)
				}
				if *qr != "" {
					if err := os.WriteFile(*qr, resp.GetQrPng(), 0o600); err != nil {
						return fmt.Errorf("factor %s is enrolled, but the QR code was not written: %w", sanitize(resp.GetFactorId()), err)
					}
				}
				err = output(e.stdout, cf, resp, func(w io.Writer) error {
					tw := newTabWriter(w)
					fmt.Fprintf(tw, "factor:\t%s\n", sanitize(resp.GetFactorId()))
					fmt.Fprintf(tw, "secret:\t%s\n", sanitize(resp.GetSecret()))
					fmt.Fprintf(tw, "uri:\t%s\n", sanitize(resp.GetOtpauthUri()))
					if *qr != "" {
						fmt.Fprintf(tw, "qr code:\t%s\n", *qr)
					}
					return tw.Flush()
				})
				if err == nil {
					fmt.Fprintf(e.stderr, "Activate it with: pushauth rp totp confirm --user %s --factor %s --code CODE\n",
						sanitize(*user), sanitize(resp.GetFactorId()))
				}
				return err
			})
		}
	},
}

var rpTotpConfirmCmd = &command{
	path:    "rp totp confirm",
	args:    "--user USER --factor ID --code CODE [flags]",
	summary: "activate an enrolled authenticator app with a first code from it",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		user := userFlag(fs)
		factor := fs.String("factor", "", "the factor `id` from \"rp totp enroll\" (required)")
		code := fs.String("code", "", "the 6-digit `code` the app shows (required)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			switch {
			case *user != "" && *factor == "":
				return usageErrorf("--factor is required")
			case *user != "" && *code == "":
				return usageErrorf("--code is required")
			}
			return rpUserCall(ctx, e, cf, k, *user, func(cctx context.Context, r *rpCall) error {
				resp, err := r.c.rp.ConfirmTotp(cctx, &pushauthv1.ConfirmTotpRequest{UserRef: *user, FactorId: *factor, Code: strings.TrimSpace(*code)})
				if err != nil {
					return r.explain(err)
				}
				return output(e.stdout, cf, resp, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "confirmed: factor %s of %s is active\n", sanitize(*factor), sanitize(*user))
					return err
				})
			})
		}
	},
}

var rpTotpVerifyCmd = &command{
	path:    "rp totp verify",
	args:    "--user USER --code CODE [flags]",
	summary: "check a 6-digit code against every active authenticator of a user",
	details: `Codes of enrolled authenticator apps and of paired pushauth apps ("pushauth
device code") are accepted, each 30-second step once. Exit status 0 means
valid, 1 invalid, replayed, locked out or any error (the server's message says
which).`,
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		user := userFlag(fs)
		code := fs.String("code", "", "the 6-digit `code` the user typed (required)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			if *user != "" && *code == "" {
				return usageErrorf("--code is required")
			}
			return rpUserCall(ctx, e, cf, k, *user, func(cctx context.Context, r *rpCall) error {
				resp, err := r.c.rp.VerifyTotp(cctx, &pushauthv1.VerifyTotpRequest{UserRef: *user, Code: strings.TrimSpace(*code)})
				if err != nil {
					return r.explain(err)
				}
				return output(e.stdout, cf, resp, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "valid: the code belongs to factor %s (%s)\n", sanitize(resp.GetFactorId()), fmtFactorKind(resp.GetFactorKind()))
					return err
				})
			})
		}
	},
}

var rpTotpRemoveCmd = &command{
	path:    "rp totp remove",
	args:    "--user USER --factor ID [flags]",
	summary: "remove an authenticator app of a user",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		user := userFlag(fs)
		factor := fs.String("factor", "", "the factor `id` (see \"rp factors\") (required)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			if *user != "" && *factor == "" {
				return usageErrorf("--factor is required")
			}
			return rpUserCall(ctx, e, cf, k, *user, func(cctx context.Context, r *rpCall) error {
				resp, err := r.c.rp.RemoveTotp(cctx, &pushauthv1.RemoveTotpRequest{UserRef: *user, FactorId: *factor})
				if err != nil {
					return r.explain(err)
				}
				return output(e.stdout, cf, resp, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "removed factor %s of %s\n", sanitize(*factor), sanitize(*user))
					return err
				})
			})
		}
	},
}

var rpFactorsCmd = &command{
	path:    "rp factors",
	args:    "--user USER [flags]",
	summary: "list what a user can verify with: push devices and authenticator codes",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		user := userFlag(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			return rpUserCall(ctx, e, cf, k, *user, func(cctx context.Context, r *rpCall) error {
				resp, err := r.c.rp.ListUserFactors(cctx, &pushauthv1.ListUserFactorsRequest{UserRef: *user})
				if err != nil {
					return r.explain(err)
				}
				return output(e.stdout, cf, resp, func(w io.Writer) error {
					fmt.Fprintln(w, "Push devices:")
					t := newTable(w, "DEVICE ID", "NAME", "PLATFORM", "ACCOUNT", "CONNECTED", "PUSH")
					for _, d := range resp.GetPushDevices() {
						push := "ok"
						if !d.GetPushTokenAlive() {
							push = "dead"
						}
						t.row(d.GetDeviceId(), d.GetName(), fmtPlatform(d.GetPlatform()), d.GetAccountLabel(), fmtTime(d.GetConnectTime()), push)
					}
					if err := t.flush(); err != nil {
						return err
					}
					fmt.Fprintln(w, "\nCode factors:")
					t = newTable(w, "FACTOR ID", "KIND", "LABEL", "CONFIRMED", "CREATED", "DEVICE")
					for _, f := range resp.GetTotpFactors() {
						confirmed := "no"
						if f.GetConfirmed() {
							confirmed = "yes"
						}
						t.row(f.GetId(), fmtFactorKind(f.GetKind()), f.GetLabel(), confirmed, fmtTime(f.GetCreateTime()), f.GetDeviceId())
					}
					return t.flush()
				})
			})
		}
	},
}

// fmtFactorKind names a factor kind: "authenticator app" or "pushauth app".
func fmtFactorKind(k string) string {
	switch k {
	case "APP":
		return "authenticator app"
	case "CONNECTION":
		return "paired pushauth app"
	}
	return strings.ToLower(k)
}
