package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// Platforms of --platform.
const (
	platformAndroid = "android"
	platformIOS     = "ios"
)

// platformFlag is a --platform value: android or ios.
type platformFlag struct{ name string }

func (f *platformFlag) String() string {
	if f == nil || f.name == "" {
		return platformAndroid
	}
	return f.name
}

func (f *platformFlag) Set(s string) error {
	switch strings.ToLower(strings.TrimPrefix(strings.ToUpper(s), "PLATFORM_")) {
	case platformAndroid:
		f.name = platformAndroid
	case platformIOS:
		f.name = platformIOS
	default:
		return errors.New("want android or ios")
	}
	return nil
}

func platformProto(name string) pushauthv1.Platform {
	if name == platformIOS {
		return pushauthv1.Platform_PLATFORM_IOS
	}
	return pushauthv1.Platform_PLATFORM_ANDROID
}

var (
	codePattern    = regexp.MustCompile(`^[0-9]{6}$`)
	smsCodePattern = regexp.MustCompile(`\b([0-9]{6})\b`)
	linkPattern    = regexp.MustCompile(`/v/([A-Za-z0-9_-]{16,64})`)
	linkURLPattern = regexp.MustCompile(`\S*/v/[A-Za-z0-9_-]+`)
	tokenPattern   = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)
	regionPattern  = regexp.MustCompile(`^([A-Za-z]{2})?$`)
)

// linkToken returns the token of an SMS link ("https://…/v/<token>") or a
// bare token; ok is false for anything else.
func linkToken(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if m := linkPattern.FindStringSubmatch(s); m != nil {
		return m[1], true
	}
	if tokenPattern.MatchString(s) {
		return s, true
	}
	return "", false
}

// smsProof finds the code and the link token in an SMS text.
func smsProof(body string) (code, link string) {
	if m := linkPattern.FindStringSubmatch(body); m != nil {
		link = m[1]
	}
	// The link's token may hold six digits in a row: look for the code
	// in the text without the link.
	if m := smsCodePattern.FindStringSubmatch(linkURLPattern.ReplaceAllString(body, " ")); m != nil {
		code = m[1]
	}
	return code, link
}

// normalizePhone returns number in E.164 if it can be understood here, else "".
func normalizePhone(number, region string) string {
	e164, err := phone.E164(number, region)
	if err != nil {
		return ""
	}
	return e164
}

// proof is the code or the link token that completes a verification.
type proof struct{ code, link string }

func (p proof) given() bool { return p.code != "" || p.link != "" }

func (p proof) set(req *pushauthv1.CompletePhoneVerificationRequest) {
	if p.link != "" {
		req.Proof = &pushauthv1.CompletePhoneVerificationRequest_LinkToken{LinkToken: p.link}
	} else {
		req.Proof = &pushauthv1.CompletePhoneVerificationRequest_Code{Code: p.code}
	}
}

