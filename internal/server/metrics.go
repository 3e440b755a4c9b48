package server

import (
	"runtime"
	"strings"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"

	"github.com/pushauth/pushauth/internal/guess"
)

// Metrics are the server's Prometheus collectors, on a registry of their own
// so tests and several servers in one process do not collide.
type Metrics struct {
	Registry *prometheus.Registry
	// grpc are the standard gRPC server metrics (grpc_server_handled_total,
	// grpc_server_handling_seconds, …) of go-grpc-middleware's provider.
	grpc *grpcprom.ServerMetrics
	// early counts the calls gRPC refuses before any interceptor runs,
	// which grpc cannot see.
	early   *prometheus.CounterVec
	refused *prometheus.CounterVec
	checks  *prometheus.CounterVec
	// domain are pushauth's own (domainmetrics.go).
	domain *domainMetrics
	// also is told of secret checks too (tests count them); may be nil.
	also guess.Observer
}

// NewMetrics registers the RPC, build and runtime collectors.
func NewMetrics(version string) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets([]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120}))),
		early: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pushauth_grpc_refused_early_total",
			Help: "Calls gRPC refused before any interceptor ran (a message over the size limit, one that does not decompress), by service, method and code; grpc_server_handled_total does not see them.",
		}, []string{"grpc_service", "grpc_method", "grpc_code"}),
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
	m.domain = newDomainMetrics(reg)
	reg.MustRegister(m.grpc, m.early, m.refused, m.checks, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// refusedEarly counts a call gRPC refused before the interceptors.
func (m *Metrics) refusedEarly(fullMethod string, code codes.Code) {
	service, method := "unknown", "unknown"
	if s, meth, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/"); ok {
		service, method = s, meth
	}
	m.early.WithLabelValues(service, method, code.String()).Inc()
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
