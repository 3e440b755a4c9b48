package auth

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/store"
)

// Cache remembers, on one replica, which relying party or device a
// credential belongs to, for at most TTL, so a busy API key or phone is not
// looked up in the database on every call. A revocation notice drops the
// revoked credential's entries at once on every replica (events.Revocations
// OnRevoke); TTL bounds how long a lost notice, or a change that sends none
// (a relying party's new policy), goes unseen. Only successful lookups are
// kept, under a hash of the whole credential, so a wrong secret never hits.
type Cache struct {
	keys    APIKeyAuthenticator
	devices DeviceAuthenticator
	ttl     time.Duration
	now     func() time.Time
	max     int

	mu sync.Mutex
	// gen counts notices, so a lookup that raced one does not store what
	// it read before the revocation.
	gen     uint64
	apiKeys map[[32]byte]keyEntry
	devs    map[[32]byte]deviceEntry
	rps     map[string]rpEntry
}

type rpEntry struct {
	rp      store.RelyingParty
	expires time.Time
}

type keyEntry struct {
	rp      store.RelyingParty
	key     store.APIKey
	expires time.Time
}

type deviceEntry struct {
	dev     store.Device
	expires time.Time
}

// NewCache caches keys and devices for ttl on the clock now and drops
// entries on the notices rev receives (rev may be nil).
func NewCache(keys APIKeyAuthenticator, devices DeviceAuthenticator, ttl time.Duration, now func() time.Time, rev *events.Revocations) *Cache {
	c := &Cache{keys: keys, devices: devices, ttl: ttl, now: now, max: 100_000,
		apiKeys: map[[32]byte]keyEntry{}, devs: map[[32]byte]deviceEntry{}, rps: map[string]rpEntry{}}
	if rev != nil {
		rev.OnRevoke(c.revoked)
	}
	return c
}

// APIKeys is the caching APIKeyAuthenticator.
func (c *Cache) APIKeys() APIKeyAuthenticator { return cachedKeys{c} }

// Devices is the caching DeviceAuthenticator.
func (c *Cache) Devices() DeviceAuthenticator { return cachedDevices{c} }

// RelyingParties returns rps whose GetRelyingParty is cached like the
// credentials (for what a phone is shown of a relying party).
func (c *Cache) RelyingParties(rps store.RelyingParties) store.RelyingParties {
	return cachedRPs{RelyingParties: rps, c: c}
}

type cachedRPs struct {
	store.RelyingParties
	c *Cache
}

func (r cachedRPs) GetRelyingParty(ctx context.Context, id string) (store.RelyingParty, error) {
	c := r.c
	now := c.now()
	c.mu.Lock()
	e, ok := c.rps[id]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.rp, nil
	}
	rp, err := r.RelyingParties.GetRelyingParty(ctx, id)
	if err != nil {
		return rp, err
	}
	c.mu.Lock()
	if gen == c.gen {
		if len(c.rps) >= c.max {
			clear(c.rps)
		}
		c.rps[id] = rpEntry{rp: rp, expires: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	return rp, nil
}

// Len is how many credentials are cached, for tests.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.apiKeys) + len(c.devs)
}

// revoked drops what n revoked. Revocations are rare; a scan is cheap.
func (c *Cache) revoked(n events.Revocation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	switch n.Kind {
	case events.RevokedAPIKey:
		for h, e := range c.apiKeys {
			if e.key.ID == n.ID {
				delete(c.apiKeys, h)
			}
		}
	case events.ChangedRelyingParty:
		delete(c.rps, n.ID)
		for h, e := range c.apiKeys {
			if e.rp.ID == n.ID {
				delete(c.apiKeys, h)
			}
		}
	case events.RevokedDevice:
		for h, e := range c.devs {
			if e.dev.ID == n.ID {
				delete(c.devs, h)
			}
		}
	}
}

// room makes space before an insert: expired entries go first, then all.
func room[E any](m map[[32]byte]E, max int, expired func(E) bool) {
	if len(m) < max {
		return
	}
	for h, e := range m {
		if expired(e) {
			delete(m, h)
		}
	}
	if len(m) >= max {
		clear(m)
	}
}

type cachedKeys struct{ c *Cache }

func (k cachedKeys) Authenticate(ctx context.Context, token string) (store.RelyingParty, store.APIKey, error) {
	c := k.c
	h := sha256.Sum256([]byte(token))
	now := c.now()
	c.mu.Lock()
	e, ok := c.apiKeys[h]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.rp, e.key, nil
	}
	rp, key, err := c.keys.Authenticate(ctx, token)
	if err != nil {
		return rp, key, err
	}
	c.mu.Lock()
	if gen == c.gen {
		room(c.apiKeys, c.max, func(e keyEntry) bool { return !now.Before(e.expires) })
		c.apiKeys[h] = keyEntry{rp: rp, key: key, expires: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	return rp, key, nil
}

type cachedDevices struct{ c *Cache }

func (d cachedDevices) Authenticate(ctx context.Context, credential string) (store.Device, error) {
	c := d.c
	h := sha256.Sum256([]byte(credential))
	now := c.now()
	c.mu.Lock()
	e, ok := c.devs[h]
	gen := c.gen
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.dev, nil
	}
	dev, err := c.devices.Authenticate(ctx, credential)
	if err != nil {
		return dev, err
	}
	c.mu.Lock()
	if gen == c.gen {
		room(c.devs, c.max, func(e deviceEntry) bool { return !now.Before(e.expires) })
		c.devs[h] = deviceEntry{dev: dev, expires: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	return dev, nil
}