var deviceRegisterCmd = &command{
	path: "device register",
	args: "--phone NUMBER [--region CC] [--locale LANG] [--code CODE | --link URL] [--platform android|ios] " +
		"[--name NAME] [--push-token TOKEN] [--state FILE] [--force] [flags]",
	summary: "register a simulated phone: verify its number by SMS, keep its key and credential in a state file",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		phone := fs.String("phone", "", "the phone `number`: E.164 (+31612345678), or national with --region (required)")
		region := fs.String("region", "", "ISO 3166 `region` of a number without country code, e.g. NL")
		locale := fs.String("locale", "", "`language` of the SMS, e.g. nl (default: the server's, English)")
		code := fs.String("code", "", "the 6-digit `code` from the SMS; finishes a pending verification in the state file, if any")
		link := fs.String("link", "", "the `link` from the SMS (https://…/v/TOKEN) or its token, instead of --code")
		var platform platformFlag
		fs.Var(&platform, "platform", "the phone's platform, `android|ios` (default android); decides the public key format: SubjectPublicKeyInfo or raw point")
		name := fs.String("name", "pushauth CLI", "device `name` shown in lists")
		pushToken := fs.String("push-token", "", "FCM or APNs `token` to register (default: a random fake one)")
		appVersion := fs.String("app-version", "cli", "app `version` to report")
		state := fs.String("state", "", "device state `file` (env "+envDeviceState+"; default ./"+defaultStateFile+")")
		force := fs.Bool("force", false, "replace a state file that holds a registered device (the device stays registered on the server)")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			r := &registerRun{e: e, cf: cf, path: statePath(e, *state),
				phone: strings.TrimSpace(*phone), region: strings.ToUpper(strings.TrimSpace(*region)), locale: *locale,
				platform: platform.String(), platformGiven: givenFlags(fs)["platform"],
				name: *name, pushToken: *pushToken, appVersion: *appVersion, force: *force}
			switch {
			case r.phone == "":
				return usageErrorf("--phone is required")
			case !regionPattern.MatchString(r.region):
				return usageErrorf("--region must be a two-letter ISO 3166 code such as NL")
			case *code != "" && *link != "":
				return usageErrorf("use either --code or --link, not both")
			case *code != "" && !codePattern.MatchString(strings.TrimSpace(*code)):
				return usageErrorf("--code must be the 6 digits from the SMS")
			case strings.TrimSpace(r.name) == "":
				return usageErrorf("--name must not be empty")
			}
			r.proof.code = strings.TrimSpace(*code)
			if *link != "" {
				tok, ok := linkToken(*link)
				if !ok {
					return usageErrorf("--link must be the link from the SMS (https://…/v/TOKEN) or its token")
				}
				r.proof.link = tok
			}
			if r.pushToken == "" {
				r.pushToken = randomPushToken(r.platform)
			}
			return r.run(ctx)
		}
	},
}

// registerRun is one "device register".
type registerRun struct {
	e    *env
	cf   *connFlags
	path string

	phone, region, locale string
	platform              string
	platformGiven         bool
	name, pushToken       string
	appVersion            string
	force                 bool
	proof                 proof

	c   *conn
	st  *deviceState
	key *phone.Key
}

func (r *registerRun) run(ctx context.Context) error {
	old, err := loadState(r.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = nil
	case err != nil:
		return err
	case old.registered() && !r.force:
		return fmt.Errorf("%s already holds the registered device %s (%s): use --force to replace it, or --state FILE for another phone; "+
			"\"pushauth device deregister\" revokes it on the server", r.path, old.DeviceID, old.display())
	}
	if err := checkStateDir(r.path); err != nil {
		return err
	}
	tokens := tokenOptional
	if r.proof.given() {
		tokens = tokenUnused
	}
	r.c, err = r.cf.dialWith(r.e, dialOptions{token: tokens, device: true})
	if err != nil {
		return err
	}
	defer r.c.close()
	if old != nil && old.registered() {
		fmt.Fprintf(r.e.stderr, "Replacing device %s in %s; it stays registered on the server.\n", old.DeviceID, r.path)
	}

	e164 := normalizePhone(r.phone, r.region)
	if r.resumable(old, e164) {
		r.st = old
		if r.key, err = old.privateKey(); err != nil {
			return err
		}
		fmt.Fprintf(r.e.stderr, "Finishing the pending verification for %s from %s.\n", old.display(), r.path)
	} else if err := r.start(ctx, e164); err != nil {
		return err
	}

	p := r.proof
	if !p.given() {
		if p, err = r.findProof(ctx, e164); err != nil {
			return err
		}
	}
	return r.complete(ctx, p)
}

// resumable reports whether old holds a pending verification that the
// given code or link can finish: same server, number and platform.
func (r *registerRun) resumable(old *deviceState, e164 string) bool {
	if old == nil || !old.pending() || !r.proof.given() || old.Addr != r.cf.target {
		return false
	}
	if r.platformGiven && old.Platform != r.platform {
		return false
	}
	if e164 != "" {
		return old.PhoneNumber == e164
	}
	return old.PhoneNumber == r.phone && old.Region == r.region
}

