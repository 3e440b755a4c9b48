// Package fault carries errors from domain code to clients without tying the
// domain to gRPC: a Kind says what went wrong in terms a caller can act on, a
// Message is safe to show them, and the Cause (never shown) is for logs.
// The gRPC layer maps a Kind to a status code in one place.
package fault

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies a failure the way a client needs to react to it.
type Kind int

// Kinds, named after the gRPC codes they become.
const (
	Internal Kind = iota
	InvalidArgument
	NotFound
	AlreadyExists
	PermissionDenied
	Unauthenticated
	FailedPrecondition
	ResourceExhausted
	Unavailable
	// Aborted: a concurrent change won; reading again and retrying helps.
	Aborted
)

var kindNames = [...]string{"internal", "invalid argument", "not found", "already exists",
	"permission denied", "unauthenticated", "failed precondition", "resource exhausted", "unavailable", "aborted"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is a failure with a client-facing message.
type Error struct {
	Kind    Kind
	Message string // shown to the client
	Field   string // for InvalidArgument: the request field at fault
	// RetryAfter, for ResourceExhausted and Unavailable, says when trying
	// again can succeed.
	RetryAfter time.Duration
	Cause      error // internal detail, logged but never shown
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Field != "" {
		msg = e.Field + ": " + msg
	}
	if e.Cause != nil {
		return msg + ": " + e.Cause.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Cause }

// New returns an Error of kind k with a client-facing message.
func New(k Kind, msg string) *Error { return &Error{Kind: k, Message: msg} }

// Newf is New with formatting.
func Newf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports a bad value in the named request field.
func Invalid(field, msg string) *Error {
	return &Error{Kind: InvalidArgument, Field: field, Message: msg}
}

// Wrap keeps cause for the logs behind a client-facing message.
func Wrap(k Kind, cause error, msg string) *Error {
	return &Error{Kind: k, Message: msg, Cause: cause}
}

// Exhausted reports a limit, with when to try again.
func Exhausted(msg string, retryAfter time.Duration) *Error {
	return &Error{Kind: ResourceExhausted, Message: msg, RetryAfter: retryAfter}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var fe *Error
	ok := errors.As(err, &fe)
	return fe, ok
}
