package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// numberPattern is what --number and a typed number may be.
var numberPattern = regexp.MustCompile(`^[0-9]{1,6}$`)

// stateFlag registers --state, the device state file.
func stateFlag(fs *flag.FlagSet) *string {
	return fs.String("state", "", "device state `file` (env "+envDeviceState+"; default ./"+defaultStateFile+")")
}

// answer signs decision on dr, as shown, with the device key and sends it.
// It refuses to sign (phone.ErrContextMismatch) when the server's context
// hash differs from the hash of what was shown.
func (d *deviceCall) answer(ctx context.Context, e *env, dr *pushauthv1.DeviceRequest, decision pushauthv1.Decision, number string) (*pushauthv1.Request, error) {
	key, err := d.st.privateKey()
	if err != nil {
		return nil, err
	}
	at := e.clock().Truncate(time.Second)
	req, err := key.Respond(d.st.DeviceID, dr, phone.Answer{Decision: decision, Number: number, SignedAt: at})
	if errors.Is(err, phone.ErrContextMismatch) {
		return nil, fmt.Errorf("refusing to sign request %s: the server's context hash %s differs from %s, the hash of what is shown here",
			sanitize(dr.GetId()), sanitize(dr.GetContextSha256()), phone.Shown(dr))
	}
	if err != nil {
		return nil, fmt.Errorf("refusing to sign request %s: %v", sanitize(dr.GetId()), err)
	}
	cctx, cancel := d.ctx(ctx)
	defer cancel()
	resp, err := d.c.device.RespondToRequest(cctx, req)
	if err != nil {
		if status.Code(err) == codes.PermissionDenied {
			// A bad signature or signing time: the server says which.
			return nil, withHint(err, "the decision is signed at this computer's time, %s; it must be within 5 minutes of the server's clock",
				at.UTC().Format(time.RFC3339))
		}
		return nil, d.explain(err)
	}
	// An approved pairing hands over the connection's code seed, once: a
	// secret kept in the state file, never shown.
	if seed := resp.GetTotpSeed(); seed.GetSecret() != "" && dr.GetKind() == pushauthv1.RequestKind_REQUEST_KIND_PAIRING {
		if err := d.keepSeed(ctx, e, dr, seed); err != nil {
			fmt.Fprintf(e.stderr, "pushauth: the account is connected, but its offline code seed was not kept: %v\n", err)
		}
	}
	return resp.GetRequest(), nil
}

// keepSeed stores the code seed of a newly connected account in the state
// file, with the connection's id when ListConnections finds it.
func (d *deviceCall) keepSeed(ctx context.Context, e *env, dr *pushauthv1.DeviceRequest, seed *pushauthv1.TotpSeed) error {
	a := stateAccount{
		RelyingPartyName: dr.GetRelyingPartyName(), RelyingPartyID: dr.GetRelyingPartyId(),
		AccountLabel: dr.GetAccountLabel(), RequestID: dr.GetId(),
		Secret: seed.GetSecret(), Digits: int(seed.GetDigits()), PeriodSeconds: int(seed.GetPeriodSeconds()), Algorithm: seed.GetAlgorithm(),
	}
	cctx, cancel := d.ctx(ctx)
	conns, err := d.c.device.ListConnections(cctx, &pushauthv1.ListConnectionsRequest{})
	cancel()
	if err == nil {
		for _, c := range conns.GetConnections() {
			if c.GetRelyingPartyId() == a.RelyingPartyID && c.GetAccountLabel() == a.AccountLabel {
				a.ConnectionID = c.GetId()
			}
		}
	}
	d.st.putAccount(a)
	if err := saveState(d.path, d.st); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "Offline codes for %s at %s are kept in %s (\"pushauth device code\").\n",
		sanitize(a.AccountLabel), sanitize(a.RelyingPartyName), d.path)
	return nil
}

// getRequest fetches a request's details, which tells its relying party the
// app has seen it.
func (d *deviceCall) getRequest(ctx context.Context, id string) (*pushauthv1.DeviceRequest, error) {
	cctx, cancel := d.ctx(ctx)
	defer cancel()
	resp, err := d.c.device.GetRequest(cctx, &pushauthv1.DeviceServiceGetRequestRequest{RequestId: id})
	if err != nil {
		return nil, d.explain(err)
	}
	return resp.GetRequest(), nil
}