// start makes a new key, asks for the SMS and saves the pending state.
func (r *registerRun) start(ctx context.Context, e164 string) error {
	key, err := newDeviceKey(r.platform)
	if err != nil {
		return err
	}
	encoded, err := encodeKey(key)
	if err != nil {
		return err
	}
	cctx, cancel := r.c.ctxWith(ctx, "")
	resp, err := r.c.device.StartPhoneVerification(cctx, &pushauthv1.StartPhoneVerificationRequest{
		PhoneNumber: r.phone, DefaultRegion: r.region, Locale: r.locale,
	})
	cancel()
	if err != nil {
		return err
	}
	st := &deviceState{
		Addr: r.cf.target, Platform: r.platform, PublicKeyFormat: string(key.Format), PrivateKey: encoded,
		PhoneNumber: r.phone, Region: r.region, MaskedPhoneNumber: resp.GetMaskedPhoneNumber(),
		VerificationID: resp.GetVerificationId(),
	}
	if e164 != "" {
		st.PhoneNumber, st.Region = e164, ""
	}
	if resp.GetExpireTime() != nil {
		t := resp.GetExpireTime().AsTime()
		st.VerificationExpireTime = &t
	}
	msg := "SMS sent to " + sanitize(resp.GetMaskedPhoneNumber())
	if resp.GetExpireTime() != nil {
		msg += ", expires " + fmtClock(resp.GetExpireTime().AsTime())
	}
	if resp.GetResendTime() != nil {
		msg += "; another SMS can be asked for after " + fmtClock(resp.GetResendTime().AsTime())
	}
	fmt.Fprintln(r.e.stderr, msg)
	if err := saveState(r.path, st); err != nil {
		return err
	}
	r.st, r.key = st, key
	return nil
}

// findProof gets the code: from the development outbox if there is an admin
// token, else from the user.
func (r *registerRun) findProof(ctx context.Context, e164 string) (proof, error) {
	if r.c.token != "" {
		p, err := r.fromOutbox(ctx, e164)
		switch status.Code(err) {
		case codes.OK:
			return p, nil
		case codes.Unauthenticated, codes.PermissionDenied:
			return proof{}, err // the admin token's hint
		default:
			return proof{}, withHint(err, "the verification is pending in %s: run the command again with --code CODE to finish it", r.path)
		case codes.FailedPrecondition:
		}
		fmt.Fprintf(r.e.stderr, "The server has no SMS outbox (%s).\n", sanitize(status.Convert(err).Message()))
	}
	line, err := r.e.prompt(ctx, "Enter the 6-digit code from the SMS:")
	if err != nil {
		return proof{}, err
	}
	if codePattern.MatchString(line) {
		return proof{code: line}, nil
	}
	if tok, ok := linkToken(line); ok && strings.Contains(line, "/v/") {
		return proof{link: tok}, nil
	}
	if line == "" {
		return proof{}, fmt.Errorf("no code entered; the verification is pending in %s: "+
			"run the command again with --code CODE (or --link URL) to finish it", r.path)
	}
	return proof{}, fmt.Errorf("that is neither a 6-digit code nor the link from the SMS; the verification is pending in %s: "+
		"run the command again with --code CODE to finish it", r.path)
}

// fromOutbox reads the newest SMS to the number from the outbox.
func (r *registerRun) fromOutbox(ctx context.Context, e164 string) (proof, error) {
	fmt.Fprintln(r.e.stderr, "Reading the SMS from the server's development outbox (admin token found).")
	req := &pushauthv1.ListOutboxMessagesRequest{PhoneNumber: e164, Limit: 1}
	if e164 == "" {
		// The number could not be normalised here: look through the
		// newest messages for one to the masked number.
		req.Limit = 100
	}
	cctx, cancel := r.c.ctx(ctx)
	resp, err := r.c.admin.ListOutboxMessages(cctx, req)
	cancel()
	if err != nil {
		return proof{}, err
	}
	for _, m := range resp.GetMessages() {
		if e164 == "" && phone.Mask(m.GetPhoneNumber()) != r.st.MaskedPhoneNumber {
			continue
		}
		code, link := smsProof(m.GetBody())
		switch {
		case code != "":
			return proof{code: code}, nil
		case link != "":
			return proof{link: link}, nil
		}
		return proof{}, fmt.Errorf("the newest SMS to %s in the outbox holds no code", sanitize(r.st.MaskedPhoneNumber))
	}
	return proof{}, fmt.Errorf("no SMS to %s in the server's outbox", sanitize(r.st.MaskedPhoneNumber))
}

