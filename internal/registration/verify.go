package registration

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/netip"
	"strings"
	"time"

	"github.com/pushauth/pushauth/internal/audit"
	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/guess"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/pii"
	"github.com/pushauth/pushauth/internal/secret"
	"github.com/pushauth/pushauth/internal/sms"
	"github.com/pushauth/pushauth/internal/store"
)

// Limits are the defences against SMS pumping (toll fraud) and guessing.
// Every limit holds across replicas because the counters live in the database.
type Limits struct {
	ResendCooldown time.Duration // between two SMS to one number
	PerNumberHour  int
	PerNumberDay   int
	PerAddressHour int // per client address (IPv6: per /64)
	PerPrefixHour  int // per number without its last four digits
	GlobalDay      int // all SMS of this deployment
	// MaxAttempts is the number of wrong codes or links one verification takes.
	MaxAttempts int
	// MaxFailuresPerNumberDay bounds wrong codes for one number over all its
	// verifications, so asking for a fresh SMS does not reset the count.
	MaxFailuresPerNumberDay int
}

// DefaultLimits are sane limits for a deployment of moderate size.
func DefaultLimits() Limits {
	return Limits{
		ResendCooldown:          30 * time.Second,
		PerNumberHour:           5,
		PerNumberDay:            10,
		PerAddressHour:          20,
		PerPrefixHour:           50,
		GlobalDay:               10000,
		MaxAttempts:             5,
		MaxFailuresPerNumberDay: 10,
	}
}

// Config is how phone verification behaves.
type Config struct {
	AllowedRegions  []string // ISO 3166 codes; empty allows all
	VerificationTTL time.Duration
	LinkBaseURL     string // the SMS link is LinkBaseURL + "/v/" + token
	AppName         string // named in the SMS text
	Limits          Limits
}

// Service verifies phone numbers and registers devices.
type Service struct {
	cfg    Config
	store  store.Store
	sender sms.Sender
	keys   *keyring.Keyring
	now    func() time.Time
	log    *slog.Logger
	// refused is told the reason of every refusal, for metrics.
	refused func(reason string)
	checks  guess.Observer
}

// New returns a Service. refused and checks may be nil.
func New(cfg Config, st store.Store, sender sms.Sender, keys *keyring.Keyring, now func() time.Time, log *slog.Logger, refused func(reason string), checks guess.Observer) *Service {
	if refused == nil {
		refused = func(string) {}
	}
	return &Service{cfg: cfg, store: st, sender: sender, keys: keys, now: now, log: log, refused: refused, checks: checks}
}

func (s *Service) checked(right bool) { guess.Observe(s.checks, guess.SMSCode, right) }

// StartParams is a request for an SMS.
type StartParams struct {
	PhoneNumber   string
	DefaultRegion string
	Locale        string
	ClientAddress string // the caller's IP address, if known
}

// Started says what was sent.
type Started struct {
	VerificationID string
	MaskedNumber   string
	ExpiresAt      time.Time
	ResendAt       time.Time
}

// limitError is a refusal by one of the limits.
type limitError struct {
	reason     string
	retryAfter time.Duration
	msg        string
}

func (e *limitError) Error() string { return e.msg }

