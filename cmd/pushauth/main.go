// Command pushauth is the operator tool of the pushauth server. Its admin
// commands manage relying parties, their API keys and the audit log over the
// AdminService gRPC API; its device commands simulate an authenticator app
// on the DeviceService API, and its rp commands a login server on the
// RelyingPartyService API, for development and testing.
//
// Run "pushauth help" for the list of commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit codes of run.
const (
	exitOK    = 0
	exitError = 1 // the command failed (server error, unreadable file, ...)
	exitUsage = 2 // the command line is wrong
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes the command line args and returns the process exit code.
// It reads the environment of the process; see runEnv.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, stdin, stdout, stderr, os.Getenv)
}

// runEnv is run with the environment lookup passed in, so tests control it.
// SIGINT and SIGTERM cancel the context of the running command.
func runEnv(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, now: time.Now}
	return e.dispatch(ctx, args)
}

// env is what a command may use of the outside world.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// now is the clock that signs decisions and counts down expiries; nil
	// means time.Now. Tests set the test server's clock.
	now func() time.Time

	linesOnce sync.Once
	lines     chan string // lines of stdin, closed at its end; see readLine
	linesErr  error       // why lines was closed, if not io.EOF
}

// clock returns the current time of e.now.
func (e *env) clock() time.Time {
	if e.now == nil {
		return time.Now()
	}
	return e.now()
}

// command is one leaf of the command tree, e.g. "admin rp create".
type command struct {
	path    string // words after "pushauth"
	args    string // synopsis of the arguments, for usage
	summary string // one line, for the overview
	// details, if set, explains more in the command's usage.
	details string
	// setup registers the command's own flags on fs and returns the function
	// that runs it with the positional arguments, after fs is parsed.
	setup func(fs *flag.FlagSet, cf *connFlags) func(ctx context.Context, e *env, args []string) error
}

// commands lists every leaf command, in the order of the overview.
var commands = []*command{
	rpCreateCmd, rpGetCmd, rpListCmd, rpSetPolicyCmd,
	keyCreateCmd, keyListCmd, keyRevokeCmd,
	webhookCreateCmd, webhookListCmd, webhookRotateCmd, webhookDisableCmd, webhookDeliveriesCmd,
	auditCmd, outboxCmd,
	deviceRegisterCmd, deviceShowCmd, deviceUpdateCmd, deviceDeregisterCmd,
	devicePairCmd, deviceWatchCmd, deviceRequestsCmd, deviceConnectionsCmd, deviceDisconnectCmd,
	deviceCodeCmd, deviceBackupCmd, deviceRestoreCmd, deviceBackupInfoCmd, deviceDeleteBackupCmd,
	rpWhoAmICmd, rpPairCmd, rpLoginCmd, rpDevicesCmd, rpRemoveDeviceCmd, rpRequestCmd, rpCancelCmd,
	rpFactorsCmd, rpTotpEnrollCmd, rpTotpConfirmCmd, rpTotpVerifyCmd, rpTotpRemoveCmd,
}

// groups describes the inner nodes of the command tree.
var groups = map[string]string{
	"admin":         "manage a pushauth server over its AdminService API",
	"admin rp":      "manage relying parties (login servers) and their policies",
	"admin key":     "manage the API keys of relying parties",
	"admin webhook": "manage the endpoints that receive relying parties' security events, and their deliveries",
	"device":        "simulate an authenticator app: register a phone number as a device, connect accounts and answer requests",
	"rp":            "simulate a login server with a relying party's API key: pair phones to users and ask them to approve logins",
	"rp totp":       "enroll authenticator apps (TOTP) for users and verify their codes",
}

// usageError is a mistake on the command line: run prints it with the
// command's usage and exits with exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, a ...any) error {
	return &usageError{msg: fmt.Sprintf(format, a...)}
}

