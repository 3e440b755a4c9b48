package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/client"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Environment variables of the API key.
const (
	envAPIKey     = "PUSHAUTH_API_KEY"
	envAPIKeyFile = "PUSHAUTH_API_KEY_FILE"
)

// apiKeyFlags say where the API key of the rp commands comes from.
type apiKeyFlags struct {
	fs        *flag.FlagSet
	key, file string
}

func registerAPIKeyFlags(fs *flag.FlagSet) *apiKeyFlags {
	k := &apiKeyFlags{fs: fs}
	fs.StringVar(&k.key, "api-key", "", "the relying party's API `key` (env "+envAPIKey+"); command-line arguments are visible to other local users, prefer --api-key-file")
	fs.StringVar(&k.file, "api-key-file", "", "read the API key from `file`, - for stdin (env "+envAPIKeyFile+")")
	return k
}

// find returns the API key, in this order: --api-key, --api-key-file,
// $PUSHAUTH_API_KEY, $PUSHAUTH_API_KEY_FILE.
func (k *apiKeyFlags) find(e *env) (string, error) {
	given := givenFlags(k.fs)
	switch {
	case given["api-key"] && given["api-key-file"]:
		return "", usageErrorf("use either --api-key or --api-key-file, not both")
	case given["api-key"]:
		return checkSecret(k.key, "the API key", "--api-key")
	case given["api-key-file"]:
		return readSecret(e, k.file, "the API key")
	case e.getenv(envAPIKey) != "":
		return checkSecret(e.getenv(envAPIKey), "the API key", envAPIKey)
	case e.getenv(envAPIKeyFile) != "":
		return readSecret(e, e.getenv(envAPIKeyFile), "the API key")
	}
	return "", errors.New("no API key: pass --api-key-file FILE (or --api-key), or set " + envAPIKeyFile + " or " + envAPIKey +
		"; \"pushauth admin key create RP\" issues one")
}

// rpCall is what the rp commands share: a connection sending the API key,
// and errors explained.
type rpCall struct {
	e   *env
	cf  *connFlags
	c   *conn
	key string
	cl  *client.Client // package client on c, for pairing, logins and their checks
}

func openRP(e *env, cf *connFlags, k *apiKeyFlags) (*rpCall, error) {
	key, err := k.find(e)
	if err != nil {
		return nil, err
	}
	c, err := cf.dialWith(e, dialOptions{token: tokenUnused, apiKey: true})
	if err != nil {
		return nil, err
	}
	return &rpCall{e: e, cf: cf, c: c, key: key, cl: client.New(c.cc, key)}, nil
}

func (r *rpCall) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return r.c.ctxWith(parent, r.key)
}

// explain adds what to do to the errors of an API key.
func (r *rpCall) explain(err error) error {
	switch status.Code(err) {
	case codes.Unauthenticated:
		return withHint(err, "check the API key (--api-key-file, --api-key, %s, %s): it may be mistyped or revoked", envAPIKeyFile, envAPIKey)
	}
	return err
}

// contextFlags are the login's context that the phone shows.
type contextFlags struct {
	app, ip, location, browser, action string
}

func registerContextFlags(fs *flag.FlagSet) *contextFlags {
	c := &contextFlags{}
	fs.StringVar(&c.app, "app", "", "the `name` of the app or service logged in to, shown on the phone (default: the relying party's display name for pairing)")
	fs.StringVar(&c.ip, "ip", "", "the end user's IP `address`, shown on the phone")
	fs.StringVar(&c.location, "location", "", "approximate `location` of the end user, e.g. \"Utrecht, NL\"")
	fs.StringVar(&c.browser, "browser", "", "the end user's `browser` and system, e.g. \"Firefox on Windows\"")
	fs.StringVar(&c.action, "action", "", "`text` of what is approved, e.g. \"Sign the offer for Kavel 12\"")
	return c
}

// proto returns the context, or nil if no flag gave any.
func (c *contextFlags) proto() *pushauthv1.RequestContext {
	if *c == (contextFlags{}) {
		return nil
	}
	return &pushauthv1.RequestContext{AppName: c.app, IpAddress: c.ip, Location: c.location, Browser: c.browser, Action: c.action}
}

var rpWhoAmICmd = &command{
	path:    "rp whoami",
	args:    "[flags]",
	summary: "show the relying party an API key belongs to",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			r, err := openRP(e, cf, k)
			if err != nil {
				return err
			}
			defer r.c.close()
			cctx, cancel := r.ctx(ctx)
			defer cancel()
			resp, err := r.c.rp.WhoAmI(cctx, &pushauthv1.WhoAmIRequest{})
			if err != nil {
				return r.explain(err)
			}
			return output(e.stdout, cf, resp, func(w io.Writer) error {
				if err := printRelyingParties(w, resp.GetRelyingParty()); err != nil {
					return err
				}
				_, err := fmt.Fprintf(w, "\nAPI key: %s…\n", sanitize(resp.GetApiKeyPrefix()))
				return err
			})
		}
	},
}