// listPending lists the requests waiting for the device.
func (d *deviceCall) listPending(ctx context.Context) (*pushauthv1.ListPendingRequestsResponse, error) {
	cctx, cancel := d.ctx(ctx)
	defer cancel()
	resp, err := d.c.device.ListPendingRequests(cctx, &pushauthv1.ListPendingRequestsRequest{})
	return resp, d.explain(err)
}

// watchEvent is one message of WatchRequests, or the error that ended it.
type watchEvent struct {
	resp *pushauthv1.WatchRequestsResponse
	err  error
}

// errClosed is ask's error when the request asked about ended elsewhere.
var errClosed = errors.New("the request was closed")

// watcher reads WatchRequests and asks the user about what comes.
type watcher struct {
	e       *env
	d       *deviceCall
	events  <-chan watchEvent // nil once the stream ended
	end     error             // why the stream ended
	backlog []*pushauthv1.WatchRequestsResponse
	stop    context.CancelFunc // ends the stream
}

// watch opens WatchRequests; its messages arrive on w.events until ctx ends
// or w.stop is called, which the caller must do.
func (d *deviceCall) watch(ctx context.Context, e *env) (*watcher, error) {
	sctx, cancel := d.c.streamCtx(ctx, d.st.DeviceCredential)
	stream, err := d.c.device.WatchRequests(sctx, &pushauthv1.WatchRequestsRequest{})
	if err != nil {
		cancel()
		return nil, d.explain(err)
	}
	ch := make(chan watchEvent)
	go func() {
		defer cancel()
		// Requests already passed on: a re-opened watch sends the pending
		// ones again.
		seen := map[string]bool{}
		pause := 250 * time.Millisecond // before re-opening; grows while it keeps failing
		for {
			resp, err := stream.Recv()
			if err == nil {
				pause = 250 * time.Millisecond
			}
			if err != nil && status.Code(err) == codes.Unavailable && sctx.Err() == nil {
				// The server stopped or the connection dropped: watch again,
				// on whichever replica answers, instead of giving up.
				if again := d.rewatch(sctx, e, err, &pause); again != nil {
					stream = again
					continue
				}
			}
			if id := resp.GetRequest().GetId(); err == nil && id != "" {
				if seen[id] {
					continue
				}
				seen[id] = true
			}
			select {
			case ch <- watchEvent{resp, err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return &watcher{e: e, d: d, events: ch, stop: cancel}, nil
}

// rewatch re-opens WatchRequests after the stream broke with lost, after
// *pause, which doubles (up to 5 s) with each try, until it opens or ctx
// ends (nil).
func (d *deviceCall) rewatch(ctx context.Context, e *env, lost error, pause *time.Duration) pushauthv1.DeviceService_WatchRequestsClient {
	fmt.Fprintf(e.stderr, "Lost the connection to the server (%s); reconnecting.\n", sanitize(status.Convert(lost).Message()))
	for {
		t := time.NewTimer(*pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		*pause = min(2**pause, 5*time.Second)
		// WaitForReady: wait for the server to be back rather than fail
		// at once while it is down.
		stream, err := d.c.device.WatchRequests(ctx, &pushauthv1.WatchRequestsRequest{}, grpc.WaitForReady(true))
		if err == nil {
			fmt.Fprintln(e.stderr, "Reconnected; watching again.")
			return stream
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// take records a stream event: its message goes to the backlog, its error
// ends the stream. It returns the message.
func (w *watcher) take(ev watchEvent) *pushauthv1.WatchRequestsResponse {
	if ev.err != nil {
		w.events, w.end = nil, ev.err
		if errors.Is(ev.err, io.EOF) {
			w.end = errors.New("the server ended the watch")
		}
		return nil
	}
	return ev.resp
}

// next returns the next message: from the backlog, else from the stream.
func (w *watcher) next(ctx context.Context) (*pushauthv1.WatchRequestsResponse, error) {
	for {
		if len(w.backlog) > 0 {
			m := w.backlog[0]
			w.backlog = w.backlog[1:]
			return m, nil
		}
		if w.events == nil {
			return nil, w.d.explain(w.end)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case ev := <-w.events:
			if m := w.take(ev); m != nil {
				return m, nil
			}
		}
	}
}

// closedLater reports whether the backlog says request id was closed.
func (w *watcher) closedLater(id string) bool {
	for _, m := range w.backlog {
		if m.GetClosedRequestId() == id {
			return true
		}
	}
	return false
}

// ask prints question on stderr and reads a line of stdin. Meanwhile the
// stream's messages go to the backlog; if request id is closed first, ask
// gives up with errClosed. At the end of stdin it returns io.EOF.
func (w *watcher) ask(ctx context.Context, question, id string) (string, error) {
	fmt.Fprint(w.e.stderr, question+" ")
	lines := w.e.stdinLines()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(w.e.stderr)
			return "", ctx.Err()
		case line, ok := <-lines:
			if !ok {
				fmt.Fprintln(w.e.stderr)
				if w.e.linesErr != nil {
					return "", fmt.Errorf("cannot read the answer: %w", w.e.linesErr)
				}
				return "", io.EOF
			}
			return strings.TrimSpace(line), nil
		case ev := <-w.events:
			m := w.take(ev)
			if m == nil {
				continue
			}
			if m.GetClosedRequestId() == id {
				fmt.Fprintln(w.e.stderr)
				return "", errClosed
			}
			w.backlog = append(w.backlog, m)
		}
	}
}

// printDeviceRequest shows a request as the app would, with its expiry
// counted from e's clock.
func printDeviceRequest(w io.Writer, e *env, dr *pushauthv1.DeviceRequest) error {
	what := "Login request"
	if dr.GetKind() == pushauthv1.RequestKind_REQUEST_KIND_PAIRING {
		what = "Pairing request"
	}
	fmt.Fprintf(w, "%s %s from %s\n", what, sanitize(dr.GetId()), sanitize(dr.GetRelyingPartyName()))
	tw := newTabWriter(w)
	c := dr.GetContext()
	for _, kv := range [][2]string{
		{"relying party", dr.GetRelyingPartyName()},
		{"account", dr.GetAccountLabel()},
		{"app", c.GetAppName()},
		{"IP address", c.GetIpAddress()},
		{"location", c.GetLocation()},
		{"browser", c.GetBrowser()},
		{"action", c.GetAction()},
	} {
		v := sanitize(kv[1])
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "  %s:\t%s\n", kv[0], v)
	}
	switch dr.GetNumberMatching() {
	case pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER:
		fmt.Fprintf(tw, "  number:\t%s\n", "type the 2-digit number the login page shows")
	case pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE:
		fmt.Fprintf(tw, "  number:\t%s\n", "type the 6-digit code the login page shows")
	}
	fmt.Fprintf(tw, "  expires:\t%s\n", fmtExpiry(e, dr.GetExpireTime()))
	return tw.Flush()
}

// fmtExpiry says when ts is, and how long until then by e's clock.
func fmtExpiry(e *env, ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	t := ts.AsTime()
	left := t.Sub(e.clock())
	if left <= 0 {
		return fmtClock(t) + " (expired)"
	}
	return fmtClock(t) + " (in " + fmtWait(left) + ")"
}

// needsNumber reports whether approving dr takes the number from the
// login page.
func needsNumber(dr *pushauthv1.DeviceRequest) bool {
	switch dr.GetNumberMatching() {
	case pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER, pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_CODE:
		return true
	}
	return false
}

// deviceOutcome says what the phone's answer did, for its user.
func deviceOutcome(dr *pushauthv1.DeviceRequest, r *pushauthv1.Request) string {
	label, rp := sanitize(dr.GetAccountLabel()), sanitize(dr.GetRelyingPartyName())
	pairing := dr.GetKind() == pushauthv1.RequestKind_REQUEST_KIND_PAIRING
	switch r.GetStatus() {
	case pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED:
		if pairing {
			return fmt.Sprintf("Connected: account %s at %s now asks this device to approve its logins.", label, rp)
		}
		return fmt.Sprintf("Approved: the login of %s at %s goes on.", label, rp)
	case pushauthv1.RequestStatus_REQUEST_STATUS_DENIED:
		switch r.GetReason() {
		case pushauthv1.DecisionReason_DECISION_REASON_NUMBER_MISMATCH:
			return "Denied: the number typed is not the one on the login page (number mismatch)."
		case pushauthv1.DecisionReason_DECISION_REASON_FRAUD_REPORT:
			return fmt.Sprintf("Reported as fraud: the login is denied, %s is told, and pushes for %s are muted for an hour.", rp, label)
		}
		if pairing {
			return fmt.Sprintf("Denied: account %s at %s is not connected.", label, rp)
		}
		return fmt.Sprintf("Denied: the login of %s at %s is refused.", label, rp)
	}
	return "The request is " + fmtStatus(r.GetStatus(), r.GetReason()) + "."
}

var devicePairCmd = &command{
	path:    "device pair",
	args:    "[--yes | --deny] [--state FILE] [--timeout 10m] [flags]",
	summary: "show two words to type on a login page, then confirm connecting the account that used them",
	details: `The words work once, for 10 minutes. When a login page's server claims them
(e.g. "pushauth rp pair --phrase WORDS --user USER"), the device gets a pairing
request; the command shows it and asks "Connect account ... to ...? [y/N]",
unless --yes or --deny answers. The answer is signed with the device key over
what was shown. --timeout limits each call and how long to wait for the words
to be used (default: until they expire). The connection's TOTP seed, which the
server hands over on approval, is kept in the state file (never shown) for
"pushauth device code" and "pushauth device backup".`,
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := stateFlag(fs)
		yes := fs.Bool("yes", false, "approve the pairing request without asking")
		deny := fs.Bool("deny", false, "deny the pairing request without asking")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			if *yes && *deny {
				return usageErrorf("use either --yes or --deny, not both")
			}
			d, err := openDevice(e, cf, *state)
			if err != nil {
				return err
			}
			defer d.c.close()
			p := &pairRun{e: e, cf: cf, d: d, yes: *yes, deny: *deny, limit: -1}
			if givenFlags(cf.fs)["timeout"] {
				p.limit = cf.timeout
			}
			return p.run(ctx)
		}
	},
}

// pairRun is one "device pair".
type pairRun struct {
	e         *env
	cf        *connFlags
	d         *deviceCall
	yes, deny bool
	limit     time.Duration // how long to wait for the words to be used: 0 no limit, <0 until they expire
}

func (p *pairRun) run(ctx context.Context) error {
	e, d := p.e, p.d
	// Pairing requests that wait already come from older words.
	old, err := d.listPending(ctx)
	if err != nil {
		return err
	}
	stale := map[string]bool{}
	for _, r := range old.GetRequests() {
		stale[r.GetId()] = true
	}
	cctx, cancel := d.ctx(ctx)
	phrase, err := d.c.device.CreatePairingPhrase(cctx, &pushauthv1.CreatePairingPhraseRequest{})
	cancel()
	if err != nil {
		return d.explain(err)
	}
	limit := p.limit
	if limit < 0 {
		limit = 10 * time.Minute
		if left := phrase.GetExpireTime().AsTime().Sub(e.clock()); phrase.GetExpireTime() != nil && left > 0 {
			limit = left
		}
	}
	wctx := ctx
	if limit > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, limit)
		defer cancel()
	}
	w, err := d.watch(wctx, e)
	if err != nil {
		return err
	}
	defer w.stop()
	if p.cf.json {
		if err := printJSON(e.stdout, phrase); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "Type these words on the login page: %s\n", sanitize(phrase.GetPhrase()))
		fmt.Fprintf(e.stdout, "They work once, until %s.\n", fmtExpiry(e, phrase.GetExpireTime()))
	}
	fmt.Fprintln(e.stderr, "Waiting for the login page to use them (Ctrl-C to stop).")
	for {
		m, err := w.next(wctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return errors.New("stopped before the words were used")
			case wctx.Err() != nil:
				return fmt.Errorf("the words were not used within %s; run the command again for new ones", fmtWait(limit))
			}
			return err
		}
		dr := m.GetRequest()
		if dr == nil {
			if n := m.GetNotice(); n != "" {
				fmt.Fprintf(e.stderr, "Notice: %s\n", sanitize(n))
			}
			continue
		}
		switch {
		case dr.GetKind() != pushauthv1.RequestKind_REQUEST_KIND_PAIRING:
			fmt.Fprintf(e.stderr, "(A login request %s from %s waits too; answer it with \"pushauth device watch\".)\n",
				sanitize(dr.GetId()), sanitize(dr.GetRelyingPartyName()))
			continue
		case stale[dr.GetId()]:
			fmt.Fprintf(e.stderr, "(Pairing request %s for %s at %s is from older words; answer it with \"pushauth device watch\".)\n",
				sanitize(dr.GetId()), sanitize(dr.GetAccountLabel()), sanitize(dr.GetRelyingPartyName()))
			continue
		}
		return p.confirm(wctx, w, dr)
	}
}

