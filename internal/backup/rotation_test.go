package backup_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/backup"
	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/keyring/keyringtest"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

// TestRestoreRenewsUnderTheFirstKey: a backup made before a rotation of
// the server key is restored after it; the restore makes its passcode
// verifier and key share again under the new key, so the old key can go
// and the backup still restores with its passcode.
func TestRestoreRenewsUnderTheFirstKey(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ctx := t.Context()
		st := storetest.OpenMigrated(t, url)
		bus, err := events.Start(ctx, events.Config{StoreDir: t.TempDir(), ServerName: "rotation"}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(bus.Close)
		clock := servertest.NewClock(servertest.Epoch)
		ring := func(ids ...string) *backup.Service {
			return backup.New(backup.DefaultConfig(), st, keyringtest.Ring(t, ids...), bus, clock.Now, slog.New(slog.DiscardHandler), nil)
		}
		const number = "+31612345678"
		phone := func(n int) store.Device {
			d := store.Device{ID: fmt.Sprintf("dev-%d", n), CredentialPrefix: fmt.Sprintf("p%d", n), CredentialHash: []byte("h"),
				PhoneNumber: number, PublicKey: []byte("k"), Platform: "ANDROID", PushToken: "t", CreatedAt: clock.Now()}
			if err := st.CreateDevice(ctx, d); err != nil {
				t.Fatal(err)
			}
			return d
		}
		share := bytes.Repeat([]byte{7}, backup.ShareSize)
		if _, _, err := ring("k1").Put(ctx, phone(1), []byte("blob"), "4831", "", share); err != nil {
			t.Fatal(err)
		}

		clock.Advance(time.Minute)
		got, err := ring("k2", "k1").Restore(ctx, phone(2), "4831")
		if err != nil || !bytes.Equal(got.KeyShare, share) {
			t.Fatalf("restore after the rotation: %v, share %x", err, got.KeyShare)
		}

		clock.Advance(time.Minute)
		got, err = ring("k2").Restore(ctx, phone(3), "4831")
		if err != nil || !bytes.Equal(got.KeyShare, share) || string(got.Blob) != "blob" {
			t.Fatalf("restore with the old key dropped: %v, share %x", err, got.KeyShare)
		}
	})
}
