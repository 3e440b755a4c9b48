package events

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// Subject prefixes. A Hub for request decisions is NewHub(nc, RequestPrefix, …).
const (
	// RequestPrefix prefixes subjects announcing a login request's decision.
	RequestPrefix = "pushauth.request."
	// DevicePrefix prefixes subjects announcing device news.
	DevicePrefix = "pushauth.device."
)

// MaxIDLen bounds ids used as subject tokens, to keep subjects small.
const MaxIDLen = 256

// ErrInvalidID is wrapped by every id validation error.
var ErrInvalidID = errors.New("events: invalid subject id")

// ValidateID checks that id can be used as exactly one subject token: it
// must be non-empty, at most MaxIDLen bytes, and contain no '.', '*', '>',
// whitespace or control characters. Otherwise an id could address another
// subject or act as a wildcard.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidID)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidID, MaxIDLen)
	}
	if i := strings.IndexFunc(id, func(r rune) bool {
		return r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || unicode.IsControl(r)
	}); i >= 0 {
		return fmt.Errorf("%w: %q contains a forbidden character at byte %d", ErrInvalidID, id, i)
	}
	return nil
}

// RequestSubject returns the subject announcing news about login request id
// ("pushauth.request.<id>"), or an error if id is not a valid token.
func RequestSubject(id string) (string, error) {
	return subject(RequestPrefix, id)
}

// DeviceSubject returns the subject announcing news about device id
// ("pushauth.device.<id>"), or an error if id is not a valid token.
func DeviceSubject(id string) (string, error) {
	return subject(DevicePrefix, id)
}

func subject(prefix, id string) (string, error) {
	if err := ValidateID(id); err != nil {
		return "", err
	}
	return prefix + id, nil
}

// validatePrefix checks a Hub prefix: non-empty tokens ending in '.', no
// wildcards or whitespace.
func validatePrefix(prefix string) error {
	if !strings.HasSuffix(prefix, ".") {
		return fmt.Errorf("events: hub prefix %q must end with '.'", prefix)
	}
	for _, tok := range strings.Split(strings.TrimSuffix(prefix, "."), ".") {
		if err := ValidateID(tok); err != nil {
			return fmt.Errorf("events: hub prefix %q: %w", prefix, err)
		}
	}
	return nil
}
