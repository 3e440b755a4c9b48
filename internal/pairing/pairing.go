// Package pairing makes and claims the two-word phrases that link an account
// of a relying party to a phone (the app shows the phrase, the user types it
// into the login page, and the login server claims it), and keeps the
// connections that linking made: listing, reading and removing them. The
// pairing request itself, like every request, is the engine's
// (internal/approval).
package pairing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/sethvargo/go-diceware/diceware"

	"github.com/pushauth/pushauth/internal/fault"
	"github.com/pushauth/pushauth/internal/guess"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/store"
)

// Limits bound guessing of phrases.
type Limits struct {
	// FailedPerUserHour is how many unknown phrases one relying party may
	// try for one user per hour.
	FailedPerUserHour int
	// FailedPerAddressHour is how many unknown phrases may come from one
	// end-user address per hour, across relying parties. Claims without an
	// address share one budget.
	FailedPerAddressHour int
	// FailedPerRelyingPartyHour is how many unknown phrases one relying
	// party may try per hour over all its users: a relying party that
	// guesses cannot spread its guesses over made-up users.
	FailedPerRelyingPartyHour int
}

// DefaultLimits are sane guessing limits. Every "per hour" is any 60
// minutes, not a clock hour.
func DefaultLimits() Limits {
	return Limits{FailedPerUserHour: 10, FailedPerAddressHour: 30, FailedPerRelyingPartyHour: 200}
}

// Phrases makes and claims pairing phrases.
type Phrases struct {
	store  store.Store
	keys   *keyring.Keyring
	now    func() time.Time
	ttl    time.Duration
	limits Limits
	checks guess.Observer
	// words draws n words; a field so tests can force collisions.
	words func(n int) ([]string, error)
}

// New returns Phrases that live for ttl. checks may be nil.
func New(st store.Store, keys *keyring.Keyring, now func() time.Time, ttl time.Duration, limits Limits, checks guess.Observer) *Phrases {
	return &Phrases{store: st, keys: keys, now: now, ttl: ttl, limits: limits, checks: checks, words: effWords}
}

// effWords draws from the EFF large word list, skipping the few words with
// hyphens or other non-letters so every phrase types the same everywhere.
func effWords(n int) ([]string, error) {
	out := make([]string, 0, n)
	for len(out) < n {
		w, err := diceware.GenerateWithWordList(1, diceware.WordListEffLarge())
		if err != nil {
			return nil, err
		}
		if strings.IndexFunc(w[0], func(r rune) bool { return !unicode.IsLetter(r) }) < 0 {
			out = append(out, w[0])
		}
	}
	return out, nil
}

// Normalize is how a typed phrase is compared: case, hyphens and extra
// whitespace do not matter.
func Normalize(phrase string) string {
	phrase = strings.ToLower(strings.ReplaceAll(phrase, "-", " "))
	return strings.Join(strings.Fields(phrase), " ")
}

// Create makes a new phrase for a device, replacing its previous one.
func (p *Phrases) Create(ctx context.Context, deviceID string) (string, time.Time, error) {
	now := p.now().UTC().Truncate(time.Microsecond)
	for range 10 {
		words, err := p.words(2)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("draw phrase: %w", err)
		}
		phrase := strings.Join(words, " ")
		err = p.store.PutPairingPhrase(ctx, store.PairingPhrase{
			Hash:      p.keys.Hash("pairing-phrase", Normalize(phrase)),
			DeviceID:  deviceID,
			CreatedAt: now,
			ExpiresAt: now.Add(p.ttl),
		})
		if errors.Is(err, store.ErrConflict) {
			continue // another live phrase has these words: draw again
		}
		if err != nil {
			return "", time.Time{}, fmt.Errorf("store phrase: %w", err)
		}
		return phrase, now.Add(p.ttl), nil
	}
	return "", time.Time{}, fault.New(fault.Unavailable, "could not find a free phrase; try again")
}

// Claim finds and uses the device behind a typed phrase. Unknown, used and
// expired phrases all look the same to the caller. Every claim spends a try
// from the user's, the address's and the relying party's budgets before the
// phrase is looked up, and a found phrase gives it back: so concurrent
// guesses never look up more phrases than the budgets allow, and while a
// budget is spent even the right phrase is refused.
func (p *Phrases) Claim(ctx context.Context, relyingPartyID, userRef, phrase, clientAddress string) (string, error) {
	now := p.now().UTC().Truncate(time.Microsecond)
	if clientAddress == "" {
		clientAddress = "unknown"
	}
	limits := []store.RateLimit{
		{Key: "pair-fail:user:" + relyingPartyID + ":" + userRef, Window: time.Hour, Max: p.limits.FailedPerUserHour},
		{Key: "pair-fail:address:" + clientAddress, Window: time.Hour, Max: p.limits.FailedPerAddressHour},
		{Key: "pair-fail:rp:" + relyingPartyID, Window: time.Hour, Max: p.limits.FailedPerRelyingPartyHour},
	}
	ticket, err := p.store.TakeRate(ctx, now, limits...)
	if err != nil {
		return "", guess.Refusal(err, now, "too many unknown pairing phrases", "too many unknown pairing phrases")
	}
	// Look up under every key, so phrases shown just before a key rotation
	// (or by a replica not yet rotated) are still found.
	var pp store.PairingPhrase
	for _, h := range p.keys.Hashes("pairing-phrase", Normalize(phrase)) {
		if pp, err = p.store.ClaimPairingPhrase(ctx, h, now); !errors.Is(err, store.ErrNotFound) {
			break
		}
	}
	guess.Observe(p.checks, guess.PairingPhrase, err == nil)
	if errors.Is(err, store.ErrNotFound) {
		return "", fault.New(fault.NotFound, "unknown or expired pairing phrase: check the two words in the app, or let it show new ones")
	}
	if err != nil {
		return "", err
	}
	if err := p.store.GiveBackRate(ctx, ticket); err != nil {
		return "", err
	}
	return pp.DeviceID, nil
}
