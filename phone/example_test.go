package phone_test

import (
	"fmt"
	"time"

	"github.com/pushauth/pushauth/decision"
	"github.com/pushauth/pushauth/phone"
	pushauthv1 "github.com/pushauth/pushauth/proto/pushauth/v1"
)

// The public key in each platform's native format.
func ExampleNewKey() {
	android, _ := phone.NewKey(pushauthv1.Platform_PLATFORM_ANDROID)
	ios, _ := phone.NewKey(pushauthv1.Platform_PLATFORM_IOS)
	spki, _ := android.PublicKey()
	point, _ := ios.PublicKey()
	fmt.Println(android.Format, len(spki), "bytes;", ios.Format, len(point), "bytes")
	// Output: spki 91 bytes; x963 65 bytes
}

// The registration proof verifies with the key as sent.
func ExampleKey_Registration() {
	key, _ := phone.NewKey(pushauthv1.Platform_PLATFORM_IOS)
	reg, _ := key.Registration("ver_01", phone.DeviceInfo{
		Platform: pushauthv1.Platform_PLATFORM_IOS, PushToken: "a1b2", Name: "iPhone van Jan", AppVersion: "1.4.0",
	})
	pub, _, _ := decision.ParsePublicKey(reg.GetPublicKey())
	fmt.Println(decision.VerifySignature(pub, decision.RegistrationProof("ver_01", reg.GetPublicKey()), reg.GetProofSignature()))
	// Output: true
}

// Answering a login request: the phone signs what it shows, with the
// number the user typed, and the server (or a login server) verifies it.
func ExampleKey_Respond() {
	key, _ := phone.NewKey(pushauthv1.Platform_PLATFORM_ANDROID)
	dr := &pushauthv1.DeviceRequest{
		Id: "req_01", Kind: pushauthv1.RequestKind_REQUEST_KIND_LOGIN, RelyingPartyId: "rp_01",
		UserRef: "jan", AccountLabel: "jan@example.nl",
		Context:        &pushauthv1.RequestContext{AppName: "Mijn Portal", Location: "Utrecht, NL"},
		NumberMatching: pushauthv1.NumberMatchingMode_NUMBER_MATCHING_MODE_NUMBER,
	}
	dr.ContextSha256 = phone.Shown(dr) // the server's hash of the same context
	req, err := key.Respond("dev_01", dr, phone.Answer{
		Decision: pushauthv1.Decision_DECISION_APPROVE, Number: "42", SignedAt: time.Unix(1893553445, 0),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	spki, _ := key.PublicKey()
	f, err := decision.Verify(spki, decision.Fields{
		RequestID: "req_01", Kind: decision.KindLogin, Decision: decision.Approve, NumberAnswer: "42",
		DeviceID: "dev_01", RelyingPartyID: "rp_01", UserRef: "jan", ContextSHA256: dr.ContextSha256,
		SignedAt: req.GetSignedTime().AsTime(),
	}.Payload(), req.GetSignature())
	fmt.Println(f.Decision, f.NumberAnswer, err)

	// A screen that differs from the server's description is not signed.
	dr.Context.Location = "Amsterdam, NL"
	_, err = key.Respond("dev_01", dr, phone.Answer{Decision: pushauthv1.Decision_DECISION_APPROVE, Number: "42"})
	fmt.Println(err)
	// Output:
	// APPROVE 42 <nil>
	// phone: the server's context hash differs from the hash of what is shown (request req_01)
}

// A backup is sealed with the passcode and a new key share per upload, and
// opened with the passcode and the share RestoreBackup returns.
func ExampleSealBackup() {
	share := phone.NewKeyShare()
	// SealBackup uses DefaultBackupParams (64 MiB); cheap costs keep the
	// example fast, and the blob's header carries them.
	blob, _ := phone.SealBackupWith(phone.BackupParams{MemoryKiB: 64, Time: 1, Threads: 1}, "5937", share, []byte(`{"version":1}`))
	plain, err := phone.OpenBackup("5937", share, blob)
	fmt.Printf("%s %v\n", plain, err)
	_, err = phone.OpenBackup("5938", share, blob)
	fmt.Println(err)
	// Output:
	// {"version":1} <nil>
	// phone: cannot decrypt the backup with this passcode and key share
}

func ExampleE164() {
	n, _ := phone.E164("06 1234 5678", "NL")
	fmt.Println(n, phone.Mask(n))
	// Output: +31612345678 +31*******78
}
