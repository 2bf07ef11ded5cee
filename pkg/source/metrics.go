package source

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the source's Prometheus metrics.
type Metrics struct {
	commit      *prometheus.GaugeVec
	lastSuccess prometheus.Gauge
	duration    prometheus.Histogram
	errors      prometheus.Counter
}

// NewMetrics registers the source's metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		commit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reconciler_source_commit_info", Help: "The applied git commit (value 1).",
		}, []string{"commit"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reconciler_source_last_success_timestamp_seconds", Help: "When a git sync last succeeded (Unix time).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reconciler_source_fetch_duration_seconds", Help: "Time of one git sync: ls-remote, and the fetch and swap when the tip moved.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reconciler_source_fetch_errors_total", Help: "Git syncs that failed (nothing applied).",
		}),
	}
	reg.MustRegister(m.commit, m.lastSuccess, m.duration, m.errors)
	return m
}