var rpPairCmd = &command{
	path:    "rp pair",
	args:    "--phrase WORDS --user USER [--label LABEL] [context flags] [flags]",
	summary: "connect the phone showing two words to a user, and wait for the phone to confirm",
	details: `The words come from the phone ("pushauth device pair"). The phone gets a
pairing request; progress (queued, sent, seen) is shown on stderr until the
phone answers or the request expires. Exit status 0 means connected, 1 denied,
expired or any error.`,
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		phrase := fs.String("phrase", "", "the two `words` the phone shows, e.g. \"mango tulip\" (required)")
		user := userFlag(fs)
		label := fs.String("label", "", "how the phone names the account, e.g. jan@example.nl (default: --user)")
		cfl := registerContextFlags(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			switch {
			case strings.TrimSpace(*phrase) == "":
				return usageErrorf("--phrase is required")
			case *user == "":
				return usageErrorf("--user is required")
			}
			if *label == "" {
				*label = *user
			}
			r, err := openRP(e, cf, k)
			if err != nil {
				return err
			}
			defer r.c.close()
			cctx, cancel := r.ctx(ctx)
			p, err := r.cl.ClaimPairingPhrase(cctx, *phrase, *user, *label, cfl.proto())
			cancel()
			if err != nil {
				if status.Code(err) == codes.NotFound {
					return withHint(r.explain(err), "type the two words the phone shows now; they work once, for 10 minutes")
				}
				return r.explain(err)
			}
			fmt.Fprintf(e.stderr, "Pairing request %s sent to the phone showing the words; it expires at %s.\n",
				sanitize(p.RequestID), fmtExpiry(e, timestamppb.New(p.Expires)))
			if cf.json {
				if err := printJSON(e.stdout, &pushauthv1.ClaimPairingPhraseResponse{RequestId: p.RequestID, ExpireTime: timestamppb.New(p.Expires)}); err != nil {
					return err
				}
			}
			out, err := r.wait(ctx, p)
			if err != nil {
				return err
			}
			final := out.Request
			approved := out.Approved()
			if approved {
				r.verified(out)
			}
			err = output(e.stdout, cf, final, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, pairOutcome(final))
				return err
			})
			if err != nil || approved {
				return err
			}
			return fmt.Errorf("not connected: the pairing request is %s", fmtStatus(final.GetStatus(), final.GetReason()))
		}
	},
}

// pairOutcome says how a pairing ended: connected, denied or expired.
func pairOutcome(r *pushauthv1.Request) string {
	switch r.GetStatus() {
	case pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED:
		return fmt.Sprintf("connected: %s is paired with device %s", sanitize(r.GetAccountLabel()), sanitize(r.GetDecidingDeviceId()))
	case pushauthv1.RequestStatus_REQUEST_STATUS_DENIED:
		return "denied: the phone declined connecting " + sanitize(r.GetAccountLabel())
	case pushauthv1.RequestStatus_REQUEST_STATUS_EXPIRED:
		return "expired: the phone did not answer in time"
	}
	return fmtStatus(r.GetStatus(), r.GetReason())
}

