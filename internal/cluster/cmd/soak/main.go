// Command soak runs a steady login load on one pushauthd replica (on
// PostgreSQL and a 3-node NATS cluster, as in production) for a while,
// samples the replica's memory, goroutines, open files, the database's
// size and the push queue's depth every 10 s into a CSV, and draws them
// as a PNG. scripts/soak.sh is its front door.
package main

import (
	"context"
	"flag"
	"fmt"
	"image/color"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/pushauth/pushauth/internal/cluster"
)

func main() {
	duration := flag.Duration("duration", 10*time.Minute, "how long the load runs")
	interval := flag.Duration("interval", 10*time.Second, "how often the replica is sampled")
	users := flag.Int("users", 16, "users logging in at once")
	pause := flag.Duration("pause", 500*time.Millisecond, "each user's pause between two logins")
	csvPath := flag.String("csv", "soak.csv", "CSV file to write")
	pngPath := flag.String("png", "soak.png", "PNG file to draw")
	dsn := flag.String("postgres", os.Getenv("PUSHAUTH_TEST_POSTGRES_DSN"), "PostgreSQL server (maintenance database URL)")
	flag.Parse()
	if *dsn == "" {
		*dsn = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	logger := log.New(os.Stderr, "soak: ", log.Ltime)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	c, err := cluster.Start(ctx, cluster.Options{Replicas: 1, NATSNodes: 3, Database: cluster.SharedPostgres, PostgresDSN: *dsn, Logf: logger.Printf})
	if err != nil {
		logger.Fatal(err)
	}
	failed := true
	defer func() { c.Close(context.Background(), failed) }()
	l, err := cluster.NewLoad(ctx, c, cluster.LoadOptions{Users: *users, FlowTimeout: time.Minute, Pause: *pause})
	if err != nil {
		logger.Print(err)
		return
	}
	defer l.Close()
	f, err := os.Create(*csvPath)
	if err != nil {
		logger.Print(err)
		return
	}
	logger.Printf("soaking for %s, sampling every %s into %s", *duration, *interval, *csvPath)
	samples, counts, err := cluster.Soak(ctx, &cluster.Env{C: c, Load: l}, *duration, *interval, f)
	f.Close()
	if err != nil {
		logger.Print(err)
		return
	}
	fmt.Printf("soak duration=%s flows=%d approved=%d lost=%d stuck=%d dup_push=%d create_retries=%d\n",
		*duration, counts.Flows, counts.Approved, counts.Lost, counts.Stuck, counts.DupPush, counts.CreateRetries)
	fmt.Println(flatness(samples))
	if err := drawPNG(samples, *pngPath); err != nil {
		logger.Print(err)
		return
	}
	failed = !counts.OK()
	if failed {
		os.Exit(1)
	}
}

// flatness compares the first and last third of the run (after the first
// minute of warm-up) for the resources that must not grow.
func flatness(ss []cluster.Sample) string {
	var warm []cluster.Sample
	for _, s := range ss {
		if s.Elapsed >= time.Minute {
			warm = append(warm, s)
		}
	}
	if len(warm) < 6 {
		return "flatness: too few samples after the first minute"
	}
	third := len(warm) / 3
	avg := func(part []cluster.Sample, f func(cluster.Sample) float64) float64 {
		var t float64
		for _, s := range part {
			t += f(s)
		}
		return t / float64(len(part))
	}
	first, last := warm[:third], warm[len(warm)-third:]
	out := "flatness (mean of the last third vs the first, after 1 min):"
	for _, m := range []struct {
		name string
		f    func(cluster.Sample) float64
	}{
		{"rss_mb", func(s cluster.Sample) float64 { return float64(s.RSS) / (1 << 20) }},
		{"goroutines", func(s cluster.Sample) float64 { return s.Goroutines }},
		{"open_fds", func(s cluster.Sample) float64 { return float64(s.FDs) }},
		{"queue_pending", func(s cluster.Sample) float64 { return s.QueuePending }},
		{"db_mb", func(s cluster.Sample) float64 { return float64(s.DBBytes) / (1 << 20) }},
	} {
		out += fmt.Sprintf(" %s=%.1f->%.1f", m.name, avg(first, m.f), avg(last, m.f))
	}
	return out
}

// drawPNG plots each series against minutes, one panel each, into a PNG.
func drawPNG(ss []cluster.Sample, path string) error {
	series := []struct {
		title string
		f     func(cluster.Sample) float64
	}{
		{"RSS (MiB)", func(s cluster.Sample) float64 { return float64(s.RSS) / (1 << 20) }},
		{"goroutines", func(s cluster.Sample) float64 { return s.Goroutines }},
		{"open file descriptors", func(s cluster.Sample) float64 { return float64(s.FDs) }},
		{"database size (MiB)", func(s cluster.Sample) float64 { return float64(s.DBBytes) / (1 << 20) }},
		{"push queue jobs (pending + in flight)", func(s cluster.Sample) float64 { return s.QueuePending + s.QueueInFlight }},
		{"logins decided (cumulative)", func(s cluster.Sample) float64 { return float64(s.Decided) }},
	}
	const cols = 2
	rows := (len(series) + cols - 1) / cols
	img := vgimg.New(9*vg.Inch, vg.Length(rows)*2.4*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	for i, s := range series {
		p := plot.New()
		p.Title.Text = s.title
		p.X.Label.Text = "minutes"
		p.Y.Min = 0
		pts := make(plotter.XYs, len(ss))
		for j, smp := range ss {
			pts[j] = plotter.XY{X: smp.Elapsed.Minutes(), Y: s.f(smp)}
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = color.RGBA{B: 200, A: 255}
		p.Add(line)
		p.Y.Max = max(p.Y.Max, 1)
		p.Draw(tiles.At(dc, i%cols, i/cols))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(f)
	return err
}
