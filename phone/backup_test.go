package phone

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// cheap keeps the tests fast; the format carries its costs.
var cheap = BackupParams{MemoryKiB: 64, Time: 1, Threads: 1}

func TestSealOpen(t *testing.T) {
	share := NewKeyShare()
	blob, err := SealBackupWith(cheap, "4831", share, []byte("accounts"))
	if err != nil {
		t.Fatal(err)
	}
	if len(blob) != BackupHeaderSize+len("accounts")+16 || !bytes.HasPrefix(blob, []byte(BackupMagic)) {
		t.Fatalf("blob of %d bytes", len(blob))
	}
	if got, err := OpenBackup("4831", share, blob); err != nil || string(got) != "accounts" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	other := bytes.Clone(share)
	other[31] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"wrong passcode": func() ([]byte, error) { return OpenBackup("4832", share, blob) },
		"wrong share":    func() ([]byte, error) { return OpenBackup("4831", other, blob) },
		"header changed": func() ([]byte, error) {
			b := bytes.Clone(blob)
			b[20] ^= 1 // the salt: a different key
			return OpenBackup("4831", share, b)
		},
	} {
		if _, err := open(); !errors.Is(err, ErrBackupKey) {
			t.Errorf("%s: %v, want ErrBackupKey", name, err)
		}
	}
}

func TestParseHeaderRefusesCosts(t *testing.T) {
	blob, err := SealBackupWith(cheap, "4831", NewKeyShare(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func([]byte){
		"magic":        func(b []byte) { b[0] = 'X' },
		"huge memory":  func(b []byte) { binary.BigEndian.PutUint32(b[4:], MaxBackupMemoryKiB+1) },
		"tiny memory":  func(b []byte) { binary.BigEndian.PutUint32(b[4:], 7) },
		"zero time":    func(b []byte) { binary.BigEndian.PutUint32(b[8:], 0) },
		"long time":    func(b []byte) { binary.BigEndian.PutUint32(b[8:], MaxBackupTime+1) },
		"zero threads": func(b []byte) { b[12] = 0 },
	} {
		b := bytes.Clone(blob)
		change(b)
		if _, _, _, err := ParseBackupHeader(b); !errors.Is(err, ErrBackupFormat) {
			t.Errorf("%s: %v, want ErrBackupFormat", name, err)
		}
	}
	if _, _, _, err := ParseBackupHeader(blob[:BackupHeaderSize+15]); !errors.Is(err, ErrBackupFormat) {
		t.Errorf("short blob: %v", err)
	}
}