// confirm shows the pairing request and sends the answer.
func (p *pairRun) confirm(ctx context.Context, w *watcher, dr *pushauthv1.DeviceRequest) error {
	e, d := p.e, p.d
	dr, err := d.getRequest(ctx, dr.GetId())
	if err != nil {
		return err
	}
	if dr.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_PENDING {
		return fmt.Errorf("the pairing request %s is already %s", sanitize(dr.GetId()), fmtStatus(dr.GetStatus(), pushauthv1.DecisionReason_DECISION_REASON_UNSPECIFIED))
	}
	if p.cf.json {
		if err := printJSON(e.stdout, dr); err != nil {
			return err
		}
	} else if err := printDeviceRequest(e.stdout, e, dr); err != nil {
		return err
	}
	question := fmt.Sprintf("Connect account %s to %s? [y/N]", sanitize(dr.GetAccountLabel()), sanitize(dr.GetRelyingPartyName()))
	decision := pushauthv1.Decision_DECISION_DENY
	switch {
	case p.yes:
		fmt.Fprintln(e.stderr, question+" y (--yes)")
		decision = pushauthv1.Decision_DECISION_APPROVE
	case p.deny:
		fmt.Fprintln(e.stderr, question+" n (--deny)")
	default:
		line, err := w.ask(ctx, question, dr.GetId())
		switch {
		case errors.Is(err, errClosed):
			return fmt.Errorf("the pairing request %s ended before it was answered (expired or cancelled)", sanitize(dr.GetId()))
		case errors.Is(err, io.EOF):
			return errors.New("no answer: stdin ended; use --yes or --deny to answer without asking")
		case err != nil:
			return err
		}
		if a := strings.ToLower(line); a == "y" || a == "yes" {
			decision = pushauthv1.Decision_DECISION_APPROVE
		}
	}
	r, err := d.answer(ctx, e, dr, decision, "")
	if err != nil {
		return err
	}
	return output(e.stdout, p.cf, r, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, deviceOutcome(dr, r))
		return err
	})
}

