// Package store is pushauth's storage contract. The database is the source of
// truth for everything pushauth knows; every backend implements Store and passes
// the conformance suite in storetest.
//
// Conventions every implementation keeps:
//   - ctx comes first and bounds the call; a cancelled ctx aborts it.
//   - A missing row is ErrNotFound; a unique key that is taken, or a
//     compare-and-swap that lost, is ErrConflict. Callers test with errors.Is.
//   - Times are stored in UTC with microsecond precision; a zero time.Time
//     means "not set" and reads back as zero.
//   - Get methods return copies; changing them changes nothing stored.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound means the row asked for does not exist (or is not the caller's).
var ErrNotFound = errors.New("store: not found")

// ErrConflict means a unique key is taken or a compare-and-swap found the row
// already changed by someone else.
var ErrConflict = errors.New("store: conflict")

// Store is everything pushauth persists.
type Store interface {
	// InTx runs fn with a Store whose calls share one transaction. It commits
	// when fn returns nil and rolls back otherwise, so a change and its audit
	// event are written together or not at all. fn must use the Store it is
	// given, not the outer one, and must not call InTx itself. A
	// transaction whose connection was lost before any statement got
	// through is run once more, so fn must not keep effects of a failed run.
	InTx(ctx context.Context, fn func(tx Store) error) error

	// Ping reports whether the database answers.
	Ping(ctx context.Context) error

	// Close releases the database. Calls after Close fail.
	Close() error

	RelyingParties
	APIKeys
	Devices
	Verifications
	Rates
	Guesses
	Outbox
	PairingPhrases
	Connections
	Requests
	UserStates
	Backups
	TOTPFactors
	Audit
	TargetRemovals
	Retention
	PushOutbox
	RequestPath
	Seals
	EventOutbox
	Webhooks
}

// NumberMatching is the relying party's number-matching mode.
type NumberMatching string

// Number-matching modes, see pushauth.v1.NumberMatchingMode.
const (
	NumberMatchingNone   NumberMatching = "NONE"
	NumberMatchingNumber NumberMatching = "NUMBER"
	NumberMatchingCode   NumberMatching = "CODE"
)

// Policy is what a relying party allows.
type Policy struct {
	NumberMatching          NumberMatching
	ApprovalTTL             time.Duration
	AllowLocationAutomation bool
	AllowBackupRestore      bool
	// ApprovalsPerMinute and ApprovalsPerHour bound login requests to one
	// user (push bombing); 0 takes the deployment's default.
	ApprovalsPerMinute int
	ApprovalsPerHour   int
}

