package device_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pushauth/pushauth/internal/server/servertest"
	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// specApp is the backup side of an app written from docs/backup-and-totp.md
// alone ("The blob", "The key"), not from package phone: if the page
// and the code drift apart, TestBackupFromTheDocs fails.
type specApp struct{}

func (specApp) random(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (specApp) aead(t *testing.T, passcode string, share, salt []byte, memory, passes uint32, threads uint8) cipher.AEAD {
	t.Helper()
	pk := argon2.IDKey([]byte(passcode), salt, passes, memory, threads, 32)
	key, err := hkdf.Key(sha256.New, append(pk, share...), []byte{}, "pushauth-backup-v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return gcm
}

// seal makes a blob as "Making a backup" steps 2 and 3 say, returning the
// blob and the new key share.
func (a specApp) seal(t *testing.T, passcode string, plain []byte) (blob, share []byte) {
	t.Helper()
	share = a.random(t, 32)
	header := []byte("PAB1")
	header = binary.BigEndian.AppendUint32(header, 65536)
	header = binary.BigEndian.AppendUint32(header, 3)
	header = append(header, 4)
	salt, nonce := a.random(t, 16), a.random(t, 12)
	header = append(append(header, salt...), nonce...)
	if len(header) != 41 {
		t.Fatalf("header of %d bytes", len(header))
	}
	return a.aead(t, passcode, share, salt, 65536, 3, 4).Seal(header, nonce, plain, header), share
}

// open decrypts a restored blob as "Restore on a new phone" step 4 says.
func (a specApp) open(t *testing.T, passcode string, share, blob []byte) ([]byte, error) {
	t.Helper()
	if len(blob) < 41+16 || string(blob[:4]) != "PAB1" {
		return nil, errors.New("not a backup")
	}
	memory, passes, threads := binary.BigEndian.Uint32(blob[4:8]), binary.BigEndian.Uint32(blob[8:12]), blob[12]
	if threads == 0 || passes == 0 || passes > 10 || memory > 1<<20 || memory < 8*uint32(threads) {
		return nil, errors.New("costs out of range")
	}
	return a.aead(t, passcode, share, blob[13:29], memory, passes, threads).Open(nil, blob[29:41], blob[41:], blob[:41])
}

type backupContent struct {
	Version  int      `json:"version"`
	Accounts []string `json:"accounts"`
}

// TestBackupFromTheDocs: an app written from docs/backup-and-totp.md makes
// three successive backups (the third with a new passcode); a second phone
// with the same number restores and decrypts the latest one. The simulator's
// crypto (package phone) reads and writes the same blobs.
func TestBackupFromTheDocs(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := servertest.Context(t)
		rp := ts.CreateRelyingParty(t, "mijn-portal", &pushauthv1.RelyingPartyPolicy{AllowBackupRestore: true, ApprovalTtl: durationpb.New(time.Minute)})
		_, key := ts.CreateAPIKey(t, rp.GetId())
		phone1 := servertest.NewPhone(t, false)
		ts.Register(t, phone1, number)
		ts.Pair(t, phone1, key, "jan", "jan@portal")
		p1 := ts.WithToken(ctx, phone1.Credential)
		app := specApp{}

		uploads := []struct{ passcode, current string }{{"4831", ""}, {"4831", "4831"}, {"5937", "4831"}}
		var shares [][]byte
		for i, u := range uploads {
			plain, _ := json.Marshal(backupContent{Version: i + 1, Accounts: []string{"jan@portal"}})
			blob, share := app.seal(t, u.passcode, plain)
			put, err := ts.Device.PutBackup(p1, &pushauthv1.PutBackupRequest{Blob: blob, Passcode: u.passcode, CurrentPasscode: u.current, KeyShare: share})
			if err != nil {
				t.Fatalf("upload %d: %v", i+1, err)
			}
			if !bytes.Equal(put.GetKeyShare(), share) {
				t.Fatalf("upload %d: the server answered another key share", i+1)
			}
			shares = append(shares, share)
			ts.Clock.Advance(time.Minute)
		}

		phone2 := servertest.NewPhone(t, true)
		ts.Register(t, phone2, number)
		res, err := ts.Device.RestoreBackup(ts.WithToken(ctx, phone2.Credential), &pushauthv1.RestoreBackupRequest{Passcode: "5937"})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.GetKeyShare(), shares[2]) {
			t.Fatal("the restore returned the key share of another upload")
		}
		plain, err := app.open(t, "5937", res.GetKeyShare(), res.GetBlob())
		if err != nil {
			t.Fatalf("the restored blob does not decrypt: %v", err)
		}
		var c backupContent
		if err := json.Unmarshal(plain, &c); err != nil || c.Version != 3 {
			t.Fatalf("restored %s: %v", plain, err)
		}
		if _, err := app.open(t, "4831", res.GetKeyShare(), res.GetBlob()); err == nil {
			t.Fatal("the old passcode opens the new blob")
		}
		// The simulator's crypto agrees with the page, both ways.
		if got, err := phone.OpenBackup("5937", res.GetKeyShare(), res.GetBlob()); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("phone.OpenBackup of the app's blob: %v", err)
		}
		share := phone.NewKeyShare()
		blob, err := phone.SealBackup("5937", share, []byte("from the simulator"))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := app.open(t, "5937", share, blob); err != nil || string(got) != "from the simulator" {
			t.Fatalf("the app cannot open phone's blob: %q %v", got, err)
		}
	})
}