// answerFlags are how "device watch" answers without asking.
type answerFlags struct {
	approve, deny, fraud bool
	number               string
}

// decision is the decision the flags give; ok is false when none does.
func (a *answerFlags) decision() (d pushauthv1.Decision, ok bool) {
	switch {
	case a.approve:
		return pushauthv1.Decision_DECISION_APPROVE, true
	case a.deny:
		return pushauthv1.Decision_DECISION_DENY, true
	case a.fraud:
		return pushauthv1.Decision_DECISION_REPORT_FRAUD, true
	}
	return pushauthv1.Decision_DECISION_UNSPECIFIED, false
}

var deviceWatchCmd = &command{
	path:    "device watch",
	args:    "[--approve | --deny | --report-fraud] [--number N] [--once] [--state FILE] [flags]",
	summary: "show requests to the device as they come and answer them: approve, deny or report fraud",
	details: `Every request shows its relying party, account and the login's context. Without
--approve, --deny or --report-fraud the command asks "[a/d/r]" and, to approve a
request with number matching, for the number the login page shows (--number
gives it). Answers are signed with the device key over what was shown. Closed
requests (answered elsewhere, expired, cancelled) and notices are shown too.
It runs until Ctrl-C, until --once answered one request, or for --timeout
when that is given.`,
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := stateFlag(fs)
		a := &answerFlags{}
		fs.BoolVar(&a.approve, "approve", false, "approve every request without asking")
		fs.BoolVar(&a.deny, "deny", false, "deny every request without asking")
		fs.BoolVar(&a.fraud, "report-fraud", false, "report every request as fraud (\"this wasn't me\") without asking")
		fs.StringVar(&a.number, "number", "", "the `number` the login page shows, for approving with number matching")
		once := fs.Bool("once", false, "exit after answering one request")
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			n := 0
			for _, b := range []bool{a.approve, a.deny, a.fraud} {
				if b {
					n++
				}
			}
			if n > 1 {
				return usageErrorf("use only one of --approve, --deny and --report-fraud")
			}
			if a.number != "" && !numberPattern.MatchString(a.number) {
				return usageErrorf("--number must be the 1 to 6 digits the login page shows")
			}
			d, err := openDevice(e, cf, *state)
			if err != nil {
				return err
			}
			defer d.c.close()
			wr := &watchRun{e: e, cf: cf, d: d, a: a, once: *once, answered: map[string]*pushauthv1.Request{}}
			if givenFlags(cf.fs)["timeout"] && cf.timeout > 0 {
				wctx, cancel := context.WithTimeout(ctx, cf.timeout)
				defer cancel()
				return wr.run(ctx, wctx)
			}
			return wr.run(ctx, ctx)
		}
	},
}