var rpLoginCmd = &command{
	path:    "rp login",
	args:    "--user USER [context flags] [--no-wait] [flags]",
	summary: "ask a user's phones to approve a login, wait for the answer and verify its signature",
	details: `With number matching on (the relying party's policy), the number to show on
the login page is printed first: the phone must type it back. Progress (queued,
sent, seen) is shown on stderr until a phone answers or the request expires.
The decision's signature is then verified here with the device's public key
(GetDeviceKey), and its payload checked against the request and user. Exit
status 0 means approved and verified, 1 denied, expired or any error.`,
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		user := userFlag(fs)
		cfl := registerContextFlags(fs)
		noWait := fs.Bool("no-wait", false, "print the request and the number, and exit without waiting (see \"rp request\", \"rp cancel\")")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			if *user == "" {
				return usageErrorf("--user is required")
			}
			r, err := openRP(e, cf, k)
			if err != nil {
				return err
			}
			defer r.c.close()
			cctx, cancel := r.ctx(ctx)
			p, err := r.cl.CreateApproval(cctx, *user, cfl.proto())
			cancel()
			if err != nil {
				if status.Code(err) == codes.FailedPrecondition {
					return withHint(r.explain(err), "connect a phone first: \"pushauth device pair\" shows two words, "+
						"\"pushauth rp pair --phrase WORDS --user %s\" uses them", *user)
				}
				return r.explain(err)
			}
			fmt.Fprintf(e.stderr, "Login request %s sent to the phones of %s; it expires at %s.\n",
				sanitize(p.RequestID), sanitize(*user), fmtExpiry(e, timestamppb.New(p.Expires)))
			if cf.json {
				resp := &pushauthv1.CreateApprovalResponse{RequestId: p.RequestID, ExpireTime: timestamppb.New(p.Expires),
					NumberMatching: p.NumberMatching, Number: p.Number}
				if err := printJSON(e.stdout, resp); err != nil {
					return err
				}
			} else if p.Number != "" {
				fmt.Fprintf(e.stdout, "Show this number on the login page: %s\n", sanitize(p.Number))
			}
			if *noWait {
				if !cf.json {
					fmt.Fprintf(e.stdout, "Request %s is pending; follow it with \"pushauth rp request %s\".\n",
						sanitize(p.RequestID), sanitize(p.RequestID))
				}
				return nil
			}
			out, err := r.wait(ctx, p)
			if err != nil {
				return err
			}
			final := out.Request
			if out.Signed != nil {
				r.verified(out)
			}
			err = output(e.stdout, cf, final, func(w io.Writer) error {
				_, err := fmt.Fprintln(w, loginOutcome(final))
				return err
			})
			if err != nil || final.GetStatus() == pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED {
				return err
			}
			return fmt.Errorf("login not approved: the request is %s", fmtStatus(final.GetStatus(), final.GetReason()))
		}
	},
}

// loginOutcome says how a login request ended.
func loginOutcome(r *pushauthv1.Request) string {
	user := sanitize(r.GetUserRef())
	switch r.GetStatus() {
	case pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED:
		how := "on device " + sanitize(r.GetDecidingDeviceId())
		if r.GetAutoApproved() {
			how += " by its location rule " + sanitize(r.GetLocationRuleId())
		}
		return "approved: " + user + " may log in (" + how + ")"
	case pushauthv1.RequestStatus_REQUEST_STATUS_DENIED:
		switch r.GetReason() {
		case pushauthv1.DecisionReason_DECISION_REASON_NUMBER_MISMATCH:
			return "denied: the number typed on the phone did not match (number mismatch)"
		case pushauthv1.DecisionReason_DECISION_REASON_FRAUD_REPORT:
			return "denied: the user reported fraud (\"this wasn't me\"); pushes to " + user + " are muted for an hour"
		}
		return "denied: the user declined the login on device " + sanitize(r.GetDecidingDeviceId())
	case pushauthv1.RequestStatus_REQUEST_STATUS_EXPIRED:
		return "expired: no phone answered in time"
	case pushauthv1.RequestStatus_REQUEST_STATUS_CANCELLED:
		return fmtStatus(r.GetStatus(), r.GetReason())
	}
	return fmtStatus(r.GetStatus(), r.GetReason())
}

// wait follows a request with package client's Wait, printing its
// progress on stderr, and returns its outcome, whose signed decision Wait
// verified with the device's public key (GetDeviceKey) and checked against
// the request and the user. The server ends the wait at the request's
// expiry; --timeout, when given, limits it too.
func (r *rpCall) wait(ctx context.Context, p *client.Pending) (*client.Outcome, error) {
	if givenFlags(r.cf.fs)["timeout"] && r.cf.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.cf.timeout)
		defer cancel()
	}
	out, err := r.cl.Wait(ctx, p, client.OnProgress(func(pr *pushauthv1.Progress) {
		fmt.Fprintln(r.e.stderr, fmtProgress(pr))
	}))
	if errors.Is(err, client.ErrUntrusted) {
		return nil, fmt.Errorf("%s: do not trust this result", sanitize(err.Error()))
	}
	if err != nil {
		return nil, r.explain(err)
	}
	return out, nil
}

// fmtProgress is a line of progress.
func fmtProgress(p *pushauthv1.Progress) string {
	dev := sanitize(p.GetDeviceId())
	switch p.GetKind() {
	case pushauthv1.Progress_KIND_QUEUED:
		return "  queued: pushes to the phones are on their way"
	case pushauthv1.Progress_KIND_SENT:
		return "  sent to device " + dev
	case pushauthv1.Progress_KIND_DELIVERY_FAILED:
		return "  delivery to device " + dev + " failed: " + sanitize(p.GetDetail())
	case pushauthv1.Progress_KIND_SEEN:
		return "  seen on device " + dev
	}
	return "  " + p.GetKind().String() + " " + dev
}

// verified says which device signed what, as a login server logs it
// (on stderr with --json).
func (r *rpCall) verified(out *client.Outcome) {
	w := r.e.stdout
	if r.cf.json {
		w = r.e.stderr
	}
	f := out.Signed
	fmt.Fprintf(w, "signature verified: device %s signed decision=%s for request %s and user %s\n",
		sanitize(f.DeviceID), sanitize(f.Decision), sanitize(f.RequestID), sanitize(f.UserRef))
}