// Start checks the number and the limits, records a verification and sends
// the SMS with its code and link.
func (s *Service) Start(ctx context.Context, p StartParams) (Started, error) {
	phone, err := ParsePhone(p.PhoneNumber, p.DefaultRegion, s.cfg.AllowedRegions)
	if err != nil {
		return Started{}, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	code, err := randomCode()
	if err != nil {
		return Started{}, err
	}
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	link := base64.RawURLEncoding.EncodeToString(tok[:])
	v := store.Verification{
		ID:            secret.NewID("ver", now.UnixMilli()),
		PhoneNumber:   phone.E164,
		Locale:        p.Locale,
		ClientAddress: p.ClientAddress,
		CreatedAt:     now,
		ExpiresAt:     now.Add(s.cfg.VerificationTTL),
	}
	v.CodeHash = s.keys.Hash("sms-code", v.ID+":"+code)
	v.LinkHash = s.keys.Hash("sms-link", link)
	masked := pii.MaskPhone(phone.E164)

	err = s.store.InTx(ctx, func(tx store.Store) error {
		// Counters first: their row locks serialise concurrent starts for the
		// same number, so the cooldown read below sees the other's insert.
		if err := s.takeSMSBudget(ctx, tx, phone.E164, p.ClientAddress, now); err != nil {
			return err
		}
		if err := s.checkCooldown(ctx, tx, phone.E164, now); err != nil {
			return err
		}
		if err := s.checkFailures(ctx, tx, phone.E164, now); err != nil {
			return err
		}
		if err := tx.CreateVerification(ctx, v); err != nil {
			return err
		}
		return audit.Write(ctx, tx, now, audit.Entry{
			Actor: audit.ActorSystem, Action: "phone_verification.started", Target: v.ID,
			Details: map[string]string{"phone": masked, "region": phone.Region},
		})
	})
	var le *limitError
	if errors.As(err, &le) {
		s.refused(le.reason)
		if aerr := audit.Write(ctx, s.store, now, audit.Entry{
			Actor: audit.ActorSystem, Action: "phone_verification.refused",
			Details: map[string]string{"phone": masked, "limit": le.reason},
		}); aerr != nil {
			s.log.ErrorContext(ctx, "audit refusal", "err", aerr)
		}
		return Started{}, fault.Exhausted(le.msg, le.retryAfter)
	}
	if err != nil {
		return Started{}, fmt.Errorf("start verification: %w", err)
	}

	body := sms.Render(p.Locale, sms.TemplateData{
		AppName:    s.cfg.AppName,
		Code:       code,
		Link:       strings.TrimRight(s.cfg.LinkBaseURL, "/") + "/v/" + link,
		TTLMinutes: int(s.cfg.VerificationTTL / time.Minute),
	})
	id, err := s.sender.Send(ctx, sms.Message{To: phone.E164, Body: body})
	if err != nil {
		s.log.WarnContext(ctx, "sms failed", "provider", s.sender.Name(), "phone", masked, "verification_id", v.ID, "err", err)
		if aerr := audit.Write(ctx, s.store, s.now(), audit.Entry{
			Actor: audit.ActorSystem, Action: "sms.failed", Target: v.ID,
			Details: map[string]string{"phone": masked, "provider": s.sender.Name(), "error": err.Error()},
		}); aerr != nil {
			s.log.ErrorContext(ctx, "audit sms failure", "err", aerr)
		}
		return Started{}, fault.Wrap(fault.Unavailable, err, "the SMS could not be sent; try again in a minute")
	}
	s.log.InfoContext(ctx, "sms sent", "provider", s.sender.Name(), "phone", masked, "verification_id", v.ID, "provider_message_id", id)
	if err := audit.Write(ctx, s.store, s.now(), audit.Entry{
		Actor: audit.ActorSystem, Action: "sms.sent", Target: v.ID,
		Details: map[string]string{"phone": masked, "provider": s.sender.Name(), "provider_message_id": id},
	}); err != nil {
		s.log.ErrorContext(ctx, "audit sms sent", "err", err)
	}
	return Started{
		VerificationID: v.ID,
		MaskedNumber:   masked,
		ExpiresAt:      v.ExpiresAt,
		ResendAt:       now.Add(s.cfg.Limits.ResendCooldown),
	}, nil
}

// takeSMSBudget counts one SMS against every sending limit, or refuses.
// Every window rolls: "5 an hour" holds for any 60 minutes.
func (s *Service) takeSMSBudget(ctx context.Context, tx store.Store, number, addr string, now time.Time) error {
	l := s.cfg.Limits
	type limit struct {
		reason, msg string
	}
	limits := []store.RateLimit{
		{Key: "sms:number:" + number, Window: time.Hour, Max: l.PerNumberHour},
		{Key: "sms:number:" + number, Window: 24 * time.Hour, Max: l.PerNumberDay},
		{Key: "sms:prefix:" + numberPrefix(number), Window: time.Hour, Max: l.PerPrefixHour},
		{Key: "sms:global", Window: 24 * time.Hour, Max: l.GlobalDay},
		{Key: "sms:address:" + addressKey(addr), Window: time.Hour, Max: l.PerAddressHour},
	}
	why := []limit{
		{"number_hour", "too many SMS to this number in the last hour"},
		{"number_day", "too many SMS to this number in the last 24 hours"},
		{"prefix_hour", "too many SMS to numbers like this one in the last hour"},
		{"global_day", "this service has sent all the SMS it may send in 24 hours"},
		{"address_hour", "too many SMS asked for from your network in the last hour"},
	}
	_, err := tx.TakeRate(ctx, now, limits...)
	var le *store.LimitError
	if errors.As(err, &le) {
		retry := le.Until.Sub(now)
		w := why[le.Index]
		return &limitError{reason: w.reason, retryAfter: retry, msg: fmt.Sprintf("%s; try again in %s", w.msg, guess.RoundUp(retry))}
	}
	return err
}

func (s *Service) checkCooldown(ctx context.Context, tx store.Store, number string, now time.Time) error {
	last, err := tx.LatestVerification(ctx, number)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if next := last.CreatedAt.Add(s.cfg.Limits.ResendCooldown); now.Before(next) {
		retry := next.Sub(now)
		return &limitError{reason: "resend_cooldown", retryAfter: retry, msg: fmt.Sprintf("an SMS was just sent to this number; ask again in %s", guess.RoundUp(retry))}
	}
	return nil
}

// failureLimit bounds wrong codes for one number over any 24 hours, across
// all its verifications.
func (s *Service) failureLimit(number string) store.RateLimit {
	return store.RateLimit{Key: "verify-fail:" + number, Window: 24 * time.Hour, Max: s.cfg.Limits.MaxFailuresPerNumberDay}
}

// checkFailures refuses a new SMS to a number whose wrong-code budget is
// spent: another code could not be tried anyway.
func (s *Service) checkFailures(ctx context.Context, st store.Rates, number string, now time.Time) error {
	l := s.failureLimit(number)
	n, err := st.CountRate(ctx, l.Key, now, l.Window)
	if err != nil {
		return err
	}
	if n >= l.Max {
		return s.failuresRefusal(now, now.Add(l.Window))
	}
	return nil
}

func (s *Service) failuresRefusal(now, until time.Time) *limitError {
	retry := until.Sub(now)
	return &limitError{reason: "failures_day", retryAfter: retry, msg: fmt.Sprintf("too many wrong codes for this number in the last 24 hours; try again in %s", guess.RoundUp(retry))}
}

// addressKey is the unit of the per-address limit: the IPv4 address, or the
// /64 of an IPv6 address (one subscriber usually has a whole /64). A missing
// or unreadable address shares one bucket: it never switches the limit off.
func addressKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return "unknown"
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

func randomCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}
