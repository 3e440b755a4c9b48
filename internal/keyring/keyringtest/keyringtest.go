// Package keyringtest makes fixed keyrings for tests of key rotation.
package keyringtest

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/pushauth/pushauth/internal/keyring"
)

// Setting is a secret_key setting listing ids in order, each id a letter
// and a digit ("k1"): the same id always stands for the same key.
func Setting(ids ...string) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = id + ":" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte(id[1:]), keyring.MasterSize))
	}
	return strings.Join(parts, ",")
}

// Ring is the keyring of Setting(ids...): the first seals, all open.
func Ring(t testing.TB, ids ...string) *keyring.Keyring {
	t.Helper()
	k, err := keyring.Parse(Setting(ids...))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