// complete signs the registration string and registers the device.
func (r *registerRun) complete(ctx context.Context, p proof) error {
	verID := r.st.VerificationID
	reg, err := r.key.Registration(verID, phone.DeviceInfo{
		Platform: platformProto(r.st.Platform), PushToken: r.pushToken, Name: r.name, AppVersion: r.appVersion,
	})
	if err != nil {
		return err
	}
	req := &pushauthv1.CompletePhoneVerificationRequest{VerificationId: verID, Device: reg}
	p.set(req)
	cctx, cancel := r.c.ctxWith(ctx, "")
	resp, err := r.c.device.CompletePhoneVerification(cctx, req)
	cancel()
	if err != nil {
		return r.completeError(err)
	}
	dev := resp.GetDevice()
	now := time.Now().UTC()
	r.st.VerificationID, r.st.VerificationExpireTime = "", nil
	r.st.DeviceID, r.st.DeviceCredential = dev.GetId(), resp.GetDeviceCredential()
	r.st.MaskedPhoneNumber = dev.GetMaskedPhoneNumber()
	r.st.RegisterTime, r.st.Deregistered, r.st.DeregisterTime = &now, false, nil
	if err := saveState(r.path, r.st); err != nil {
		return fmt.Errorf("registered device %s, but its credential is lost: %w", dev.GetId(), err)
	}
	fmt.Fprintf(r.e.stderr, "Registered device %s for %s; its key and credential are in %s (keep that file private).\n",
		sanitize(dev.GetId()), sanitize(dev.GetMaskedPhoneNumber()), r.path)
	return output(r.e.stdout, r.cf, dev, func(w io.Writer) error {
		return printDevices(w, dev)
	})
}

// completeError explains a failed CompletePhoneVerification and forgets a
// verification that cannot be finished any more.
func (r *registerRun) completeError(err error) error {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.InvalidArgument:
		return withHint(err, "the verification is still pending in %s: run the command again with the right --code (or --link) "+
			"to retry without a new SMS", r.path)
	case codes.FailedPrecondition, codes.NotFound:
		r.st.VerificationID, r.st.VerificationExpireTime = "", nil
		if serr := saveState(r.path, r.st); serr != nil {
			fmt.Fprintf(r.e.stderr, "pushauth: %v\n", serr)
		}
		return withHint(err, "run \"pushauth device register --phone NUMBER\" without --code or --link for a new SMS")
	}
	return err
}

