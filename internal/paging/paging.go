// Package paging encodes the opaque page tokens of List RPCs. A token names
// where the previous page stopped; it is tagged with the list it belongs to so
// a token from one list is refused by another.
package paging

import (
	"encoding/base64"
	"strings"

	"github.com/pushauth/pushauth/internal/fault"
)

// Encode makes the token that resumes list after position.
func Encode(list, position string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(list + ":" + position))
}

// Decode returns the position in a token for list; "" means the first page.
func Decode(list, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err == nil {
		if pos, ok := strings.CutPrefix(string(b), list+":"); ok && pos != "" {
			return pos, nil
		}
	}
	return "", fault.Invalid("page_token", "not a page token of this list; pass next_page_token from the previous response unchanged")
}

// Size returns the page size to use for a requested one.
func Size(requested, def, max int32) int {
	switch {
	case requested <= 0:
		return int(def)
	case requested > max:
		return int(max)
	}
	return int(requested)
}
