package registration

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/pushauth/pushauth/internal/fault"
)

// Phone is a parsed, normalised phone number.
type Phone struct {
	E164   string // "+31612345678"
	Region string // "NL"
}

// ParsePhone normalises what a user typed to E.164 and accepts only mobile
// numbers of an allowed region (all regions when allowed is empty).
// defaultRegion is used for numbers written without a country code.
func ParsePhone(input, defaultRegion string, allowed []string) (Phone, error) {
	const field = "phone_number"
	in := strings.TrimSpace(input)
	if in == "" {
		return Phone{}, fault.Invalid(field, "is empty")
	}
	region := strings.ToUpper(strings.TrimSpace(defaultRegion))
	if region == "" {
		switch {
		case strings.HasPrefix(in, "+"):
		case strings.HasPrefix(in, "00"):
			// The international prefix of most of the world, including every
			// region we expect; written without a default region.
			in = "+" + strings.TrimPrefix(in, "00")
		default:
			return Phone{}, fault.Invalid(field, "has no country code: start with + (e.g. +31 6 …) or send default_region")
		}
	} else if !phonenumbers.GetSupportedRegions()[region] {
		return Phone{}, fault.Invalid("default_region", fmt.Sprintf("%q is not a known ISO 3166 region code", defaultRegion))
	}
	if region == "" {
		region = "ZZ"
	}
	num, err := phonenumbers.Parse(in, region)
	if err != nil {
		return Phone{}, fault.Invalid(field, "is not a phone number")
	}
	if !phonenumbers.IsValidNumber(num) {
		return Phone{}, fault.Invalid(field, "is not a valid phone number")
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	default:
		return Phone{}, fault.Invalid(field, "is not a mobile number: enter the number of the phone with the app")
	}
	numRegion := phonenumbers.GetRegionCodeForNumber(num)
	if len(allowed) > 0 && !slices.Contains(allowed, numRegion) {
		return Phone{}, fault.Invalid(field, fmt.Sprintf("numbers from %s are not accepted by this service", numRegion))
	}
	return Phone{E164: phonenumbers.Format(num, phonenumbers.E164), Region: numRegion}, nil
}

// numberPrefix is the number without its last four digits: the unit of the
// per-prefix limit that stops pumping through ranges of numbers.
func numberPrefix(e164 string) string {
	if len(e164) <= 6 {
		return e164
	}
	return e164[:len(e164)-4]
}