// prompt asks a question on stderr and reads one line of stdin. It gives up
// when ctx ends (Ctrl-C), which a blocked read would not notice.
func (e *env) prompt(ctx context.Context, question string) (string, error) {
	fmt.Fprint(e.stderr, question+" ")
	line, err := e.readLine(ctx)
	switch {
	case ctx.Err() != nil:
		fmt.Fprintln(e.stderr)
		return "", ctx.Err()
	case errors.Is(err, io.EOF):
		fmt.Fprintln(e.stderr) // the user's Enter is missing
	case err != nil:
		return "", fmt.Errorf("cannot read the code: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// readLine returns the next line of stdin, without its end, or io.EOF at
// the end of stdin. It gives up with ctx's error when ctx ends. One
// goroutine reads stdin for all calls (see stdinLines), so a question given
// up on leaves its answer to the next one and nothing is lost between
// questions.
func (e *env) readLine(ctx context.Context) (string, error) {
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case line, ok := <-e.stdinLines():
		if !ok {
			if e.linesErr != nil {
				return "", e.linesErr
			}
			return "", io.EOF
		}
		return line, nil
	}
}

// stdinLines returns the lines of stdin, without their ends, as one
// goroutine reads them; the channel closes at the end of stdin, and then
// e.linesErr says why if it was not io.EOF.
func (e *env) stdinLines() <-chan string {
	e.linesOnce.Do(func() {
		e.lines = make(chan string)
		go func() {
			defer close(e.lines)
			r := bufio.NewReader(e.stdin)
			for {
				line, err := r.ReadString('\n')
				if line != "" {
					e.lines <- strings.TrimRight(line, "\r\n")
				}
				if err != nil {
					if !errors.Is(err, io.EOF) {
						e.linesErr = err
					}
					return
				}
			}
		}()
	})
	return e.lines
}

// randomPushToken is a fake push token of the platform's form: an APNs
// device token is 32 bytes in hex.
func randomPushToken(platform string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	if platform == platformIOS {
		return hex.EncodeToString(b)
	}
	return "cli-fake-fcm-" + hex.EncodeToString(b[:16])
}

// deviceCall is what the device commands after registration share: the state
// file, a connection sending its credential, and errors explained.
type deviceCall struct {
	path string
	st   *deviceState
	c    *conn
}

func openDevice(e *env, cf *connFlags, stateFlag string) (*deviceCall, error) {
	path := statePath(e, stateFlag)
	st, err := loadRegistered(path)
	if err != nil {
		return nil, err
	}
	c, err := cf.dialWith(e, dialOptions{token: tokenUnused, device: true, defaultAddr: st.Addr})
	if err != nil {
		return nil, err
	}
	return &deviceCall{path: path, st: st, c: c}, nil
}

func (d *deviceCall) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return d.c.ctxWith(parent, d.st.DeviceCredential)
}

// explain adds what to do to the errors of a device credential.
func (d *deviceCall) explain(err error) error {
	switch status.Code(err) {
	case codes.Unauthenticated:
		return withHint(err, "the server at %s does not accept the device credential in %s: "+
			"is it the server the device registered with (--addr)? Register again with "+
			"\"pushauth device register --force --state %s\"", d.c.cc.Target(), d.path, d.path)
	case codes.PermissionDenied:
		return withHint(err, "device %s has been deregistered: its credential no longer works; "+
			"register again with \"pushauth device register --force --state %s\"", d.st.DeviceID, d.path)
	}
	return err
}

// deviceRun is the shape of most device commands: open the device of the
// state file, make one call with its credential and the time limit, explain
// a refused credential, and print the response (or its JSON with --json).
func deviceRun[R proto.Message](ctx context.Context, e *env, cf *connFlags, state string,
	call func(ctx context.Context, d *deviceCall) (R, error), print func(w io.Writer, d *deviceCall, resp R) error) error {
	d, err := openDevice(e, cf, state)
	if err != nil {
		return err
	}
	defer d.c.close()
	cctx, cancel := d.ctx(ctx)
	resp, err := call(cctx, d)
	cancel()
	if err != nil {
		return d.explain(err)
	}
	return output(e.stdout, cf, resp, func(w io.Writer) error { return print(w, d, resp) })
}

var deviceShowCmd = &command{
	path:    "device show",
	args:    "[--state FILE] [flags]",
	summary: "show the registered device of a state file, as the server knows it",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := fs.String("state", "", "device state `file` (env "+envDeviceState+"; default ./"+defaultStateFile+")")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			return deviceRun(ctx, e, cf, *state, func(ctx context.Context, d *deviceCall) (*pushauthv1.GetDeviceResponse, error) {
				return d.c.device.GetDevice(ctx, &pushauthv1.GetDeviceRequest{})
			}, func(w io.Writer, _ *deviceCall, resp *pushauthv1.GetDeviceResponse) error {
				return printDevices(w, resp.GetDevice())
			})
		}
	},
}

// deviceFlagPaths maps the flags of "device update" to UpdateDevice's mask.
var deviceFlagPaths = map[string]string{
	"push-token":  "push_token",
	"name":        "name",
	"app-version": "app_version",
}

