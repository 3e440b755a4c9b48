package server

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"

	"github.com/pushauth/pushauth/internal/guess"
)

// Metrics are the server's Prometheus collectors, on a registry of their own
// so tests and several servers in one process do not collide.
type Metrics struct {
	Registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	refused  *prometheus.CounterVec
	checks   *prometheus.CounterVec
	// also is told of secret checks too (tests count them); may be nil.
	also guess.Observer
}

// NewMetrics registers the RPC, build and runtime collectors.
func NewMetrics(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushauth_grpc_requests_total",
			Help: "RPCs handled, by full method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pushauth_grpc_request_duration_seconds",
			Help:    "RPC latency by full method (streams: their whole life).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120},
		}, []string{"method"}),
	}
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pushauth_sms_refused_total",
		Help: "SMS verifications refused by a limit, by limit (defences against SMS pumping).",
	}, []string{"reason"})
	m.checks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pushauth_secret_checks_total",
		Help: "Secrets compared (backup passcodes, TOTP codes, pairing phrases, SMS codes), by secret and result: a rise in wrong ones is guessing.",
	}, []string{"secret", "result"})
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "pushauth_build_info",
		Help: "Always 1; labels name the build.",
	}, []string{"version", "go_version"})
	build.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(m.requests, m.latency, m.refused, m.checks, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) observe(method string, code codes.Code, d time.Duration) {
	m.requests.WithLabelValues(method, code.String()).Inc()
	m.latency.WithLabelValues(method).Observe(d.Seconds())
}

func (m *Metrics) smsRefused(reason string) { m.refused.WithLabelValues(reason).Inc() }

// Checked implements guess.Observer.
func (m *Metrics) Checked(secret string, right bool) {
	result := "wrong"
	if right {
		result = "right"
	}
	m.checks.WithLabelValues(secret, result).Inc()
	guess.Observe(m.also, secret, right)
}
