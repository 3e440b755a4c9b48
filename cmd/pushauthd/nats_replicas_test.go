package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/pushauth/pushauth/internal/events"
	"github.com/pushauth/pushauth/internal/natstest"
	"github.com/pushauth/pushauth/internal/store/storetest"
)

// backends are the databases pushauthd runs on in these tests.
var backends = []struct {
	name string
	url  func(testing.TB) string
}{
	{"sqlite", storetest.NewSQLiteURL},
	{"postgres", storetest.NewPostgresURL},
}

// streamReplicas is the push stream's configured replica count.
func streamReplicas(t *testing.T, url string) int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "PUSHAUTH_PUSH")
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config.Replicas
}

// On a 3-node cluster the default is 3 replicas; a replica started with
// nats_replicas 1 creates a 1-replica stream, one started with the default
// raises it to 3, and one started with 1 again leaves it at 3.
func TestNATSReplicasRaisedNeverShrunk(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cl := natstest.NewCluster(t, 3)
			db := b.url(t)
			args := func(extra ...string) []string {
				return append([]string{"--data-dir", t.TempDir(), "--database-url", db, "--nats-url", cl.URL(),
					"--secret-key", testKey(9), "--admin-token", "adm_" + strings.Repeat("x", 32)}, extra...)
			}
			r := start(t, args("--nats-replicas", "1")...)
			if n := streamReplicas(t, cl.URL()); n != 1 {
				t.Fatalf("nats_replicas 1 made %d replicas", n)
			}
			r.shutdown(t)

			r = start(t, args()...)
			if n := streamReplicas(t, cl.URL()); n != 3 {
				t.Fatalf("the default on 3 nodes made %d replicas:\n%s", n, r.stderr)
			}
			r.shutdown(t)

			r = start(t, args("--nats-replicas", "1")...)
			if n := streamReplicas(t, cl.URL()); n != 3 {
				t.Fatalf("nats_replicas 1 shrank the stream to %d", n)
			}
			if !strings.Contains(r.stderr.String(), "keeping the stream's larger replica count") {
				t.Errorf("keeping the larger count was not logged:\n%s", r.stderr)
			}
			r.shutdown(t)

			// More replicas than servers is refused at start.
			getenv, environ := env(nil)
			var stderr syncBuffer
			code := run(t.Context(), append(args("--nats-replicas", "5"), "--grpc-addr", "127.0.0.1:0", "--ops-addr", "", "--http-addr", ""),
				getenv, environ, &syncBuffer{}, &stderr, nil)
			if code == 0 || !strings.Contains(stderr.String(), "more than the 3 NATS server(s)") {
				t.Fatalf("nats_replicas 5 on 3 servers: exit %d:\n%s", code, stderr.String())
			}
		})
	}
}

func TestReplicasSetting(t *testing.T) {
	for _, c := range []struct {
		setting, size int
		known         bool
		want          int
		err           string
	}{
		{0, 1, true, 1, ""},
		{0, 2, true, 1, ""},
		{0, 3, true, 3, ""},
		{0, 5, true, 3, ""},
		{0, 1, false, 1, ""},
		{3, 1, false, 3, ""},
		{3, 3, true, 3, ""},
		{2, 3, true, 2, ""},
		{4, 3, true, 0, "more than the 3"},
		{6, 9, true, 0, "must be 1 to 5"},
		{-1, 3, true, 0, "must be 1 to 5"},
	} {
		got, err := events.Replicas(c.setting, c.size, c.known)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("Replicas(%d, %d, %v) = %d, %v; want %d, %q", c.setting, c.size, c.known, got, err, c.want, c.err)
		}
	}
}

func TestNATSSettingsValidated(t *testing.T) {
	getenv, environ := env(nil)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--nats-replicas", "6", "--nats-url", "nats://n1:4222"}, "nats_replicas: must be 1 to 5"},
		{[]string{"--nats-replicas", "-1", "--nats-url", "nats://n1:4222"}, "nats_replicas: must be 1 to 5"},
		{[]string{"--nats-replicas", "3"}, "nats_replicas: must be 1 or 0 with the embedded NATS server"},
		{[]string{"--nats-start-wait", "0s"}, "nats_start_wait: must be positive"},
	} {
		_, err := LoadConfig(append(c.args, "--secret-key", testKey(1)), getenv, environ, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
	if _, err := LoadConfig([]string{"--nats-replicas", "3", "--nats-url", "nats://n1:4222", "--secret-key", testKey(1)}, getenv, environ, io.Discard); err != nil {
		t.Errorf("nats_replicas 3 on external NATS: %v", err)
	}
}