func isHelpArg(s string) bool {
	switch s {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// dispatch finds the command named by the leading words of args and runs it.
func (e *env) dispatch(ctx context.Context, args []string) int {
	if len(args) == 0 {
		printOverview(e.stderr)
		return exitUsage
	}
	if isHelpArg(args[0]) {
		if len(args) > 1 && args[0] == "help" {
			// "pushauth help admin rp create" is "pushauth admin rp create -h".
			return e.dispatch(ctx, append(append([]string{}, args[1:]...), "-h"))
		}
		printOverview(e.stdout)
		return exitOK
	}
	prefix := ""
	for i, a := range args {
		p := strings.TrimSpace(prefix + " " + a)
		if c := findCommand(p); c != nil {
			return e.runCommand(ctx, c, args[i+1:])
		}
		if _, ok := groups[p]; ok && !strings.HasPrefix(a, "-") {
			prefix = p
			continue
		}
		if prefix != "" && isHelpArg(a) {
			printGroupUsage(e.stdout, prefix)
			return exitOK
		}
		if prefix != "" && strings.HasPrefix(a, "-") {
			// Connection flags before the subcommand, as in
			// "admin --addr host:port rp list": move them past the next word.
			fs := flag.NewFlagSet(prefix, flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			registerConnFlags(fs)
			err := fs.Parse(args[i:])
			if errors.Is(err, flag.ErrHelp) {
				printGroupUsage(e.stdout, prefix)
				return exitOK
			}
			if err == nil && fs.NArg() > 0 {
				rest := fs.Args()
				moved := args[i : len(args)-len(rest)]
				if moved[len(moved)-1] != "--" {
					next := append(append([]string{}, args[:i]...), rest[0])
					next = append(append(next, moved...), rest[1:]...)
					return e.dispatch(ctx, next)
				}
			}
		}
		if strings.HasPrefix(a, "-") && prefix != "" {
			fmt.Fprintf(e.stderr, "pushauth: unknown flag %q before a subcommand of %q\n\n", a, prefix)
		} else {
			fmt.Fprintf(e.stderr, "pushauth: unknown command %q\n\n", p)
		}
		if prefix == "" {
			printOverview(e.stderr)
		} else {
			printGroupUsage(e.stderr, prefix)
		}
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "pushauth: %q needs a subcommand\n\n", prefix)
	printGroupUsage(e.stderr, prefix)
	return exitUsage
}

func findCommand(path string) *command {
	for _, c := range commands {
		if c.path == path {
			return c
		}
	}
	return nil
}

// runCommand parses the flags of c and runs it.
func (e *env) runCommand(ctx context.Context, c *command, args []string) int {
	fs := flag.NewFlagSet("pushauth "+c.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are printed below
	fs.Usage = func() {}
	cf := registerConnFlags(fs)
	exec := c.setup(fs, cf)
	pos, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printCommandUsage(e.stdout, c, true)
		return exitOK
	}
	if err == nil {
		err = exec(ctx, e, pos)
		if err == nil {
			return exitOK
		}
		var ue *usageError
		if !errors.As(err, &ue) {
			printError(e.stderr, err, cf)
			return exitError
		}
	}
	// A flag parse error or a usageError.
	fmt.Fprintf(e.stderr, "pushauth %s: %v\n\n", c.path, err)
	printCommandUsage(e.stderr, c, false)
	return exitUsage
}

// parseInterspersed parses fs from args, allowing flags after positional
// arguments ("rp get portal --json"). Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	pos := []string{}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of positional arguments of a command.
func wantArgs(args []string, names ...string) error {
	if len(args) < len(names) {
		return usageErrorf("missing argument %s", strings.ToUpper(names[len(args)]))
	}
	if len(args) > len(names) {
		extra := args[len(names)]
		if extra == "true" || extra == "false" {
			return usageErrorf("unexpected argument %q (boolean flags take their value as --flag=%s)", extra, extra)
		}
		return usageErrorf("unexpected argument %q", extra)
	}
	return nil
}

// hintError is an error with advice on what to do about it, which
// printError shows instead of its generic hints.
type hintError struct {
	err  error
	hint string
}

func (h *hintError) Error() string { return h.err.Error() }
func (h *hintError) Unwrap() error { return h.err }

// withHint attaches a hint to err.
func withHint(err error, format string, a ...any) error {
	return &hintError{err: err, hint: fmt.Sprintf(format, a...)}
}

// printError prints a failed command's error as "pushauth: <code>: <message>",
// followed by the field violations of a BadRequest detail and the wait of a
// RetryInfo detail, if any, and a hint.
func printError(w io.Writer, err error, cf *connFlags) {
	hint := ""
	if h, ok := errors.AsType[*hintError](err); ok {
		err, hint = h.err, h.hint
	}
	st, ok := status.FromError(err)
	if !ok {
		fmt.Fprintf(w, "pushauth: %v\n", err)
		if hint != "" {
			fmt.Fprintf(w, "hint: %s\n", hint)
		}
		return
	}
	fmt.Fprintf(w, "pushauth: %s: %s\n", st.Code(), st.Message())
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				fmt.Fprintf(w, "  %s: %s\n", sanitize(v.GetField()), sanitize(v.GetDescription()))
			}
		case *errdetails.RetryInfo:
			if d.GetRetryDelay() != nil {
				wait := d.GetRetryDelay().AsDuration()
				fmt.Fprintf(w, "  try again in %s (after %s)\n", fmtWait(wait), fmtClock(time.Now().Add(wait)))
			}
		}
	}
	if hint != "" {
		fmt.Fprintf(w, "hint: %s\n", hint)
		return
	}
	switch st.Code() {
	case codes.Unavailable:
		if cf != nil && cf.target != "" {
			fmt.Fprintf(w, "hint: is the pushauth server running at %s? (--addr, PUSHAUTH_ADDR)\n", cf.target)
		}
	case codes.Unauthenticated:
		fmt.Fprintln(w, "hint: check the admin token (--token, --token-file, PUSHAUTH_ADMIN_TOKEN, ./data/admin-token)")
	}
}