// watchRun is one "device watch".
type watchRun struct {
	e    *env
	cf   *connFlags
	d    *deviceCall
	a    *answerFlags
	once bool
	// answered holds the outcome of each request this watch answered, so
	// that their closing is told as answered here.
	answered map[string]*pushauthv1.Request
}

// run watches until ctx ends (Ctrl-C, which is no error), wctx ends
// (--timeout) or, with --once, one request is answered.
func (wr *watchRun) run(ctx, wctx context.Context) error {
	e, d := wr.e, wr.d
	w, err := d.watch(wctx, e)
	if err != nil {
		return err
	}
	defer w.stop()
	fmt.Fprintf(e.stderr, "Watching for requests to device %s (%s); Ctrl-C to stop.\n", sanitize(d.st.DeviceID), sanitize(d.st.display()))
	for {
		m, err := w.next(wctx)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				fmt.Fprintln(e.stderr, "Stopped watching.")
				return nil
			case wctx.Err() != nil:
				if wr.once {
					return fmt.Errorf("no request answered within %s", fmtWait(wr.cf.timeout))
				}
				fmt.Fprintf(e.stderr, "Stopped watching after %s (--timeout).\n", fmtWait(wr.cf.timeout))
				return nil
			}
			return err
		}
		if wr.cf.json && m.GetRequest() == nil {
			if err := printJSON(e.stdout, m); err != nil {
				return err
			}
		}
		switch {
		case m.GetClosedRequestId() != "":
			if !wr.cf.json {
				fmt.Fprintln(e.stdout, wr.closed(wctx, m.GetClosedRequestId(), false))
			}
		case m.GetNotice() != "":
			if !wr.cf.json {
				fmt.Fprintf(e.stdout, "Notice: %s\n", sanitize(m.GetNotice()))
			}
		case m.GetRequest() != nil:
			answered, err := wr.handle(wctx, w, m.GetRequest())
			switch {
			case err != nil && (ctx.Err() != nil || wctx.Err() != nil):
				continue // next reports it
			case err != nil && wr.once:
				return err
			case err != nil:
				printError(e.stderr, err, wr.cf)
			case answered && wr.once:
				return nil
			}
		}
	}
}

