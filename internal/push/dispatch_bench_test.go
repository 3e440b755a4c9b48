package push

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDispatch measures push dispatch through the real FCM client
// (firebase-admin-go) and the real APNs client (apns2, HTTP/2 over TLS) to
// the local fakes of their HTTP APIs:
//
//   - send: the sender alone, from many goroutines (the ceiling of a
//     replica's client);
//   - queue: the whole worker path, JetStream work queue on an in-process
//     nats-server included: b.N jobs enqueued, then taken, sent and
//     acknowledged by one replica's workers.
//
// It reports pushes/s and the process CPU per push (cpu-us/push, the fakes'
// share included): on a machine shared with other work the rate drops, the
// CPU per push much less, and 2 cores / CPU per push bounds the rate.
// docs/benchmarks.md has the command and the figures.
func BenchmarkDispatch(b *testing.B) {
	senders := []struct {
		name string
		new  func(b *testing.B) (Sender, string)
	}{
		{"fcm", func(b *testing.B) (Sender, string) { return newTestFCM(b, newFakeFCM(b)), PlatformAndroid }},
		{"apns", func(b *testing.B) (Sender, string) { s, _ := newTestAPNs(b); return s, PlatformIOS }},
	}
	for _, sd := range senders {
		b.Run(sd.name+"/send", func(b *testing.B) {
			s, platform := sd.new(b)
			ctx := context.Background()
			b.SetParallelism(16) // 16 x GOMAXPROCS senders, as many in flight as a busy replica's workers
			m := startMeter()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				j := benchJob(platform, 0)
				for pb.Next() {
					if err := s.Send(ctx, j); err != nil {
						b.Error(err)
						return
					}
				}
			})
			m.report(b)
		})
		for _, workers := range []int{8, 64} {
			b.Run(fmt.Sprintf("%s/queue/workers=%d", sd.name, workers), func(b *testing.B) {
				s, platform := sd.new(b)
				benchQueue(b, s, platform, workers)
			})
		}
	}
}

// benchQueue enqueues b.N jobs, then times workers until every one is
// reported sent.
func benchQueue(b *testing.B, s Sender, platform string, workers int) {
	srv := startNATS(b)
	js := connect(b, srv)
	q, err := NewQueue(b.Context(), js, QueueConfig{Workers: workers}, s, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	const batch = 256
	for i := 0; i < b.N; i += batch {
		jobs := make([]Job, 0, batch)
		for k := i; k < min(i+batch, b.N); k++ {
			jobs = append(jobs, benchJob(platform, k))
		}
		if err := q.Enqueue(b.Context(), jobs...); err != nil {
			b.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		sent int
		all  = make(chan struct{})
	)
	onResult := func(_ context.Context, j Job, r Result) {
		if r.Outcome != Sent {
			b.Errorf("job %s: %v %v", j.ID(), r.Outcome, r.Err)
		}
		mu.Lock()
		defer mu.Unlock()
		if sent++; sent == b.N {
			close(all)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	m := startMeter()
	go func() { done <- q.Run(ctx, onResult) }()
	<-all
	m.report(b)
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// meter reads the wall clock and this process's CPU time.
type meter struct {
	wall time.Time
	cpu  time.Duration
}

func startMeter() meter { return meter{time.Now(), processCPU()} }

func (m meter) report(b *testing.B) {
	wall, cpu := time.Since(m.wall), processCPU()-m.cpu
	b.ReportMetric(float64(b.N)/wall.Seconds(), "pushes/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/push")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchJob is job number n for a fake that answers 200 to any other token
// than its error tokens. The expiry is past both the fake FCM's fixed clock
// and the real one.
func benchJob(platform string, n int) Job {
	return Job{RequestID: fmt.Sprintf("req-%d", n), DeviceID: "dev-1", Platform: platform,
		PushToken: "a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1c2d3e4f5a0b1", Kind: KindLogin, Locale: "en",
		RelyingParty: "Bench", ExpiresAt: time.Now().Add(time.Hour).Add(fcmNow.Sub(time.Now()).Abs())}
}