func printOverview(w io.Writer) {
	fmt.Fprint(w, `pushauth is the operator tool of the pushauth server.

Usage:
  pushauth admin <command> [arguments] [flags]
  pushauth device <command> [arguments] [flags]
  pushauth rp <command> [arguments] [flags]
  pushauth help [command]

Commands:
`)
	tw := newTabWriter(w)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(c.path+" "+synopsis(c.args)), c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, `
Every admin command connects to --addr (default 127.0.0.1:8470) with the admin
token from --token, --token-file, PUSHAUTH_ADMIN_TOKEN(_FILE) or ./data/admin-token,
and prints a table, or the raw response with --json.

The device commands play an authenticator app against the server, for
development and tests. "device register" makes a P-256 key, verifies the phone
number by SMS and registers the device; the code comes from --code or --link,
else from the development SMS outbox when an admin token is found, else from
the terminal. The key and the device credential are kept in a state file
(--state, PUSHAUTH_DEVICE_STATE, default ./pushauth-device.json; mode 0600),
and the other device commands send that credential instead of the admin token,
to the server of the state file unless --addr is given. "device pair" shows the
two words to type on a login page; "device watch" shows requests as they come
and answers them with a decision signed by the device key. The TOTP seed of a
connected account is kept in the state file: "device code" shows its current
code, "device backup" stores the accounts encrypted with a passcode, and
"device restore" moves them to a new phone registered with the same number.

The rp commands play a login server: they send a relying party's API key from
--api-key-file, --api-key, PUSHAUTH_API_KEY_FILE or PUSHAUTH_API_KEY. "rp pair"
connects the phone showing two words to a user, "rp login" asks the user's
phones to approve and verifies the signed decision with the device's key; both
exit 0 only when the phone approved. "rp totp enroll" adds an authenticator
app (Google, Microsoft) for a user and "rp totp verify" checks a code from it
or from "device code"; "rp factors" lists what a user can verify with.

Run "pushauth help <command>" (e.g. "pushauth help admin rp create") for its flags.
`)
}

func printGroupUsage(w io.Writer, prefix string) {
	fmt.Fprintf(w, "Usage: pushauth %s <command> [arguments] [flags]\n\n%s.\n\nCommands:\n", prefix, capitalize(groups[prefix]))
	tw := newTabWriter(w)
	for _, c := range commands {
		if strings.HasPrefix(c.path, prefix+" ") {
			fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace(strings.TrimPrefix(c.path, prefix+" ")+" "+synopsis(c.args)), c.summary)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun \"pushauth help %s <command>\" for a command's flags.\n", prefix)
}

// printCommandUsage prints the usage of c; with full, also the connection
// flags, which are the same for every command.
func printCommandUsage(w io.Writer, c *command, full bool) {
	fmt.Fprintf(w, "Usage: pushauth %s %s\n\n%s.\n", c.path, c.args, capitalize(c.summary))
	if c.details != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.details))
	}
	own := flag.NewFlagSet(c.path, flag.ContinueOnError)
	c.setup(own, &connFlags{})
	if hasFlags(own) {
		fmt.Fprintln(w, "\nFlags:")
		printDefaults(w, own)
	}
	if !full {
		fmt.Fprintf(w, "\nRun \"pushauth help %s\" for the connection and output flags.\n", c.path)
		return
	}
	conn := flag.NewFlagSet(c.path, flag.ContinueOnError)
	registerConnFlags(conn)
	fmt.Fprintln(w, "\nConnection and output flags:")
	printDefaults(w, conn)
}

// printDefaults is fs.PrintDefaults with flags spelled "--name".
func printDefaults(w io.Writer, fs *flag.FlagSet) {
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if strings.HasPrefix(line, "  -") {
			line = "  --" + line[3:]
		}
		io.WriteString(w, line)
	}
}

// synopsis is the start of args up to the first optional part or flag.
func synopsis(args string) string {
	var words []string
	for _, f := range strings.Fields(args) {
		if strings.HasPrefix(f, "[") || strings.HasPrefix(f, "-") {
			break
		}
		words = append(words, f)
	}
	return strings.Join(words, " ")
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// givenFlags returns the names of the flags set on the command line.
func givenFlags(fs *flag.FlagSet) map[string]bool {
	m := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { m[f.Name] = true })
	return m
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// sortedKeys returns the keys of m in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
