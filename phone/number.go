package phone

import (
	"errors"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/pushauth/pushauth/internal/pii"
)

// ErrNumber means a phone number cannot be understood.
var ErrNumber = errors.New("phone: not a phone number: give it with its country code (+31 6 …) or a region")

// E164 normalises what a user typed to E.164 ("+31612345678"), the way the
// app does before StartPhoneVerification: region (ISO 3166, e.g. "NL") is
// used for a number without country code ("06 1234 5678"). The server
// applies its own rules (mobile numbers, allowed regions) on top.
func E164(number, region string) (string, error) {
	in := strings.TrimSpace(number)
	region = strings.ToUpper(strings.TrimSpace(region))
	if region == "" {
		if rest, ok := strings.CutPrefix(in, "00"); ok {
			in = "+" + rest
		}
		region = "ZZ"
	}
	num, err := phonenumbers.Parse(in, region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", ErrNumber
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// Mask shortens an E.164 number the way the server shows it
// (Device.masked_phone_number): "+31612345678" becomes "+31*******78".
func Mask(e164 string) string { return pii.MaskPhone(e164) }