// handle shows one request and answers it; answered is false when it was
// skipped (closed in the meantime).
func (wr *watchRun) handle(ctx context.Context, w *watcher, dr *pushauthv1.DeviceRequest) (answered bool, err error) {
	e, d := wr.e, wr.d
	if w.closedLater(dr.GetId()) {
		return false, nil // its closing is next in the backlog
	}
	dr, err = d.getRequest(ctx, dr.GetId())
	if err != nil {
		return false, err
	}
	if dr.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_PENDING {
		fmt.Fprintf(e.stderr, "Request %s is already %s.\n", sanitize(dr.GetId()), fmtStatus(dr.GetStatus(), pushauthv1.DecisionReason_DECISION_REASON_UNSPECIFIED))
		return false, nil
	}
	if wr.cf.json {
		if err := printJSON(e.stdout, dr); err != nil {
			return false, err
		}
	} else if err := printDeviceRequest(e.stdout, e, dr); err != nil {
		return false, err
	}
	decision, ok := wr.a.decision()
	if ok {
		fmt.Fprintf(e.stderr, "Answer: %s (--%s)\n", fmtDecision(decision), strings.ToLower(strings.ReplaceAll(fmtDecision(decision), " ", "-")))
	} else {
		for !ok {
			line, err := w.ask(ctx, "Approve, deny or report fraud? [a/d/r]", dr.GetId())
			if err != nil {
				return false, wr.askError(ctx, dr, err)
			}
			switch strings.ToLower(line) {
			case "a", "approve":
				decision, ok = pushauthv1.Decision_DECISION_APPROVE, true
			case "d", "deny":
				decision, ok = pushauthv1.Decision_DECISION_DENY, true
			case "r", "report", "report fraud", "fraud":
				decision, ok = pushauthv1.Decision_DECISION_REPORT_FRAUD, true
			default:
				fmt.Fprintln(e.stderr, "Answer a (approve), d (deny) or r (report fraud: \"this wasn't me\").")
			}
		}
	}
	number := ""
	if decision == pushauthv1.Decision_DECISION_APPROVE && needsNumber(dr) {
		number = wr.a.number
		for number == "" {
			line, err := w.ask(ctx, "Type the number shown on the login page:", dr.GetId())
			if err != nil {
				return false, wr.askError(ctx, dr, err)
			}
			if numberPattern.MatchString(line) {
				number = line
			} else {
				fmt.Fprintln(e.stderr, "Type the digits the login page shows.")
			}
		}
	}
	r, err := d.answer(ctx, e, dr, decision, number)
	if err != nil {
		return false, err
	}
	wr.answered[dr.GetId()] = r
	if wr.cf.json {
		return true, printJSON(e.stdout, r)
	}
	fmt.Fprintln(e.stdout, deviceOutcome(dr, r))
	return true, nil
}

