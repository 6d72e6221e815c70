package api

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiceroute/spiceroute/hub/ledger"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	outcomes *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "spiceroute", Subsystem: "api", Name: "requests_total",
			Help: "HTTP requests by method, route template and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "spiceroute", Subsystem: "api", Name: "request_duration_seconds",
			Help:    "HTTP request latency by method and route template.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "spiceroute", Subsystem: "api", Name: "ledger_results_total",
			Help: `Ledger results of API writes by kind ("account", "transfer") and outcome ("ok", "existed" or the error code).`,
		}, []string{"kind", "outcome"}),
	}
	reg.MustRegister(m.requests, m.latency, m.outcomes)
	return m
}

func (m *metrics) observe(method, route string, status int, took time.Duration) {
	m.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(method, route).Observe(took.Seconds())
}

func (m *metrics) transferResults(rs []ledger.TransferResult) {
	for _, r := range rs {
		m.outcomes.WithLabelValues("transfer", outcome(r.Existed, r.Err != nil, string(codeOrEmpty(r.Err)))).Inc()
	}
}

func (m *metrics) accountResults(rs []ledger.AccountResult) {
	for _, r := range rs {
		m.outcomes.WithLabelValues("account", outcome(r.Existed, r.Err != nil, string(codeOrEmpty(r.Err)))).Inc()
	}
}

func outcome(existed, failed bool, code string) string {
	switch {
	case failed:
		return code
	case existed:
		return "existed"
	}
	return "ok"
}
