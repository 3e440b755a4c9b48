package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/pushauth/pushauth/client"
	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// LoadOptions shape the load.
type LoadOptions struct {
	// Users is how many users (each with one paired phone) log in at once,
	// one flow after another.
	Users int
	// FlowTimeout bounds one login from CreateApproval to the waiter's
	// answer; a flow still open then is counted lost or stuck.
	FlowTimeout time.Duration
	// DenyEvery makes every n-th flow a denial (0: none). A denial backs
	// the user off for 10 s (the server's push-bombing guard).
	DenyEvery int
	// Pause is how long each user waits between two logins: 0 runs flat
	// out, a pause makes a steady rate (Users/Pause per second at most).
	Pause time.Duration
}

// Load is the login servers and phones of Users users, driving flows
// through the replicas: each login is created on one replica, the phone
// answers through the next, and the waiter waits on the one after. Every
// connection prefers its replica and fails over to the others in order
// (pick_first), as clients behind a load balancer do; the login server side
// is the public client package, whose Wait re-attaches to another replica
// when a stream breaks.
type Load struct {
	c       *Cluster
	opts    LoadOptions
	conns   []*grpc.ClientConn
	clients []*client.Client // by preferred replica
	users   []*user
	flowSeq atomic.Int64
	// decided counts flows that ended approved or denied, and wake is
	// closed and replaced at each, so a scenario can wait for progress.
	mu      sync.Mutex
	decided int
	wake    chan struct{}
}

type user struct {
	ref    string
	key    *phone.Key
	device *phone.Device // on the replica given at call time (API replaced per call)
	cred   string
	id     string
	pushes <-chan string
}