// userFlag registers --user, required.
func userFlag(fs *flag.FlagSet) *string {
	return fs.String("user", "", "the relying party's stable `id` of the user (required)")
}

var rpDevicesCmd = &command{
	path:    "rp devices",
	args:    "--user USER [flags]",
	summary: "list the phones connected to a user",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		user := userFlag(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			if *user == "" {
				return usageErrorf("--user is required")
			}
			r, err := openRP(e, cf, k)
			if err != nil {
				return err
			}
			defer r.c.close()
			cctx, cancel := r.ctx(ctx)
			defer cancel()
			resp, err := r.c.rp.ListUserDevices(cctx, &pushauthv1.ListUserDevicesRequest{UserRef: *user})
			if err != nil {
				return r.explain(err)
			}
			return output(e.stdout, cf, resp, func(w io.Writer) error {
				t := newTable(w, "DEVICE ID", "CONNECTION ID", "NAME", "PLATFORM", "ACCOUNT", "CONNECTED", "LAST SEEN", "PUSH")
				for _, d := range resp.GetDevices() {
					push := "ok"
					if !d.GetPushTokenAlive() {
						push = "dead"
					}
					t.row(d.GetDeviceId(), d.GetConnectionId(), d.GetName(), fmtPlatform(d.GetPlatform()), d.GetAccountLabel(),
						fmtTime(d.GetConnectTime()), fmtTime(d.GetLastSeenTime()), push)
				}
				return t.flush()
			})
		}
	},
}

var rpRemoveDeviceCmd = &command{
	path:    "rp remove-device",
	args:    "--user USER DEVICE_ID [flags]",
	summary: "disconnect a phone from a user",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		user := userFlag(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "device_id"); err != nil {
				return err
			}
			if *user == "" {
				return usageErrorf("--user is required")
			}
			r, err := openRP(e, cf, k)
			if err != nil {
				return err
			}
			defer r.c.close()
			cctx, cancel := r.ctx(ctx)
			defer cancel()
			resp, err := r.c.rp.RemoveUserDevice(cctx, &pushauthv1.RemoveUserDeviceRequest{UserRef: *user, DeviceId: args[0]})
			if err != nil {
				return r.explain(err)
			}
			return output(e.stdout, cf, resp, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Removed device %s from %s: it gets no more requests for this user.\n", sanitize(args[0]), sanitize(*user))
				return err
			})
		}
	},
}

var rpRequestCmd = &command{
	path:    "rp request",
	args:    "REQUEST_ID [flags]",
	summary: "show a login or pairing request of the relying party",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "request_id"); err != nil {
				return err
			}
			r, err := openRP(e, cf, k)
			if err != nil {
				return err
			}
			defer r.c.close()
			cctx, cancel := r.ctx(ctx)
			defer cancel()
			resp, err := r.c.rp.GetRequest(cctx, &pushauthv1.GetRequestRequest{RequestId: args[0]})
			if err != nil {
				return r.explain(err)
			}
			return output(e.stdout, cf, resp, func(w io.Writer) error {
				return printRequests(w, resp.GetRequest())
			})
		}
	},
}

var rpCancelCmd = &command{
	path:    "rp cancel",
	args:    "REQUEST_ID [flags]",
	summary: "cancel a pending request, e.g. when the user left the login page",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		k := registerAPIKeyFlags(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "request_id"); err != nil {
				return err
			}
			r, err := openRP(e, cf, k)
			if err != nil {
				return err
			}
			defer r.c.close()
			cctx, cancel := r.ctx(ctx)
			defer cancel()
			resp, err := r.c.rp.CancelRequest(cctx, &pushauthv1.CancelRequestRequest{RequestId: args[0]})
			if err != nil {
				return r.explain(err)
			}
			return output(e.stdout, cf, resp, func(w io.Writer) error {
				return printRequests(w, resp.GetRequest())
			})
		}
	},
}

// printRequests prints relying-party requests as a table.
func printRequests(w io.Writer, rs ...*pushauthv1.Request) error {
	t := newTable(w, "ID", "KIND", "USER", "STATUS", "MATCHING", "CREATED", "EXPIRES", "DECIDED", "DEVICE")
	for _, r := range rs {
		t.row(r.GetId(), fmtKind(r.GetKind()), r.GetUserRef(), fmtStatus(r.GetStatus(), r.GetReason()), fmtMatching(r.GetNumberMatching()),
			fmtTime(r.GetCreateTime()), fmtTime(r.GetExpireTime()), fmtTime(r.GetDecideTime()), r.GetDecidingDeviceId())
	}
	return t.flush()
}