// askError explains why no answer came.
func (wr *watchRun) askError(ctx context.Context, dr *pushauthv1.DeviceRequest, err error) error {
	switch {
	case errors.Is(err, errClosed):
		fmt.Fprintln(wr.e.stdout, wr.closed(ctx, dr.GetId(), true))
		return nil
	case errors.Is(err, io.EOF):
		return errors.New("no answer: stdin ended; use --approve, --deny or --report-fraud to answer without asking")
	}
	return err
}

// closed says how request id ended, for the closing message the server
// sends to every device it asked: answered on this device (by this watch),
// or else, as the server tells, decided on another device, expired or
// cancelled. asking says the user was being asked about it.
func (wr *watchRun) closed(ctx context.Context, id string, asking bool) string {
	sid := sanitize(id)
	if r, ok := wr.answered[id]; ok {
		return fmt.Sprintf("Request %s is closed: answered on this device, %s.", sid, fmtStatus(r.GetStatus(), r.GetReason()))
	}
	before := ""
	if asking {
		before = " before you answered"
	}
	dr, err := wr.d.getRequest(ctx, id)
	if err != nil {
		return fmt.Sprintf("Request %s was closed%s (decided on another device, expired or cancelled; its state could not be read: %v).", sid, before, err)
	}
	switch dr.GetStatus() {
	case pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED:
		return fmt.Sprintf("Request %s was approved on another device%s.", sid, before)
	case pushauthv1.RequestStatus_REQUEST_STATUS_DENIED:
		return fmt.Sprintf("Request %s was denied on another device%s.", sid, before)
	case pushauthv1.RequestStatus_REQUEST_STATUS_EXPIRED:
		return fmt.Sprintf("Request %s expired%s.", sid, before)
	case pushauthv1.RequestStatus_REQUEST_STATUS_CANCELLED:
		return fmt.Sprintf("Request %s was cancelled by %s%s (the login was abandoned, or a newer one replaced it).", sid, sanitize(dr.GetRelyingPartyName()), before)
	}
	return fmt.Sprintf("Request %s was closed%s.", sid, before)
}

// fmtDecision names a decision as the flags do.
func fmtDecision(d pushauthv1.Decision) string {
	switch d {
	case pushauthv1.Decision_DECISION_APPROVE:
		return "approve"
	case pushauthv1.Decision_DECISION_DENY:
		return "deny"
	case pushauthv1.Decision_DECISION_REPORT_FRAUD:
		return "report fraud"
	}
	return d.String()
}