// TestBackupKeyShareRules: a share must be 32 bytes and not all zero; an
// upload without one (older apps) keeps the backup's share, so such an app,
// which encrypts with the share of the previous upload, can still restore.
func TestBackupKeyShareRules(t *testing.T) {
	servertest.ForEachBackend(t, func(t *testing.T, url string) {
		ts := servertest.New(t, url)
		ctx := servertest.Context(t)
		phone1 := servertest.NewPhone(t, false)
		ts.Register(t, phone1, number)
		p1 := ts.WithToken(ctx, phone1.Credential)
		_, err := ts.Device.PutBackup(p1, &pushauthv1.PutBackupRequest{Blob: []byte("b"), Passcode: "4831", KeyShare: make([]byte, 32)})
		wantCode(t, err, codes.InvalidArgument, "key_share")
		_, err = ts.Device.PutBackup(p1, &pushauthv1.PutBackupRequest{Blob: []byte("b"), Passcode: "4831", KeyShare: []byte("short")})
		wantCode(t, err, codes.InvalidArgument, "key_share")

		first, err := ts.Device.PutBackup(p1, &pushauthv1.PutBackupRequest{Blob: []byte("b1"), Passcode: "4831"})
		if err != nil || len(first.GetKeyShare()) != 32 {
			t.Fatalf("first upload without a share: %v %v", first, err)
		}
		for i := range 2 {
			again, err := ts.Device.PutBackup(p1, &pushauthv1.PutBackupRequest{Blob: []byte("b2"), Passcode: "4831", CurrentPasscode: "4831"})
			if err != nil || !bytes.Equal(again.GetKeyShare(), first.GetKeyShare()) {
				t.Fatalf("replacement %d without a share got another share: %v", i+1, err)
			}
		}
		phone2 := servertest.NewPhone(t, false)
		ts.Clock.Advance(time.Minute)
		ts.Register(t, phone2, number)
		res, err := ts.Device.RestoreBackup(ts.WithToken(ctx, phone2.Credential), &pushauthv1.RestoreBackupRequest{Passcode: "4831"})
		if err != nil || !bytes.Equal(res.GetKeyShare(), first.GetKeyShare()) || string(res.GetBlob()) != "b2" {
			t.Fatalf("restore: %v %v", res, err)
		}
	})
}
