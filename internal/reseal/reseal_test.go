package reseal_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/backup"
	"github.com/pushauth/pushauth/internal/keyring"
	"github.com/pushauth/pushauth/internal/keyring/keyringtest"
	"github.com/pushauth/pushauth/internal/reseal"
	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/internal/store"
	"github.com/pushauth/pushauth/internal/store/storetest"
	"github.com/pushauth/pushauth/internal/totp"
)

var ring = keyringtest.Ring

// fill stores n backups and n TOTP factors sealed as the services seal
// them, under old.
func fill(t *testing.T, st store.Store, old *keyring.Keyring, n int) {
	t.Helper()
	ctx := t.Context()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		number := fmt.Sprintf("+316123%05d", i)
		b := store.Backup{PhoneNumber: number, DeviceID: "d1", Blob: []byte("blob"),
			SealedShare: old.Seal(backup.SharePurpose, []byte(number), []byte("share "+number)),
			Verifier:    []byte("v"), CreatedAt: now, UpdatedAt: now}
		if err := st.PutBackup(ctx, b, 0); err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("otp_%05d", i)
		f := store.TOTPFactor{ID: id, RelyingPartyID: "rp-1", UserRef: "alice", Kind: store.TOTPKindApp,
			Label: "app", SealedSecret: old.Seal(totp.SealPurpose, []byte(id), []byte("seed "+id)),
			Status: store.TOTPActive, CreatedAt: now}
		if err := st.CreateTOTPFactor(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
}

// opensUnder checks every value opens for its row under k alone.
func opensUnder(t *testing.T, st store.Store, k *keyring.Keyring, n int) {
	t.Helper()
	for _, kind := range reseal.Kinds() {
		vals, err := st.ListSealed(t.Context(), kind.Store, "", n+10)
		if err != nil {
			t.Fatal(err)
		}
		if len(vals) != n {
			t.Fatalf("%s: %d values, want %d", kind.Name, len(vals), n)
		}
		for _, v := range vals {
			pt, err := k.Open(kind.Purpose, []byte(v.Key), v.Value)
			if err != nil || !strings.HasSuffix(string(pt), " "+v.Key) {
				t.Fatalf("%s of %s after reseal: %q, %v", kind.Name, v.Key, pt, err)
			}
		}
	}
}

func TestResealThenDropTheOldKey(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		st := storetest.OpenMigrated(t, url)
		const n = 23
		fill(t, st, ring(t, "k1"), n)
		var progress []reseal.Count
		job := reseal.Job{Store: st, Keys: ring(t, "k2", "k1"), Batch: 5,
			Progress: func(c reseal.Count) { progress = append(progress, c) }}
		counts, err := job.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range counts {
			if c.Checked != n || c.Resealed != n || c.Current+c.Gone+c.Failed != 0 {
				t.Errorf("first run: %v", c)
			}
		}
		if len(progress) != 2*5 { // 23 rows in batches of 5, per kind
			t.Errorf("%d progress reports, want 10", len(progress))
		}
		opensUnder(t, st, ring(t, "k2"), n)

		counts, err = job.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range counts {
			if c.Checked != n || c.Current != n || c.Resealed != 0 {
				t.Errorf("second run: %v", c)
			}
		}
	})
}

// TestResealReportsWhatDoesNotOpen: a value under a key the setting lacks
// is counted and logged with its row masked, and left as it is.
func TestResealReportsWhatDoesNotOpen(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		st := storetest.OpenMigrated(t, url)
		fill(t, st, ring(t, "k7"), 1)
		logs := &servertest.LogBuffer{}
		before, _ := st.ListSealed(t.Context(), store.SealBackupShare, "", 10)
		counts, err := reseal.Job{Store: st, Keys: ring(t, "k2", "k1"), Log: slog.New(slog.NewTextHandler(logs, nil))}.Run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range counts {
			if c.Failed != 1 || c.Resealed != 0 {
				t.Errorf("%v", c)
			}
		}
		after, _ := st.ListSealed(t.Context(), store.SealBackupShare, "", 10)
		if !bytes.Equal(before[0].Value, after[0].Value) {
			t.Error("a value that did not open was changed")
		}
		out := logs.String()
		if !strings.Contains(out, `key id \"k7\"`) || strings.Contains(out, "+31612300000") || !strings.Contains(out, "otp_00000") {
			t.Errorf("logs name the missing key and the factor, never the full number:\n%s", out)
		}
	})
}

// TestResealConcurrent: jobs on several replicas at once re-seal each
// value once between them; every value ends under the first key.
func TestResealConcurrent(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		st := storetest.OpenMigrated(t, url)
		const n, jobs = 40, 8
		fill(t, st, ring(t, "k1"), n)
		keys := ring(t, "k2", "k1")
		var (
			mu    sync.Mutex
			total = map[string]reseal.Count{}
			wg    sync.WaitGroup
			start = make(chan struct{})
		)
		for range jobs {
			wg.Go(func() {
				<-start
				counts, err := reseal.Job{Store: st, Keys: keys, Batch: 7}.Run(context.Background())
				if err != nil {
					t.Error(err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, c := range counts {
					s := total[c.Kind]
					s.Checked += c.Checked
					s.Resealed += c.Resealed
					s.Current += c.Current
					s.Gone += c.Gone
					s.Failed += c.Failed
					total[c.Kind] = s
				}
			})
		}
		close(start)
		wg.Wait()
		for kind, c := range total {
			if c.Resealed != n || c.Failed != 0 || c.Checked != jobs*n || c.Resealed+c.Current+c.Gone != jobs*n {
				t.Errorf("%s over %d jobs: %+v, want %d re-sealed in all", kind, jobs, c, n)
			}
		}
		opensUnder(t, st, ring(t, "k2"), n)
	})
}
