package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pushauth/pushauth/internal/natstest"
	"github.com/pushauth/pushauth/internal/server/servertest"
)

// pushauthd started before its NATS cluster waits for it, logging, and
// serves once the cluster is up; SIGTERM while waiting ends it at once.
func TestStartWaitsForNATS(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cl := natstest.NewCluster(t, 3)
			for i := range 3 {
				cl.Stop(i)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			logs := &servertest.LogBuffer{}
			addrs := make(chan string, 1)
			exit := make(chan int, 1)
			getenv, environ := env(nil)
			go func() {
				exit <- run(runCtx, []string{"--data-dir", t.TempDir(), "--database-url", b.url(t), "--nats-url", cl.URL(),
					"--secret-key", testKey(9), "--admin-token", "adm_" + strings.Repeat("x", 32),
					"--grpc-addr", "127.0.0.1:0", "--ops-addr", "", "--http-addr", "", "--health-interval", "100ms"},
					getenv, environ, &bytes.Buffer{}, logs, func(g, _ string) { addrs <- g })
			}()
			if !logs.Wait(ctx, "nats not reachable; retrying") {
				t.Fatalf("no retry logged:\n%s", logs)
			}
			for i := range 3 {
				cl.Start(i)
			}
			select {
			case addr := <-addrs:
				waitServing(t, dial(t, addr))
			case code := <-exit:
				t.Fatalf("pushauthd exited with %d instead of waiting:\n%s", code, logs)
			case <-ctx.Done():
				t.Fatalf("pushauthd did not start:\n%s", logs)
			}
			stop()
			if code := <-exit; code != 0 {
				t.Fatalf("exit %d:\n%s", code, logs)
			}
		})
	}
}

// Shutdown while waiting for NATS ends the wait at once.
func TestStartWaitingForNATSStops(t *testing.T) {
	cl := natstest.NewCluster(t, 1)
	cl.Stop(0)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	logs := &servertest.LogBuffer{}
	exit := make(chan int, 1)
	getenv, environ := env(nil)
	go func() {
		exit <- run(runCtx, []string{"--data-dir", t.TempDir(), "--nats-url", cl.URL(), "--secret-key", testKey(9),
			"--grpc-addr", "127.0.0.1:0", "--ops-addr", "", "--http-addr", ""}, getenv, environ, &bytes.Buffer{}, logs, nil)
	}()
	if !logs.Wait(ctx, "nats not reachable; retrying") {
		t.Fatalf("no retry logged:\n%s", logs)
	}
	stop()
	select {
	case code := <-exit:
		if code == 0 {
			t.Fatalf("exit 0 although NATS never came:\n%s", logs)
		}
	case <-ctx.Done():
		t.Fatal("pushauthd kept waiting for NATS after it was told to stop")
	}
}
