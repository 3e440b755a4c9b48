package events

import (
	"testing"
)

func TestRevocationsOverNATS(t *testing.T) {
	ctx := testCtx(t)
	b := startEmbedded(t)
	rev, err := NewRevocations(b.Conn(), testLogger())
	if err != nil {
		t.Fatalf("NewRevocations: %v", err)
	}
	t.Cleanup(rev.Close)
	hooked := make(chan Revocation, 10)
	rev.OnRevoke(func(n Revocation) { hooked <- n })

	key, cancelKey := rev.Watch(RevokedAPIKey, "key_1")
	defer cancelKey()
	other, cancelOther := rev.Watch(RevokedAPIKey, "key_2")
	defer cancelOther()
	sameID, cancelSame := rev.Watch(RevokedDevice, "key_1") // same id, other kind
	defer cancelSame()
	fired := make(chan struct{})
	cancelFunc := rev.WatchFunc(RevokedAPIKey, "key_1", func() { close(fired) })
	defer cancelFunc()
	if rev.Len() != 4 {
		t.Fatalf("Len = %d, want 4", rev.Len())
	}

	if err := b.Publish(ctx, RevokedSubject, []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if err := AnnounceRevocation(ctx, b, Revocation{Kind: RevokedAPIKey, ID: "key_1"}); err != nil {
		t.Fatalf("AnnounceRevocation: %v", err)
	}
	select {
	case <-key:
	case <-ctx.Done():
		t.Fatal("watcher of the revoked key not ended")
	}
	select {
	case <-fired:
	case <-ctx.Done():
		t.Fatal("WatchFunc not called")
	}
	select {
	case n := <-hooked:
		if n != (Revocation{Kind: RevokedAPIKey, ID: "key_1"}) {
			t.Fatalf("hook got %+v", n)
		}
	case <-ctx.Done():
		t.Fatal("hook not called")
	}
	select {
	case <-other:
		t.Fatal("another key's watcher ended")
	case <-sameID:
		t.Fatal("another kind's watcher ended")
	default:
	}
	if rev.Len() != 2 {
		t.Fatalf("Len after revocation = %d, want 2", rev.Len())
	}
	cancelOther()
	cancelOther()
	cancelKey() // already fired: harmless
	if rev.Len() != 1 {
		t.Fatalf("Len after cancel = %d, want 1", rev.Len())
	}
	if err := AnnounceRevocation(ctx, b, Revocation{}); err == nil {
		t.Fatal("AnnounceRevocation without kind and id succeeded")
	}
	rev.Close()
	rev.Close()
	if rev.Len() != 0 {
		t.Fatalf("Len after Close = %d", rev.Len())
	}
	done, cancel := rev.Watch(RevokedDevice, "d1")
	cancel()
	rev.Revoke(Revocation{Kind: RevokedDevice, ID: "d1"})
	select {
	case <-done:
		t.Fatal("watcher registered after Close fired")
	default:
	}
}
