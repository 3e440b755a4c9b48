// Package pii holds the one way personal data is shortened before it goes
// into logs, audit events or error strings.
package pii

import "strings"

// MaskPhone keeps the country prefix and the last two digits of an E.164
// number: "+31612345678" becomes "+31*******78". Logs, audit events and
// error strings use it instead of the number.
func MaskPhone(e164 string) string {
	if len(e164) < 6 {
		return "***"
	}
	return e164[:3] + strings.Repeat("*", len(e164)-5) + e164[len(e164)-2:]
}