// RelyingParty is a login server that uses pushauth.
type RelyingParty struct {
	ID          string
	Name        string // unique
	DisplayName string
	Policy      Policy
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// RelyingParties stores relying parties.
type RelyingParties interface {
	// CreateRelyingParty inserts rp. ErrConflict if its ID or Name is taken.
	CreateRelyingParty(ctx context.Context, rp RelyingParty) error
	// GetRelyingParty returns the relying party with this ID or ErrNotFound.
	GetRelyingParty(ctx context.Context, id string) (RelyingParty, error)
	// GetRelyingPartyByName returns the relying party with this name or ErrNotFound.
	GetRelyingPartyByName(ctx context.Context, name string) (RelyingParty, error)
	// ListRelyingParties returns at most limit relying parties with ID greater
	// than afterID (all when afterID is ""), in ID order.
	ListRelyingParties(ctx context.Context, afterID string, limit int) ([]RelyingParty, error)
	// UpdateRelyingParty replaces DisplayName, Policy and UpdatedAt of the row
	// with rp.ID. ErrNotFound if there is none.
	UpdateRelyingParty(ctx context.Context, rp RelyingParty) error
}

// APIKey is a relying party's credential. Only a hash of its secret is kept.
type APIKey struct {
	ID             string
	RelyingPartyID string
	Prefix         string // unique, visible part of the key
	Hash           []byte // hash of the secret part
	Description    string
	CreatedAt      time.Time
	LastUsedAt     time.Time // zero if never used
	RevokedAt      time.Time // zero while the key works
}

// APIKeys stores relying parties' API keys.
type APIKeys interface {
	// CreateAPIKey inserts k. ErrConflict if its ID or Prefix is taken,
	// ErrNotFound if its relying party does not exist.
	CreateAPIKey(ctx context.Context, k APIKey) error
	// GetAPIKey returns the key with this ID or ErrNotFound.
	GetAPIKey(ctx context.Context, id string) (APIKey, error)
	// GetAPIKeyByPrefix returns the key with this prefix or ErrNotFound.
	GetAPIKeyByPrefix(ctx context.Context, prefix string) (APIKey, error)
	// ListAPIKeys returns a relying party's keys in creation order, revoked
	// ones only when includeRevoked.
	ListAPIKeys(ctx context.Context, relyingPartyID string, includeRevoked bool) ([]APIKey, error)
	// RevokeAPIKey sets RevokedAt = at if the key is not revoked yet
	// (compare-and-swap). ErrNotFound if there is no such key, ErrConflict if
	// it was already revoked: of concurrent callers exactly one gets nil.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	// TouchAPIKey sets LastUsedAt = at if it is earlier than at.
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}

// Device is a registered phone.
type Device struct {
	ID               string
	CredentialPrefix string // unique, visible part of the device credential
	CredentialHash   []byte
	PhoneNumber      string // E.164
	PublicKey        []byte // X.509 SubjectPublicKeyInfo DER
	Platform         string // "ANDROID" or "IOS"
	PushToken        string
	PushTokenDead    bool
	Name             string
	AppVersion       string
	CreatedAt        time.Time
	LastSeenAt       time.Time
	RevokedAt        time.Time // zero while the device is registered
	// Locale is the app's language (BCP 47, e.g. "nl-NL"), from
	// registration or UpdateDevice: push alerts are written in it.
	Locale string
}

// Devices stores registered phones.
type Devices interface {
	// CreateDevice inserts d. ErrConflict if its ID or CredentialPrefix is taken.
	CreateDevice(ctx context.Context, d Device) error
	// GetDevice returns the device with this ID (revoked or not) or ErrNotFound.
	GetDevice(ctx context.Context, id string) (Device, error)
	// GetDeviceByCredentialPrefix returns the device whose credential has this
	// prefix or ErrNotFound.
	GetDeviceByCredentialPrefix(ctx context.Context, prefix string) (Device, error)
	// TouchDevice sets LastSeenAt = at if it is earlier than at.
	TouchDevice(ctx context.Context, id string, at time.Time) error
	// UpdateDevice replaces PushToken, PushTokenDead, Name, AppVersion and
	// Locale of the registered (not revoked) device d.ID. ErrNotFound if
	// there is none.
	UpdateDevice(ctx context.Context, d Device) error
	// RevokeDevice sets RevokedAt = at if the device is not revoked yet
	// (compare-and-swap). ErrNotFound if there is no such device, ErrConflict
	// if it was already revoked.
	RevokeDevice(ctx context.Context, id string, at time.Time) error
}

// Verification is one SMS sent to prove a phone number. Codes and link
// tokens are kept only as keyed hashes.
type Verification struct {
	ID            string
	PhoneNumber   string // E.164
	CodeHash      []byte
	LinkHash      []byte
	Locale        string
	ClientAddress string // the address that asked for it
	CreatedAt     time.Time
	ExpiresAt     time.Time
	Attempts      int       // wrong codes or links tried against it
	UsedAt        time.Time // zero until it registered a device
}

// Verifications stores phone verifications.
type Verifications interface {
	// CreateVerification inserts v. ErrConflict if its ID is taken.
	CreateVerification(ctx context.Context, v Verification) error
	// GetVerification returns the verification with this ID or ErrNotFound.
	GetVerification(ctx context.Context, id string) (Verification, error)
	// LatestVerification returns the newest verification of a phone number
	// (by CreatedAt) or ErrNotFound.
	LatestVerification(ctx context.Context, phoneNumber string) (Verification, error)
	// AddVerificationAttempt adds one to Attempts of an unused verification
	// if it has fewer than maxAttempts, and returns the new count: callers
	// spend the try before comparing the code (compare-and-swap, so
	// concurrent callers never pass maxAttempts). ErrNotFound if there is no
	// unused verification, ErrConflict if it is out of attempts.
	AddVerificationAttempt(ctx context.Context, id string, maxAttempts int) (int, error)
	// UseVerification sets UsedAt = at if the verification is unused, not
	// expired at at, and has fewer than maxAttempts attempts
	// (compare-and-swap). ErrNotFound if there is no such verification,
	// ErrConflict if it is used, expired or out of attempts: of concurrent
	// callers exactly one gets nil.
	UseVerification(ctx context.Context, id string, at time.Time, maxAttempts int) error
}

// ErrLimited means a rate limit or guess budget refused; errors.As finds a
// *LimitError with the details.
var ErrLimited = errors.New("store: limited")

// LimitError says which limit refused and from when it admits again.
type LimitError struct {
	Key string
	// Index is the position of the refusing limit among those asked for.
	Index int
	// Until is the first time a new attempt can succeed; zero when only a
	// reset opens it again (a guess budget with every try spent).
	Until time.Time
	// Exhausted is set when a guess budget's tries are all spent.
	Exhausted bool
}

func (e *LimitError) Error() string {
	// The key is left out: keys hold phone numbers and addresses.
	if e.Exhausted {
		return fmt.Sprintf("limit %d: every try spent", e.Index)
	}
	return fmt.Sprintf("limit %d: refused until %s", e.Index, e.Until.Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLimited) true for a *LimitError.
func (e *LimitError) Is(target error) bool { return target == ErrLimited }

// RateLimit is a rolling-window limit: at most Max events of Key in any
// Window-long stretch of time, never aligned to the clock.
type RateLimit struct {
	Key    string
	Window time.Duration
	Max    int
	// Serialized says the caller's transaction already holds a lock that
	// every taker of Key takes first (CreateApproval's user state row), so
	// TakeRate need not lock the key itself. Only for keys no other caller
	// takes without that lock.
	Serialized bool
}

// RateTicket names the events TakeRate recorded, to give them back.
type RateTicket struct{ IDs []int64 }

// Rates are rolling-window limits shared by all replicas. An event counts
// for a limit while it is inside (now-Window, now].
type Rates interface {
	// TakeRate records one event at now for every limit, if each has had
	// fewer than Max events of its Key within its Window; otherwise it
	// records nothing and returns a *LimitError (errors.Is ErrLimited) for
	// the first full limit, with Until when one of its events leaves the
	// window. Limits sharing a Key share one event. All or nothing, and
	// atomic against concurrent callers on every replica: no limit ever
	// admits more than Max. A limit with Max <= 0 refuses everything.
	TakeRate(ctx context.Context, now time.Time, limits ...RateLimit) (RateTicket, error)
	// GiveBackRate removes the events of a ticket, for an attempt that
	// turned out not to count (a right guess). Missing events are ignored.
	GiveBackRate(ctx context.Context, t RateTicket) error
	// CountRate returns how many events of key fall within window before now.
	CountRate(ctx context.Context, key string, now time.Time, window time.Duration) (int, error)
	// DeleteRateEventsBefore removes events that no limit counts at t any
	// more (their longest window has passed) and returns how many.
	DeleteRateEventsBefore(ctx context.Context, t time.Time, limit int) (int64, error)
}

// GuessBudget guards one secret against guessing: every check spends a try
// before the secret is compared, and a right answer gives it back.
type GuessBudget struct {
	Key string
	// Max is how many failures in a row spend the budget for good (until
	// ResetGuesses); 0 means no such cap, only lock-outs.
	Max int
	// Lockout is the lock after the n-th failure in a row (n >= 1); nil or
	// zero means none. It must only compute.
	Lockout func(n int) time.Duration
}

// GuessState is a budget as stored.
type GuessState struct {
	Key         string
	Failures    int
	LockedUntil time.Time
	UpdatedAt   time.Time
}

// Guesses stores guess budgets.
type Guesses interface {
	// SpendGuess counts a try against b at now, before the caller compares
	// the secret, as a failure with the lock-out that failure brings. It
	// refuses with a *LimitError (errors.Is ErrLimited) while the budget is
	// locked at now or, with b.Max > 0, when Max failures are counted. One
	// locked step: concurrent callers on any replica are each counted, so no
	// more than the budget are ever compared. It returns the state after the
	// spend.
	SpendGuess(ctx context.Context, b GuessBudget, now time.Time) (GuessState, error)
	// ResetGuesses clears failures and lock of key (a right answer): the try
	// spent for it, and earlier failures, are given back.
	ResetGuesses(ctx context.Context, key string, at time.Time) error
	// GetGuesses returns the budget of key; the zero state (with Key) if none.
	GetGuesses(ctx context.Context, key string) (GuessState, error)
	// DeleteGuessesBefore removes budgets not touched since t whose locks
	// have ended by t, and returns how many.
	DeleteGuessesBefore(ctx context.Context, t time.Time, limit int) (int64, error)
}

// OutboxMessage is an SMS kept by the development outbox instead of sent.
type OutboxMessage struct {
	ID          int64 // assigned by AddOutboxMessage, increasing
	PhoneNumber string
	Body        string
	CreatedAt   time.Time
}

// Outbox stores messages of the development SMS outbox.
type Outbox interface {
	// AddOutboxMessage inserts m and returns the ID it was given.
	AddOutboxMessage(ctx context.Context, m OutboxMessage) (int64, error)
	// ListOutboxMessages returns messages newest first, only to phoneNumber
	// when it is not "", at most limit (> 0).
	ListOutboxMessages(ctx context.Context, phoneNumber string, limit int) ([]OutboxMessage, error)
}

// AuditEvent is one entry of the append-only audit log. Details never hold
// secrets, codes, phrases or full phone numbers.
type AuditEvent struct {
	ID             int64 // assigned by AppendAuditEvent, increasing
	Time           time.Time
	Actor          string
	Action         string
	RelyingPartyID string
	Target         string
	RequestID      string
	Details        map[string]string
}

// AuditFilter selects audit events. Zero fields do not filter.
type AuditFilter struct {
	RelyingPartyID string
	Since          time.Time // Time >= Since
	Until          time.Time // Time < Until
	BeforeID       int64     // ID < BeforeID, for paging
	Limit          int       // > 0
}

// Audit is the append-only audit log. There is no update; only Retention
// deletes events, once they are older than the audit retention period.
type Audit interface {
	// AppendAuditEvent inserts e and returns the ID it was given.
	AppendAuditEvent(ctx context.Context, e AuditEvent) (int64, error)
	// RecordAuditEvent inserts e and puts feed, the security events it
	// stands for, into the event outbox (see EventOutbox) in one statement,
	// so a change's audit row and its events commit together and cost one
	// statement. ErrConflict if a feed event's ID is taken.
	RecordAuditEvent(ctx context.Context, e AuditEvent, feed []FeedEvent) error
	// ListAuditEvents returns matching events newest first (by ID descending).
	ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// PairingPhrase is a live two-word phrase a device shows. Only its keyed
// hash is kept.
type PairingPhrase struct {
	Hash      []byte
	DeviceID  string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // zero until claimed
}

// PairingPhrases stores pairing phrases.
type PairingPhrases interface {
	// PutPairingPhrase stores p, deleting every other phrase of p.DeviceID
	// and every phrase that expired before p.CreatedAt. ErrConflict if an
	// unexpired phrase with the same hash exists (the caller draws again).
	PutPairingPhrase(ctx context.Context, p PairingPhrase) error
	// ClaimPairingPhrase marks the phrase with this hash used at at if it is
	// unused and not expired at at (compare-and-swap) and returns it.
	// ErrNotFound otherwise: of concurrent callers exactly one succeeds.
	ClaimPairingPhrase(ctx context.Context, hash []byte, at time.Time) (PairingPhrase, error)
}

// Connection states.
const (
	ConnectionPending = "PENDING" // waiting for the device to approve pairing
	ConnectionActive  = "ACTIVE"
	ConnectionRemoved = "REMOVED" // removed, denied or expired; kept for audit
)

// Connection links a relying party's user to a device.
type Connection struct {
	ID             string
	RelyingPartyID string
	UserRef        string
	DeviceID       string
	AccountLabel   string
	Status         string
	CreatedAt      time.Time
	ActivatedAt    time.Time
	RemovedAt      time.Time
}

// Connections stores connections.
type Connections interface {
	// CreateConnection inserts c (normally PENDING). ErrConflict if its ID is
	// taken.
	CreateConnection(ctx context.Context, c Connection) error
	// GetConnection returns the connection with this ID or ErrNotFound.
	GetConnection(ctx context.Context, id string) (Connection, error)
	// ActivateConnection moves a PENDING connection to ACTIVE at at
	// (compare-and-swap), first removing (at at) any other ACTIVE connection
	// of the same relying party, user and device, so there is at most one.
	// ErrNotFound if there is no such connection, ErrConflict if it is not
	// PENDING.
	ActivateConnection(ctx context.Context, id string, at time.Time) error
	// RemoveConnection moves a PENDING or ACTIVE connection to REMOVED at at.
	// ErrNotFound if there is none, ErrConflict if it is already REMOVED.
	RemoveConnection(ctx context.Context, id string, at time.Time) error
	// ListDeviceConnections returns a device's ACTIVE connections, oldest first.
	ListDeviceConnections(ctx context.Context, deviceID string) ([]Connection, error)
	// ListUserConnections returns the ACTIVE connections of a relying
	// party's user, oldest first.
	ListUserConnections(ctx context.Context, relyingPartyID, userRef string) ([]Connection, error)
	// TransferConnection moves an ACTIVE connection to another device (a
	// backup restore). ErrNotFound if there is no such ACTIVE connection,
	// ErrConflict if the new device already has an ACTIVE connection for the
	// same relying party and user.
	TransferConnection(ctx context.Context, id, newDeviceID string) error
}

// Request kinds.
const (
	KindLogin   = "LOGIN"
	KindPairing = "PAIRING"
)

// Request states and reasons, as in pushauth.v1.RequestStatus/DecisionReason.
const (
	StatusPending   = "PENDING"
	StatusApproved  = "APPROVED"
	StatusDenied    = "DENIED"
	StatusExpired   = "EXPIRED"
	StatusCancelled = "CANCELLED"

	ReasonUser           = "USER"
	ReasonLocationRule   = "LOCATION_RULE"
	ReasonNumberMismatch = "NUMBER_MISMATCH"
	ReasonFraudReport    = "FRAUD_REPORT"
	ReasonSuperseded     = "SUPERSEDED"
	ReasonTimeout        = "TIMEOUT"
	ReasonCancelled      = "CANCELLED"
	ReasonDeviceRemoved  = "DEVICE_REMOVED" // every target device was revoked or disconnected
)

// RequestContext is what the phone shows about a login.
type RequestContext struct {
	AppName   string
	IPAddress string
	Location  string
	Browser   string
	Action    string
}

// Request is a login or pairing request.
type Request struct {
	ID             string
	Kind           string
	RelyingPartyID string
	UserRef        string
	ConnectionID   string // PAIRING: the pending connection it activates
	AccountLabel   string
	Context        RequestContext
	NumberMatching NumberMatching
	NumberHash     []byte // keyed hash of the number shown; nil for NONE
	Status         string
	Reason         string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	DecidedAt      time.Time
	// Set when a device decided.
	DecidedBy      string
	Payload        []byte // the signed decision string
	Signature      []byte
	AutoApproved   bool
	LocationRuleID string
}

// Delivery states of a request target.
const (
	DeliveryQueued = "QUEUED"
	DeliverySent   = "SENT"
	DeliveryFailed = "FAILED" // transient failures still retried, or gave up
	DeliveryDead   = "DEAD"   // the push token is dead
	DeliveryMuted  = "MUTED"  // not pushed: the user reported fraud
	// DeliveryRemoved: the device was revoked or its connection removed
	// while the request was pending; it may no longer answer it.
	DeliveryRemoved = "REMOVED"
)

// RequestTarget is one device a request was sent to.
type RequestTarget struct {
	RequestID string
	DeviceID  string
	Delivery  string
	Detail    string // why delivery failed; no secrets
	UpdatedAt time.Time
	SeenAt    time.Time // zero until the app opened the request
}

// Decision ends a pending request.
type Decision struct {
	RequestID      string
	Status         string // not PENDING
	Reason         string
	At             time.Time
	DecidedBy      string // device id, or "" when no device decided
	Payload        []byte
	Signature      []byte
	AutoApproved   bool
	LocationRuleID string
}

// Requests stores requests and their targets.
type Requests interface {
	// CreateRequest inserts r with its targets. ErrConflict if the ID is taken.
	CreateRequest(ctx context.Context, r Request, targets []RequestTarget) error
	// GetRequest returns the request with this ID or ErrNotFound.
	GetRequest(ctx context.Context, id string) (Request, error)
	// ListRequestTargets returns a request's targets in device-ID order.
	ListRequestTargets(ctx context.Context, requestID string) ([]RequestTarget, error)
	// TargetPending reports whether a push to the device is still worth
	// sending: the request is PENDING, not expired at now, and has a target
	// on the device that was not REMOVED. One read; false (no error) if
	// there is no such request or target.
	TargetPending(ctx context.Context, requestID, deviceID string, now time.Time) (bool, error)
	// ListDevicePendingRequests returns the PENDING requests targeting a
	// device (with a target not REMOVED) that have not expired at now,
	// oldest first.
	ListDevicePendingRequests(ctx context.Context, deviceID string, now time.Time) ([]Request, error)
	// ListUserPendingRequests returns the PENDING requests of kind for a
	// relying party's user that have not expired at now, oldest first.
	ListUserPendingRequests(ctx context.Context, relyingPartyID, userRef, kind string, now time.Time) ([]Request, error)
	// DecideRequest applies d if the request is PENDING and, unless d.Status
	// is EXPIRED, not expired at d.At (compare-and-swap). ErrNotFound if
	// there is no such request, ErrConflict if it was decided or expired:
	// of concurrent callers exactly one gets nil.
	DecideRequest(ctx context.Context, d Decision) error
	// ExpireRequests marks up to limit PENDING requests with ExpiresAt <= now
	// EXPIRED (reason TIMEOUT, DecidedAt now) and returns them as they are
	// now. Safe to run on every replica at once: each request is returned to
	// exactly one caller.
	ExpireRequests(ctx context.Context, now time.Time, limit int) ([]Request, error)
	// UpdateTargetDelivery sets Delivery, Detail and UpdatedAt of a target
	// unless it was REMOVED, which is final (compare-and-swap: a push result
	// that lands after the phone was taken off the request must not put it
	// back). ErrNotFound if there is no such target, ErrConflict if it was
	// removed.
	UpdateTargetDelivery(ctx context.Context, requestID, deviceID, delivery, detail string, at time.Time) error
	// MarkTargetSeen sets SeenAt = at if it is zero and reports whether it
	// did. ErrNotFound if there is no such target.
	MarkTargetSeen(ctx context.Context, requestID, deviceID string, at time.Time) (bool, error)
	// MarkPushTokenDead sets PushTokenDead on a device if its push token is
	// still token (a newer token is not marked).
	MarkPushTokenDead(ctx context.Context, deviceID, token string) error
}

// UserState is the abuse-limiting state of a relying party's user.
type UserState struct {
	RelyingPartyID      string
	UserRef             string
	ConsecutiveFailures int
	BackoffUntil        time.Time
	MutedUntil          time.Time
	// TOTP guesses: consecutive wrong codes and the lock-out they caused.
	TOTPFailures    int
	TOTPLockedUntil time.Time
	UpdatedAt       time.Time
}

// UserStates stores per-user limit state.
type UserStates interface {
	// GetUserState returns the state of a user; a user with none has the
	// zero state (with the keys filled in), not ErrNotFound.
	GetUserState(ctx context.Context, relyingPartyID, userRef string) (UserState, error)
	// UpdateUserState reads the state, calls fn on it and writes it back,
	// atomically with respect to other UpdateUserState calls for the same
	// user on any replica. An error from fn aborts without writing.
	UpdateUserState(ctx context.Context, relyingPartyID, userRef string, fn func(*UserState) error) error
}

// Backup is the app's encrypted cloud backup for one phone number. Its
// passcode's guess budget is the GuessBudget "backup:<number>".
type Backup struct {
	PhoneNumber string // E.164, the key
	DeviceID    string // the device that stored it (or restored it last)
	Blob        []byte // encrypted by the app; opaque here
	SealedShare []byte // the server's key share, sealed under the server key
	Verifier    []byte // keyed hash of the passcode under a server pepper
	// Version counts writes: 1 for a new backup, +1 on every replacement.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Backups stores backups. Every write is compare-and-swap on Version, so a
// restore or replacement that checked the passcode against one backup can
// never write over another one, nor bring back a wiped one.
type Backups interface {
	// PutBackup stores b as version+1 if the number's backup is at version
	// (0: if there is none). ErrConflict otherwise.
	PutBackup(ctx context.Context, b Backup, version int64) error
	// GetBackup returns the backup of a number or ErrNotFound.
	GetBackup(ctx context.Context, phoneNumber string) (Backup, error)
	// DeleteBackup removes the backup of a number if it is at version.
	// ErrNotFound if there is none, ErrConflict if it is at another version.
	DeleteBackup(ctx context.Context, phoneNumber string, version int64) error
}

// Sealed columns that outlive a rotation of the server key: each row's
// value is sealed under the key that was first when it was written.
const (
	SealBackupShare = "backup_share" // backups.sealed_share; row key: phone number
	SealTOTPSecret  = "totp_secret"  // totp_factors.sealed_secret; row key: factor id
)

// Sealed is one sealed value and the key of its row.
type Sealed struct {
	Key   string
	Value []byte
}

// Seals lets a maintenance job re-seal stored values under the newest
// server key, so older keys can be dropped from the setting. kind is one of
// the Seal… constants; other kinds are an error.
type Seals interface {
	// ListSealed returns up to limit values of kind whose row key sorts
	// after after, in key order, so a caller pages with the last key.
	ListSealed(ctx context.Context, kind, after string, limit int) ([]Sealed, error)
	// ReplaceSealed sets the value of the row to next if it still is prev
	// (compare-and-swap: a row rewritten meanwhile keeps what its writer
	// sealed). ErrNotFound if there is no such row, ErrConflict if its
	// value changed.
	ReplaceSealed(ctx context.Context, kind, key string, prev, next []byte) error
}

// TOTP factor kinds and states.
const (
	TOTPKindApp        = "APP"        // another authenticator app
	TOTPKindConnection = "CONNECTION" // codes from a paired pushauth app

	TOTPPending = "PENDING" // enrolled, waiting for a first code
	TOTPActive  = "ACTIVE"
	TOTPRemoved = "REMOVED"
)

// TOTPFactor is one RFC 6238 secret of a relying party's user.
type TOTPFactor struct {
	ID             string
	RelyingPartyID string
	UserRef        string
	Kind           string
	ConnectionID   string // CONNECTION factors
	Label          string
	SealedSecret   []byte
	Status         string
	LastUsedStep   int64 // the newest time step a code was accepted for
	CreatedAt      time.Time
	ConfirmedAt    time.Time
	RemovedAt      time.Time
}

// TOTPFactors stores TOTP factors.
type TOTPFactors interface {
	// CreateTOTPFactor inserts f. ErrConflict if its ID is taken.
	CreateTOTPFactor(ctx context.Context, f TOTPFactor) error
	// GetTOTPFactor returns the factor with this ID or ErrNotFound.
	GetTOTPFactor(ctx context.Context, id string) (TOTPFactor, error)
	// ListUserTOTPFactors returns a user's PENDING and ACTIVE factors,
	// oldest first.
	ListUserTOTPFactors(ctx context.Context, relyingPartyID, userRef string) ([]TOTPFactor, error)
	// GetConnectionTOTPFactor returns the ACTIVE factor of a connection or
	// ErrNotFound.
	GetConnectionTOTPFactor(ctx context.Context, connectionID string) (TOTPFactor, error)
	// ActivateTOTPFactor moves a PENDING factor to ACTIVE at at
	// (compare-and-swap). ErrNotFound if none, ErrConflict if not PENDING.
	ActivateTOTPFactor(ctx context.Context, id string, at time.Time) error
	// RemoveTOTPFactor moves a factor to REMOVED at at. ErrNotFound if none,
	// ErrConflict if already removed.
	RemoveTOTPFactor(ctx context.Context, id string, at time.Time) error
	// RemoveConnectionTOTPFactors removes the factors of a connection.
	RemoveConnectionTOTPFactors(ctx context.Context, connectionID string, at time.Time) error
	// UseTOTPStep sets LastUsedStep = step if it is below step
	// (compare-and-swap), so a code's time step is accepted once. ErrNotFound
	// if there is no ACTIVE factor with this ID, ErrConflict on a replay: of
	// concurrent callers with the same step exactly one gets nil.
	UseTOTPStep(ctx context.Context, id string, step int64) error
}

// TargetFilter selects the pending requests whose targets TargetRemovals
// removes. DeviceID is required; empty other fields do not filter.
type TargetFilter struct {
	DeviceID       string
	RelyingPartyID string
	UserRef        string
	Kind           string
}

// TargetRemovals take revoked devices and removed connections off pending
// requests, so those phones can no longer answer them.
type TargetRemovals interface {
	// RemoveTargets sets Delivery = REMOVED, Detail = detail and UpdatedAt =
	// at on the targets of f.DeviceID on the PENDING requests not expired at
	// at that match f and are not REMOVED yet, and returns those requests
	// (oldest first). The caller decides what becomes of a request that has
	// no other target left.
	RemoveTargets(ctx context.Context, f TargetFilter, detail string, at time.Time) ([]Request, error)
	// LockActiveConnection returns the ACTIVE connection of a relying
	// party's user on deviceID, or ErrNotFound. Inside InTx it holds the
	// row until the transaction ends, so a removal, revocation or transfer
	// of the connection runs wholly before or after the caller.
	LockActiveConnection(ctx context.Context, relyingPartyID, userRef, deviceID string) (Connection, error)
}

// Retention deletes what pushauth no longer needs, so personal data (phone
// numbers, client addresses, login context, SMS texts) is not kept forever.
// Every method deletes at most limit (> 0) rows per call, oldest first, and
// returns how many it deleted: a sweeper calls it again while it returns
// limit, so no call holds locks for long. Rows are selected by cutoff, a time
// the caller computes; a row exactly at cutoff is kept. Each method is
// idempotent and safe to run on every replica at once: concurrent callers
// never fail because another one deleted a row first, and each row is counted
// by exactly one of them.
type Retention interface {
	// DeleteExpiredVerifications deletes verifications whose ExpiresAt is
	// before cutoff (or not set), used or not.
	DeleteExpiredVerifications(ctx context.Context, cutoff time.Time, limit int) (int64, error)
	// DeleteFinishedRequests deletes requests that are not PENDING and were
	// decided before cutoff, together with their targets, and returns how
	// many requests it deleted. A PENDING request is never deleted.
	DeleteFinishedRequests(ctx context.Context, cutoff time.Time, limit int) (int64, error)
	// DeleteOutboxMessagesBefore deletes outbox messages created before
	// cutoff (or without a creation time).
	DeleteOutboxMessagesBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error)
	// DeleteAuditEventsBefore deletes audit events whose Time is before
	// cutoff. Events without a Time are kept.
	DeleteAuditEventsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error)
	// DeleteExpiredPairingPhrases deletes pairing phrases whose ExpiresAt is
	// before cutoff (or not set), claimed or not.
	DeleteExpiredPairingPhrases(ctx context.Context, cutoff time.Time, limit int) (int64, error)
}

// QueuedPush is one push job waiting in the push outbox: written in the
// transaction that creates its request, so a committed request never loses
// its push, and deleted once the push queue has stored the job.
type QueuedPush struct {
	// ID is "<request id>:<device id>", also the queue's de-duplication id.
	ID string
	// Job is the job as the push queue carries it (opaque here).
	Job       []byte
	CreatedAt time.Time
}

// PushOutbox is the transactional outbox of push jobs. A relay on every
// replica hands its rows to the push queue.
type PushOutbox interface {
	// AddPushes inserts jobs (use it inside the transaction that writes
	// their request). ErrConflict if an ID is taken.
	AddPushes(ctx context.Context, jobs []QueuedPush) error
	// ClaimPushes returns up to limit (> 0) jobs created at or before
	// createdBy that no relay holds at now, oldest first, and holds them
	// until until, so other relays skip them meanwhile. Concurrent callers on
	// any replica get disjoint jobs. A job whose holder died comes back once
	// its hold ends.
	ClaimPushes(ctx context.Context, createdBy, now, until time.Time, limit int) ([]QueuedPush, error)
	// DeletePushes removes the jobs with these IDs; missing ones are ignored.
	DeletePushes(ctx context.Context, ids []string) error
	// ReleasePushes ends the hold on the jobs with these IDs, so the next
	// claim on any replica takes them: a relay whose publish failed gives
	// them back instead of keeping them off for the rest of the hold.
	// Missing ones are ignored.
	ReleasePushes(ctx context.Context, ids []string) error
}

// backgroundKey marks a context as background work.
type backgroundKey struct{}

// Background marks ctx as a background worker's (the push outbox relay,
// push results, batched marks, sweepers), so a backend's statement counts
// can tell it from the request path.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

// IsBackground reports whether ctx was marked by Background.
func IsBackground(ctx context.Context) bool {
	b, _ := ctx.Value(backgroundKey{}).(bool)
	return b
}

// UserDevice is an ACTIVE connection of a user with its device.
type UserDevice struct {
	Connection Connection
	Device     Device
}

// DeciderState is what the transaction deciding a login checks about the
// phone that decides it and its user.
type DeciderState struct {
	// Connected: the device has an ACTIVE connection to the user, now
	// locked until the transaction ends.
	Connected bool
	// Registered: the device exists and is not revoked.
	Registered bool
	// User is the user's limit state as the transaction sees it.
	User UserState
}

// RequestPath holds the reads of the request path that join what one call
// needs into one statement.
type RequestPath interface {
	// GetRequestWithTargets returns a request and its targets (in device-ID
	// order), or ErrNotFound.
	GetRequestWithTargets(ctx context.Context, id string) (Request, []RequestTarget, error)
	// ListUserDevices returns the ACTIVE connections of a relying party's
	// user, oldest first, each with its device (revoked or not).
	ListUserDevices(ctx context.Context, relyingPartyID, userRef string) ([]UserDevice, error)
	// LockDecider reads, inside InTx, whether deviceID may still decide a
	// login of the user and the user's state. When connected, the
	// connection row is held until the transaction ends (as
	// LockActiveConnection does), so a removal, revocation or transfer runs
	// wholly before or after the decision.
	LockDecider(ctx context.Context, relyingPartyID, userRef, deviceID string) (DeciderState, error)
	// LockUserPending, inside InTx, locks the user's state row until the
	// transaction ends (creating it if missing, as UpdateUserState does)
	// and returns it with the user's PENDING requests of kind that expire
	// after now, oldest first, as ListUserPendingRequests would: read after
	// the lock is held, so they include every request an earlier holder of
	// the lock committed.
	LockUserPending(ctx context.Context, relyingPartyID, userRef, kind string, now time.Time) (UserState, []Request, error)
	// ListSettledRequests returns those of ids (a few hundred at most) that
	// are no longer PENDING or whose ExpiresAt is at or before now, in one
	// read: a replica's recheck of every request its waiters hold.
	// Unknown ids are left out.
	ListSettledRequests(ctx context.Context, ids []string, now time.Time) ([]string, error)
	// ListRequestsSettledSince returns the ids of requests decided, expired
	// or cancelled at or after since (by DecidedAt), at most limit of them
	// in any order, on an index: the recheck's cheap round, whose cost is
	// the decisions since the last round, not the requests waited on.
	ListRequestsSettledSince(ctx context.Context, since time.Time, limit int) ([]string, error)
}