var deviceUpdateCmd = &command{
	path:    "device update",
	args:    "[--push-token TOKEN] [--name NAME] [--app-version V] [--state FILE] [flags]",
	summary: "change the push token, name or app version of the registered device (only the flags given)",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		pushToken := fs.String("push-token", "", "new FCM or APNs `token`; clears a \"push token dead\" mark")
		name := fs.String("name", "", "new device `name`")
		appVersion := fs.String("app-version", "", "new app `version`")
		state := fs.String("state", "", "device state `file` (env "+envDeviceState+"; default ./"+defaultStateFile+")")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			mask := &fieldmaskpb.FieldMask{}
			fs.Visit(func(f *flag.Flag) {
				if path, ok := deviceFlagPaths[f.Name]; ok {
					mask.Paths = append(mask.Paths, path)
				}
			})
			if len(mask.Paths) == 0 {
				return usageErrorf("nothing to change: give at least one of --push-token, --name, --app-version")
			}
			return deviceRun(ctx, e, cf, *state, func(ctx context.Context, d *deviceCall) (*pushauthv1.UpdateDeviceResponse, error) {
				return d.c.device.UpdateDevice(ctx, &pushauthv1.UpdateDeviceRequest{
					PushToken: *pushToken, Name: *name, AppVersion: *appVersion, UpdateMask: mask,
				})
			}, func(w io.Writer, _ *deviceCall, resp *pushauthv1.UpdateDeviceResponse) error {
				return printDevices(w, resp.GetDevice())
			})
		}
	},
}

var deviceDeregisterCmd = &command{
	path:    "device deregister",
	args:    "[--state FILE] [flags]",
	summary: "revoke the registered device's credential on the server, and drop it from the state file",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := fs.String("state", "", "device state `file` (env "+envDeviceState+"; default ./"+defaultStateFile+")")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			return deviceRun(ctx, e, cf, *state, func(ctx context.Context, d *deviceCall) (*pushauthv1.DeregisterDeviceResponse, error) {
				resp, err := d.c.device.DeregisterDevice(ctx, &pushauthv1.DeregisterDeviceRequest{})
				if err != nil {
					return nil, err
				}
				now := time.Now().UTC()
				d.st.Deregistered, d.st.DeregisterTime, d.st.DeviceCredential = true, &now, ""
				if err := saveState(d.path, d.st); err != nil {
					return nil, fmt.Errorf("device %s is deregistered, but: %w", d.st.DeviceID, err)
				}
				return resp, nil
			}, func(w io.Writer, d *deviceCall, _ *pushauthv1.DeregisterDeviceResponse) error {
				_, err := fmt.Fprintf(w, "Deregistered device %s (%s): its credential no longer works. The key stays in %s.\n",
					sanitize(d.st.DeviceID), sanitize(d.st.display()), d.path)
				return err
			})
		}
	},
}

// printDevices prints devices as a table.
func printDevices(w io.Writer, devs ...*pushauthv1.Device) error {
	t := newTable(w, "ID", "PLATFORM", "NAME", "PHONE", "APP VERSION", "PUSH TOKEN", "CREATED", "LAST SEEN")
	for _, d := range devs {
		push := "ok"
		if d.GetPushTokenDead() {
			push = "dead"
		}
		t.row(d.GetId(), fmtPlatform(d.GetPlatform()), d.GetName(), d.GetMaskedPhoneNumber(), d.GetAppVersion(),
			push, fmtTime(d.GetCreateTime()), fmtTime(d.GetLastSeenTime()))
	}
	return t.flush()
}

// fmtPlatform names a platform as --platform does; "" if unspecified.
func fmtPlatform(p pushauthv1.Platform) string {
	switch p {
	case pushauthv1.Platform_PLATFORM_UNSPECIFIED:
		return ""
	case pushauthv1.Platform_PLATFORM_ANDROID:
		return platformAndroid
	case pushauthv1.Platform_PLATFORM_IOS:
		return platformIOS
	}
	return p.String()
}