// pinnedConn connects to every replica, preferring first: pick_first tries
// the addresses in order.
func pinnedConn(addrs []string, first int) (*grpc.ClientConn, error) {
	r := manual.NewBuilderWithScheme(fmt.Sprintf("pushauth-pinned-%d", first))
	var as []resolver.Address
	for i := range addrs {
		as = append(as, resolver.Address{Addr: addrs[(first+i)%len(addrs)]})
	}
	r.InitialState(resolver.State{Addresses: as})
	return grpc.NewClient(r.Scheme()+":///replicas", grpc.WithResolvers(r), grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// NewLoad creates a relying party and an API key, registers Users phones
// through the SMS outbox and pairs each to its user with the pairing
// phrase, spreading the calls over the replicas.
func NewLoad(ctx context.Context, c *Cluster, o LoadOptions) (*Load, error) {
	if o.FlowTimeout == 0 {
		o.FlowTimeout = time.Minute
	}
	l := &Load{c: c, opts: o, wake: make(chan struct{})}
	for i := range c.Replicas {
		cc, err := pinnedConn(c.Addrs(), i)
		if err != nil {
			return nil, err
		}
		l.conns = append(l.conns, cc)
	}
	actx := c.AdminContext(ctx)
	admin := pushauthv1.NewAdminServiceClient(l.conns[0])
	rp, err := admin.CreateRelyingParty(actx, &pushauthv1.CreateRelyingPartyRequest{Name: "chaos", DisplayName: "Chaos portal"})
	if err != nil {
		return nil, fmt.Errorf("CreateRelyingParty: %w", err)
	}
	key, err := admin.CreateApiKey(actx, &pushauthv1.CreateApiKeyRequest{RelyingParty: rp.GetRelyingParty().GetId(), Description: "chaos load"})
	if err != nil {
		return nil, fmt.Errorf("CreateApiKey: %w", err)
	}
	for _, cc := range l.conns {
		l.clients = append(l.clients, client.New(cc, key.GetSecret()))
	}
	l.users = make([]*user, o.Users)
	var wg sync.WaitGroup
	errs := make([]error, o.Users)
	sem := make(chan struct{}, 4)
	for i := range o.Users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			l.users[i], errs[i] = l.newUser(ctx, i)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Close closes the load's connections.
func (l *Load) Close() {
	for _, cc := range l.conns {
		cc.Close()
	}
}

func (l *Load) device(u *user, replica int) *phone.Device {
	return &phone.Device{Key: u.key, ID: u.id, Credential: u.cred, API: pushauthv1.NewDeviceServiceClient(l.conns[replica%len(l.conns)])}
}

// newUser registers phone i through the SMS flow and pairs it.
func (l *Load) newUser(ctx context.Context, i int) (*user, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n := len(l.conns)
	platform := pushauthv1.Platform_PLATFORM_ANDROID
	if i%2 == 1 {
		platform = pushauthv1.Platform_PLATFORM_IOS
	}
	key, err := phone.NewKey(platform)
	if err != nil {
		return nil, err
	}
	token := fmt.Sprintf("fcm-chaos-%06d", i)
	u := &user{ref: fmt.Sprintf("user-%06d@chaos.example", i), key: key, pushes: l.c.FCM.phone(token)}
	number := fmt.Sprintf("+3162%07d", i)
	dev := pushauthv1.NewDeviceServiceClient(l.conns[i%n])
	st, err := dev.StartPhoneVerification(ctx, &pushauthv1.StartPhoneVerificationRequest{PhoneNumber: number})
	if err != nil {
		return nil, fmt.Errorf("StartPhoneVerification: %w", err)
	}
	admin := pushauthv1.NewAdminServiceClient(l.conns[(i+1)%n])
	sms, err := admin.ListOutboxMessages(l.c.AdminContext(ctx), &pushauthv1.ListOutboxMessagesRequest{PhoneNumber: number, Limit: 1})
	if err != nil || len(sms.GetMessages()) != 1 {
		// Not the message itself: it holds the code and the full number.
		return nil, fmt.Errorf("ListOutboxMessages: %d messages, %v", len(sms.GetMessages()), err)
	}
	code := smsCode(sms.GetMessages()[0].GetBody())
	d, err := phone.Register(ctx, pushauthv1.NewDeviceServiceClient(l.conns[(i+2)%n]), key, st.GetVerificationId(), phone.Proof{Code: code},
		phone.DeviceInfo{Platform: platform, PushToken: token, Name: "chaos phone", AppVersion: "1.0.0"})
	if err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	u.id, u.cred = d.ID, d.Credential
	phrase, _, err := l.device(u, i).PairingPhrase(ctx)
	if err != nil {
		return nil, fmt.Errorf("CreatePairingPhrase: %w", err)
	}
	p, err := l.clients[(i+1)%n].ClaimPairingPhrase(ctx, phrase, u.ref, u.ref, nil)
	if err != nil {
		return nil, fmt.Errorf("ClaimPairingPhrase: %w", err)
	}
	dr, err := l.device(u, i+2).Get(ctx, p.RequestID)
	if err != nil {
		return nil, fmt.Errorf("pairing GetRequest: %w", err)
	}
	if _, err := l.device(u, i+2).Approve(ctx, dr, ""); err != nil {
		return nil, fmt.Errorf("approve pairing: %w", err)
	}
	return u, nil
}

// smsCode finds the 6-digit code in an SMS text.
func smsCode(body string) string {
	for f := range strings.FieldsFuncSeq(body, func(r rune) bool { return r < '0' || r > '9' }) {
		if len(f) == 6 {
			return f
		}
	}
	return ""
}

// Outcome is how one login ended, for the counts.
type Outcome int

const (
	// Approved and Denied: the waiter was told what the phone answered.
	Approved Outcome = iota
	Denied
	// Lost: never decided (no push, or the answer never took).
	Lost
	// Stuck: decided, but the waiter was never told.
	Stuck
	// CreateFailed: CreateApproval never succeeded; the login page showed
	// an error, no login exists to account for.
	CreateFailed
	// Wrong: the waiter was told something other than the phone answered.
	Wrong
)

var outcomeNames = [...]string{"approved", "denied", "lost", "stuck", "create_failed", "wrong"}

func (o Outcome) String() string { return outcomeNames[o] }

// FlowResult is one login's record.
type FlowResult struct {
	RequestID string
	Outcome   Outcome
	Err       error // why, for lost, stuck, wrong and create failures
	// CreateRetries is how many CreateApproval calls failed before one
	// succeeded (the login page retried).
	CreateRetries int
	// BackedOff is how often the login was refused with a back-off first.
	BackedOff int
	Took      time.Duration
	Start     time.Time
}

// Counts add up a run.
type Counts struct {
	Flows, Approved, Denied, Lost, Stuck, CreateFailed, Wrong int
	// CreateRetries are failed CreateApproval calls that a retry covered;
	// BackedOff logins refused with a back-off first.
	CreateRetries, BackedOff int
	// DupPush is how many logins were pushed more than once; PushesExtra
	// how many pushes those were beyond the first.
	DupPush, PushesExtra int
	MaxFlow              time.Duration
	// Examples are a few failures' reasons.
	Examples []string
}

// OK is the bar: nothing lost, stranded or wrong.
func (c Counts) OK() bool { return c.Lost == 0 && c.Stuck == 0 && c.Wrong == 0 }

// Run runs flows on every user until stop is closed, then lets the open
// flows finish (each within FlowTimeout) and returns every flow's record.
func (l *Load) Run(ctx context.Context, stop <-chan struct{}) []FlowResult {
	var mu sync.Mutex
	var out []FlowResult
	var wg sync.WaitGroup
	for _, u := range l.users {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				r := l.flow(ctx, u)
				if l.opts.Pause > 0 && !sleepCtx(ctx, l.opts.Pause) {
					return
				}
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
				if r.Outcome == Approved || r.Outcome == Denied {
					l.mu.Lock()
					l.decided++
					close(l.wake)
					l.wake = make(chan struct{})
					l.mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return out
}

// transient reports errors a retry on another replica may cure.
func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled, codes.Internal, codes.Unknown:
		return true
	}
	return false
}

// retry calls f until it succeeds, fails for good, or ctx ends, with a
// short back-off; it returns how many calls failed transiently.
func retry(ctx context.Context, f func(ctx context.Context) error) (int, error) {
	failures := 0
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(cctx)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil {
			return failures, err
		}
		failures++
		t := time.NewTimer(min(time.Duration(failures)*100*time.Millisecond, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return failures, err
		case <-t.C:
		}
	}
}

var flowContext = &pushauthv1.RequestContext{AppName: "Chaos portal", IpAddress: "203.0.113.9", Location: "Utrecht, NL", Browser: "Firefox on Linux"}

// flow is one login of u: create on one replica, answer on the next, wait
// on the one after, and classify how it ended.
func (l *Load) flow(ctx context.Context, u *user) (res FlowResult) {
	seq := int(l.flowSeq.Add(1))
	n := len(l.clients)
	creator, answerer, waiter := seq%n, (seq+1)%n, (seq+2)%n
	deny := l.opts.DenyEvery > 0 && seq%l.opts.DenyEvery == 0
	start := time.Now()
	res = FlowResult{Start: start}
	ctx, cancel := context.WithTimeout(ctx, l.opts.FlowTimeout)
	defer cancel()
	defer func() { res.Took = time.Since(start) }()

	var p *client.Pending
	var err error
	for {
		var n int
		n, err = retry(ctx, func(ctx context.Context) error {
			p, err = l.clients[creator].CreateApproval(ctx, u.ref, flowContext)
			return err
		})
		res.CreateRetries += n
		// A back-off (a login left unanswered by an earlier failed try)
		// says when to try again: the user does.
		wait, ok := client.RetryAfter(err)
		if !ok || status.Code(err) != codes.ResourceExhausted || !sleepCtx(ctx, wait) {
			break
		}
		res.BackedOff++
	}
	if err != nil {
		res.Outcome, res.Err = CreateFailed, fmt.Errorf("CreateApproval: %w", err)
		return res
	}
	res.RequestID = p.RequestID

	type waited struct {
		out *client.Outcome
		err error
	}
	done := make(chan waited, 1)
	go func() {
		out, err := l.clients[waiter].Wait(ctx, p)
		done <- waited{out, err}
	}()

	phoneErr := l.answer(ctx, u, answerer, p.RequestID, deny)
	w := <-done
	want := pushauthv1.RequestStatus_REQUEST_STATUS_APPROVED
	if deny {
		want = pushauthv1.RequestStatus_REQUEST_STATUS_DENIED
	}
	if w.err == nil {
		switch got := w.out.Status(); {
		case got == want && deny:
			res.Outcome = Denied
		case got == want:
			res.Outcome = Approved
		default:
			res.Outcome, res.Err = Wrong, fmt.Errorf("waiter told %s, phone answered %s (phone: %v)", got, want, phoneErr)
		}
		return res
	}
	// The waiter was not told: was the request decided?
	sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer scancel()
	var r *pushauthv1.Request
	_, gerr := retry(sctx, func(ctx context.Context) error {
		r, err = l.clients[creator].Get(ctx, p.RequestID)
		return err
	})
	switch {
	case gerr == nil && r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_PENDING && r.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_EXPIRED:
		res.Outcome, res.Err = Stuck, fmt.Errorf("request %s is %s but Wait: %v", p.RequestID, r.GetStatus(), w.err)
	default:
		res.Outcome, res.Err = Lost, fmt.Errorf("request %s is %s (%v); phone: %v; Wait: %v", p.RequestID, r.GetStatus(), gerr, phoneErr, w.err)
	}
	return res
}

// answer is the phone's part: wait for the push naming id (older pushes are
// skipped as the app would), fetch the request, sign and send the answer,
// retrying through the replicas on transient errors.
func (l *Load) answer(ctx context.Context, u *user, replica int, id string, deny bool) error {
	for pushed := ""; pushed != id; {
		select {
		case pushed = <-u.pushes:
		case <-ctx.Done():
			return fmt.Errorf("no push for %s: %w", id, ctx.Err())
		}
	}
	d := l.device(u, replica)
	var dr *pushauthv1.DeviceRequest
	if _, err := retry(ctx, func(ctx context.Context) (err error) {
		dr, err = d.Get(ctx, id)
		return err
	}); err != nil {
		return fmt.Errorf("device GetRequest: %w", err)
	}
	if dr.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_PENDING {
		return fmt.Errorf("pushed request %s is %s", id, dr.GetStatus())
	}
	a := phone.Answer{Decision: pushauthv1.Decision_DECISION_APPROVE}
	if deny {
		a.Decision = pushauthv1.Decision_DECISION_DENY
	}
	_, err := retry(ctx, func(ctx context.Context) error {
		_, err := d.Answer(ctx, dr, a)
		if status.Code(err) == codes.FailedPrecondition {
			// An earlier try may have taken: see whether it did.
			if got, gerr := d.Get(ctx, id); gerr == nil && got.GetStatus() != pushauthv1.RequestStatus_REQUEST_STATUS_PENDING {
				return nil
			}
		}
		return err
	})
	return err
}

// Count adds up flows and the fake FCM's pushes.
func (l *Load) Count(flows []FlowResult) Counts {
	var c Counts
	for _, f := range flows {
		c.Flows++
		c.CreateRetries += f.CreateRetries
		c.BackedOff += f.BackedOff
		c.MaxFlow = max(c.MaxFlow, f.Took)
		switch f.Outcome {
		case Approved:
			c.Approved++
		case Denied:
			c.Denied++
		case Lost:
			c.Lost++
		case Stuck:
			c.Stuck++
		case CreateFailed:
			c.CreateFailed++
		case Wrong:
			c.Wrong++
		}
		if f.Err != nil && len(c.Examples) < 8 {
			c.Examples = append(c.Examples, fmt.Sprintf("%s: %v", f.Outcome, f.Err))
		}
		if f.RequestID != "" {
			if p := l.c.FCM.Pushes(f.RequestID); p > 1 {
				c.DupPush++
				c.PushesExtra += p - 1
			}
		}
	}
	return c
}

// WaitQueueEmpty polls a serving replica's push-queue gauges until no job
// is pending or in flight, so late (duplicate) pushes are counted.
func (l *Load) WaitQueueEmpty(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	return poll(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		for _, r := range l.c.Replicas {
			if !r.running() {
				continue
			}
			p, err1 := r.metric(ctx, "pushauth_push_queue_jobs", `state="pending"`)
			f, err2 := r.metric(ctx, "pushauth_push_queue_jobs", `state="in_flight"`)
			if err := errors.Join(err1, err2); err != nil {
				continue
			}
			if p == 0 && f == 0 {
				return nil
			}
			return fmt.Errorf("push queue: %v pending, %v in flight", p, f)
		}
		return errors.New("no replica answers /metrics")
	})
}

func httpGet(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

// WaitDecided waits until n more flows than now ended approved or denied,
// at most limit: the load made progress.
func (l *Load) WaitDecided(ctx context.Context, n int, limit time.Duration) error {
	l.mu.Lock()
	target := l.decided + n
	l.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		l.mu.Lock()
		got, wake := l.decided, l.wake
		l.mu.Unlock()
		if got >= target {
			return nil
		}
		select {
		case <-wake:
		case <-t.C:
			return fmt.Errorf("only %d of %d flows decided within %s", got-(target-n), n, limit)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// sleepCtx waits d unless ctx ends first; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// HoldWatch opens a phone's WatchRequests stream on replica i itself (not
// failing over), as an app in the foreground holds it, and reports when
// and how the stream ended.
// The phone is a user of its own (outside the load) with one login left
// pending, which the stream sends first: then the server holds the stream.
func (l *Load) HoldWatch(ctx context.Context, i int) (<-chan WatchEnd, error) {
	u, err := l.newUser(ctx, 900000+int(l.flowSeq.Add(1)))
	if err != nil {
		return nil, err
	}
	if _, err := l.clients[i].CreateApproval(ctx, u.ref, flowContext); err != nil {
		return nil, err
	}
	d := &phone.Device{Key: u.key, ID: u.id, Credential: u.cred, API: pushauthv1.NewDeviceServiceClient(l.c.Replicas[i].conn)}
	stream, err := d.API.WatchRequests(d.Context(ctx), &pushauthv1.WatchRequestsRequest{})
	if err != nil {
		return nil, err
	}
	if _, err := stream.Recv(); err != nil {
		return nil, err
	}
	ended := make(chan WatchEnd, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- WatchEnd{Err: err, At: time.Now()}
				return
			}
		}
	}()
	return ended, nil
}

// WatchEnd is how and when a held stream ended.
type WatchEnd struct {
	Err error
	At  time.Time
}
