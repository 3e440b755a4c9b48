package cluster

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Sample is one reading of a replica's resources during a soak.
type Sample struct {
	Elapsed    time.Duration
	RSS        int64 // bytes
	Goroutines float64
	FDs        int
	DBBytes    int64
	// QueuePending and QueueInFlight are the push queue's jobs.
	QueuePending, QueueInFlight float64
	// Decided is how many flows were decided so far.
	Decided int
}

// SampleHeader is the CSV header of Sample rows.
var SampleHeader = []string{"elapsed_s", "rss_bytes", "goroutines", "open_fds", "db_bytes", "queue_pending", "queue_in_flight", "flows_decided"}

// Row is s as CSV fields.
func (s Sample) Row() []string {
	return []string{
		strconv.FormatFloat(s.Elapsed.Seconds(), 'f', 0, 64), strconv.FormatInt(s.RSS, 10),
		strconv.FormatFloat(s.Goroutines, 'f', 0, 64), strconv.Itoa(s.FDs), strconv.FormatInt(s.DBBytes, 10),
		strconv.FormatFloat(s.QueuePending, 'f', 0, 64), strconv.FormatFloat(s.QueueInFlight, 'f', 0, 64), strconv.Itoa(s.Decided),
	}
}

// Sample reads replica i's resident memory and open files (from /proc),
// goroutines and push-queue depth (from its /metrics) and the database's
// size.
func (c *Cluster) Sample(ctx context.Context, i int) (Sample, error) {
	r := c.Replicas[i]
	var s Sample
	var err error
	if s.RSS, err = r.rss(); err != nil {
		return s, err
	}
	if s.FDs, err = r.fds(); err != nil {
		return s, err
	}
	if s.Goroutines, err = r.metric(ctx, "go_goroutines", ""); err != nil {
		return s, err
	}
	if s.QueuePending, err = r.metric(ctx, "pushauth_push_queue_jobs", `state="pending"`); err != nil {
		return s, err
	}
	if s.QueueInFlight, err = r.metric(ctx, "pushauth_push_queue_jobs", `state="in_flight"`); err != nil {
		return s, err
	}
	if c.PG != nil {
		s.DBBytes, err = c.PG.Size(ctx)
	} else {
		s.DBBytes, err = dirSize(r.DataDir)
	}
	return s, err
}

// dirSize adds up the sizes of the SQLite files in dir.
func dirSize(dir string) (int64, error) {
	m, _ := filepath.Glob(filepath.Join(dir, "pushauth.db*"))
	var n int64
	for _, f := range m {
		st, err := os.Stat(f)
		if err != nil {
			return 0, err
		}
		n += st.Size()
	}
	return n, nil
}

// Decided is how many flows ended approved or denied so far.
func (l *Load) Decided() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.decided
}

// Soak runs a steady load on e for d, sampling replica 0 every interval
// into w as CSV, and returns the samples and the flows' counts.
func Soak(ctx context.Context, e *Env, d, interval time.Duration, w io.Writer) ([]Sample, Counts, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(SampleHeader); err != nil {
		return nil, Counts{}, err
	}
	stop := make(chan struct{})
	flowsCh := make(chan []FlowResult, 1)
	start := time.Now()
	go func() { flowsCh <- e.Load.Run(ctx, stop) }()
	var samples []Sample
	var serr error
	tick := time.NewTicker(interval)
	end := time.NewTimer(d)
	defer tick.Stop()
	defer end.Stop()
	take := func() {
		s, err := e.C.Sample(ctx, 0)
		if err != nil {
			serr = fmt.Errorf("sample at %s: %w", time.Since(start).Round(time.Second), err)
			return
		}
		s.Elapsed, s.Decided = time.Since(start), e.Load.Decided()
		samples = append(samples, s)
		_ = cw.Write(s.Row())
		cw.Flush()
	}
	take()
loop:
	for serr == nil {
		select {
		case <-tick.C:
			take()
		case <-end.C:
			take()
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	close(stop)
	flows := <-flowsCh
	_ = e.Load.WaitQueueEmpty(ctx, time.Minute)
	return samples, e.Load.Count(flows), serr
}