var deviceRequestsCmd = &command{
	path:    "device requests",
	args:    "[--state FILE] [flags]",
	summary: "list the requests waiting for the device's answer",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := stateFlag(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			return deviceRun(ctx, e, cf, *state, func(ctx context.Context, d *deviceCall) (*pushauthv1.ListPendingRequestsResponse, error) {
				return d.c.device.ListPendingRequests(ctx, &pushauthv1.ListPendingRequestsRequest{})
			}, func(w io.Writer, _ *deviceCall, resp *pushauthv1.ListPendingRequestsResponse) error {
				t := newTable(w, "ID", "KIND", "RELYING PARTY", "ACCOUNT", "APP", "IP ADDRESS", "LOCATION", "NUMBER", "EXPIRES")
				for _, r := range resp.GetRequests() {
					c := r.GetContext()
					t.row(r.GetId(), fmtKind(r.GetKind()), r.GetRelyingPartyName(), r.GetAccountLabel(), c.GetAppName(),
						c.GetIpAddress(), c.GetLocation(), fmtMatching(r.GetNumberMatching()), fmtTime(r.GetExpireTime()))
				}
				return t.flush()
			})
		}
	},
}

var deviceConnectionsCmd = &command{
	path:    "device connections",
	args:    "[--state FILE] [flags]",
	summary: "list the accounts connected to the device",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := stateFlag(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args); err != nil {
				return err
			}
			return deviceRun(ctx, e, cf, *state, func(ctx context.Context, d *deviceCall) (*pushauthv1.ListConnectionsResponse, error) {
				return d.c.device.ListConnections(ctx, &pushauthv1.ListConnectionsRequest{})
			}, func(w io.Writer, _ *deviceCall, resp *pushauthv1.ListConnectionsResponse) error {
				t := newTable(w, "ID", "RELYING PARTY", "RELYING PARTY ID", "ACCOUNT", "CONNECTED")
				for _, c := range resp.GetConnections() {
					t.row(c.GetId(), c.GetRelyingPartyName(), c.GetRelyingPartyId(), c.GetAccountLabel(), fmtTime(c.GetConnectTime()))
				}
				return t.flush()
			})
		}
	},
}

var deviceDisconnectCmd = &command{
	path:    "device disconnect",
	args:    "CONNECTION_ID [--state FILE] [flags]",
	summary: "disconnect an account from the device (see \"device connections\")",
	setup: func(fs *flag.FlagSet, cf *connFlags) func(context.Context, *env, []string) error {
		state := stateFlag(fs)
		return func(ctx context.Context, e *env, args []string) error {
			if err := wantArgs(args, "connection_id"); err != nil {
				return err
			}
			return deviceRun(ctx, e, cf, *state, func(ctx context.Context, d *deviceCall) (*pushauthv1.RemoveConnectionResponse, error) {
				return d.c.device.RemoveConnection(ctx, &pushauthv1.RemoveConnectionRequest{ConnectionId: args[0]})
			}, func(w io.Writer, _ *deviceCall, _ *pushauthv1.RemoveConnectionResponse) error {
				_, err := fmt.Fprintf(w, "Disconnected %s: its account no longer asks this device.\n", sanitize(args[0]))
				return err
			})
		}
	},
}

// fmtKind names a request kind in lower case; "" if unspecified.
func fmtKind(k pushauthv1.RequestKind) string {
	if k == pushauthv1.RequestKind_REQUEST_KIND_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(k.String(), "REQUEST_KIND_"))
}

// fmtStatus names a status with its reason when that says more, e.g.
// "denied (number mismatch)", "cancelled (superseded)", "denied".
func fmtStatus(s pushauthv1.RequestStatus, r pushauthv1.DecisionReason) string {
	if s == pushauthv1.RequestStatus_REQUEST_STATUS_UNSPECIFIED {
		return ""
	}
	out := strings.ToLower(strings.TrimPrefix(s.String(), "REQUEST_STATUS_"))
	switch {
	case r == pushauthv1.DecisionReason_DECISION_REASON_UNSPECIFIED, r == pushauthv1.DecisionReason_DECISION_REASON_USER,
		r == pushauthv1.DecisionReason_DECISION_REASON_CANCELLED && s == pushauthv1.RequestStatus_REQUEST_STATUS_CANCELLED,
		r == pushauthv1.DecisionReason_DECISION_REASON_TIMEOUT && s == pushauthv1.RequestStatus_REQUEST_STATUS_EXPIRED:
		return out
	}
	return out + " (" + strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(r.String(), "DECISION_REASON_"), "_", " ")) + ")"
}
