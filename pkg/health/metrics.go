package health

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the probes' Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	probes   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	healthy  *prometheus.Desc
	monitor  atomic.Pointer[Monitor] // read at scrape time
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconciler_health_probes_total",
			Help: "Health probes run, by task and result (success, failure, error: not run, says nothing of the task).",
		}, []string{"task", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "reconciler_health_probe_duration_seconds",
			Help:    "Time of one health probe, by kind (exec, http, tcp).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
		healthy: prometheus.NewDesc("reconciler_task_healthy",
			"1 when the task's health check passes, 0 when it is starting or unhealthy; absent for a task without one.",
			[]string{"task", "state"}, nil),
	}
	reg.MustRegister(m.probes, m.duration, m)
	return m
}

// Describe implements prometheus.Collector for the health gauge.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.healthy }

// Collect implements prometheus.Collector: the health of every probed task.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	mon := m.monitor.Load()
	if mon == nil {
		return
	}
	mon.mu.Lock()
	defer mon.mu.Unlock()
	for task, p := range mon.probed {
		v := 0.0
		if p.status.State == Healthy {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(m.healthy, prometheus.GaugeValue, v, task, string(p.status.State))
	}
}

func (m *Metrics) probed(task string, kind Kind, v verdict, d time.Duration) {
	if m == nil {
		return
	}
	result := map[verdict]string{pass: "success", fail: "failure", unknown: "error"}[v]
	m.probes.WithLabelValues(task, result).Inc()
	m.duration.WithLabelValues(string(kind)).Observe(d.Seconds())
}

// forget drops the counters of a task no longer probed.
func (m *Metrics) forget(task string) {
	if m == nil {
		return
	}
	m.probes.DeletePartialMatch(prometheus.Labels{"task": task})
}
