// Package reseal re-seals the server's long-lived sealed values — backup
// key shares and TOTP seeds — under the first key of secret_key, so that
// the keys before it can be dropped after a rotation. Short-lived values
// (SMS codes, pairing phrases) expire by themselves, and keyed hashes
// (backup passcode verifiers) cannot be redone without the passcode.
//
// A job is safe while replicas serve: each value is replaced by
// compare-and-swap, so a row that its owner rewrote meanwhile keeps what
// its writer sealed, which is already under the first key. Running it
// again is harmless; it only counts what is current.
package reseal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/pushauth/pushauth/internal/backup"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/pii"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/totp"
)

// Kind is one sealed column.
type Kind struct {
	Name    string // for people: "backup key shares"
	Store   string // store.SealBackupShare, …
	Purpose string // the keyring purpose it is sealed for
	// Show is how a row key may appear in logs: phone numbers masked.
	Show func(key string) string
}

// Kinds are the sealed columns a job goes through, in order.
func Kinds() []Kind {
	return []Kind{
		{Name: "backup key shares", Store: store.SealBackupShare, Purpose: backup.SharePurpose, Show: pii.MaskPhone},
		{Name: "TOTP seeds", Store: store.SealTOTPSecret, Purpose: totp.SealPurpose, Show: func(id string) string { return id }},
	}
}

// Count is what a job did with one kind so far.
type Count struct {
	Kind string
	// Checked values; of them Resealed now sealed under the first key,
	// Current already were, Gone were rewritten or deleted meanwhile (by
	// their owner, under the first key), Failed do not open with any
	// configured key.
	Checked, Resealed, Current, Gone, Failed int
}

func (c Count) String() string {
	return fmt.Sprintf("%s: %d checked, %d re-sealed, %d already current, %d changed meanwhile, %d failed",
		c.Kind, c.Checked, c.Resealed, c.Current, c.Gone, c.Failed)
}

// Job re-seals every value of Kinds().
type Job struct {
	Store store.Seals
	Keys  *keyring.Keyring
	// Batch is the rows read per query; zero means 500.
	Batch int
	// Log is told of every value that fails to open (row key shown with
	// Kind.Show); nil discards.
	Log *slog.Logger
	// Progress, when set, is called after every batch with the kind's
	// counts so far, for a progress display.
	Progress func(Count)
}

// Run goes through every kind once. It stops at the first database error
// and returns the counts so far; values that do not open are counted and
// logged, not fatal.
func (j Job) Run(ctx context.Context) ([]Count, error) {
	if j.Batch <= 0 {
		j.Batch = 500
	}
	if j.Log == nil {
		j.Log = slog.New(slog.DiscardHandler)
	}
	var out []Count
	for _, k := range Kinds() {
		c, err := j.kind(ctx, k)
		out = append(out, c)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func (j Job) kind(ctx context.Context, k Kind) (Count, error) {
	c := Count{Kind: k.Name}
	after := ""
	for {
		page, err := j.Store.ListSealed(ctx, k.Store, after, j.Batch)
		if err != nil {
			return c, fmt.Errorf("reseal %s: %w", k.Name, err)
		}
		if len(page) == 0 {
			return c, nil
		}
		for _, v := range page {
			c.Checked++
			next, current, err := j.Keys.Reseal(k.Purpose, []byte(v.Key), v.Value)
			switch {
			case err != nil:
				c.Failed++
				j.Log.Warn("reseal: value does not open with any configured key; left as it is",
					"kind", k.Store, "row", k.Show(v.Key), "err", err)
				continue
			case current:
				c.Current++
				continue
			}
			err = j.Store.ReplaceSealed(ctx, k.Store, v.Key, v.Value, next)
			switch {
			case err == nil:
				c.Resealed++
			case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
				c.Gone++
			default:
				return c, fmt.Errorf("reseal %s: %w", k.Name, err)
			}
		}
		after = page[len(page)-1].Key
		if j.Progress != nil {
			j.Progress(c)
		}
	}
}
