package reconcile

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controller's Prometheus metrics. A nil *Metrics records
// nothing, so tests and `plan` need none.
type Metrics struct {
	syncDuration   prometheus.Histogram
	resyncDuration prometheus.Histogram
	actions        *prometheus.CounterVec
	eventToAction  prometheus.Histogram
	restarts       prometheus.Counter
	createDuration prometheus.Histogram
	startDuration  prometheus.Histogram
	manifestErrors *prometheus.GaugeVec
	running        prometheus.Gauge
	snapshots      prometheus.Gauge
	unmanaged      prometheus.Gauge
	rollouts       *prometheus.CounterVec
	rolloutTime    prometheus.Histogram
	phases         *prometheus.Desc
	board          *statusBoard // set by New, read at scrape time
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	m := &Metrics{
		syncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reconciler_reconcile_duration_seconds", Buckets: buckets,
			Help: "Time of one reconcile of one task: read both states, plan, apply.",
		}),
		resyncDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reconciler_resync_duration_seconds", Buckets: buckets,
			Help: "Time of the full listing of the node at each resync.",
		}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconciler_actions_total",
			Help: "Actions applied, by operation (create, start, stop, delete) and result (success, error).",
		}, []string{"op", "result"}),
		eventToAction: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reconciler_event_to_action_seconds", Buckets: buckets,
			Help: "Time from a change of the desired state (a file event) to the first action it caused.",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reconciler_restarts_total",
			Help: "Restarts of exited tasks under their restart policy.",
		}),
		createDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reconciler_container_create_duration_seconds", Buckets: buckets,
			Help: "Time to create a container, image made available (imported or pulled) included.",
		}),
		startDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reconciler_container_start_duration_seconds", Buckets: buckets,
			Help: "Time to start a container's task.",
		}),
		manifestErrors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "reconciler_manifest_errors",
			Help: "Errors in each manifest file that currently fails to read, parse or validate (0 rows are removed).",
		}, []string{"file"}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reconciler_containers_running",
			Help: "Managed containers whose task runs, as of the last resync.",
		}),
		snapshots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reconciler_snapshots",
			Help: "Snapshots held by managed containers (one per container), as of the last resync.",
		}),
		unmanaged: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "reconciler_unmanaged_containers",
			Help: "Containers in the namespace the reconciler does not own and leaves alone.",
		}),
		rollouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconciler_rollouts_total",
			Help: "Rollouts of changed specs that ended, by task and result: succeeded (the new container proved itself) or rolled_back (the last good container runs again).",
		}, []string{"task", "result"}),
		rolloutTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "reconciler_rollout_duration_seconds", Buckets: []float64{1, 2.5, 5, 10, 15, 30, 60, 120, 300, 600, 1800},
			Help: "Time from the creation of a rollout's new container to its end (proved or rolled back).",
		}),
		phases: prometheus.NewDesc("reconciler_tasks", "Tasks by phase.", []string{"phase"}, nil),
	}
	reg.MustRegister(m.syncDuration, m.resyncDuration, m.actions, m.eventToAction, m.restarts,
		m.createDuration, m.startDuration, m.manifestErrors, m.running, m.snapshots, m.unmanaged, m.rollouts, m.rolloutTime, phaseCollector{m})
	return m
}

// phaseCollector reports tasks by phase from the status board at scrape time.
type phaseCollector struct{ m *Metrics }

func (p phaseCollector) Describe(ch chan<- *prometheus.Desc) { ch <- p.m.phases }

func (p phaseCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[Phase]int{}
	for _, ph := range allPhases {
		counts[ph] = 0
	}
	if p.m.board != nil {
		for _, st := range p.m.board.list() {
			counts[st.Phase]++
		}
	}
	for ph, n := range counts {
		ch <- prometheus.MustNewConstMetric(p.m.phases, prometheus.GaugeValue, float64(n), string(ph))
	}
}

var allPhases = []Phase{PhasePending, PhasePulling, PhaseCreating, PhaseRunning, PhaseStopping, PhaseRestarting,
	PhaseCrashLoopBackOff, PhaseCompleted, PhaseFailed, PhaseInvalid, PhaseBlocked, PhaseError, PhaseWaiting}

func (m *Metrics) observeAction(op Op, d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "success"
	if err != nil {
		result = "error"
	}
	m.actions.WithLabelValues(string(op), result).Inc()
	switch op {
	case OpCreate:
		m.createDuration.Observe(d.Seconds())
	case OpStart:
		m.startDuration.Observe(d.Seconds())
	}
}

func (m *Metrics) observeSync(d time.Duration) {
	if m != nil {
		m.syncDuration.Observe(d.Seconds())
	}
}

func (m *Metrics) observeResync(d time.Duration, running, owned, unmanaged int) {
	if m == nil {
		return
	}
	m.resyncDuration.Observe(d.Seconds())
	m.running.Set(float64(running))
	m.snapshots.Set(float64(owned))
	m.unmanaged.Set(float64(unmanaged))
}

func (m *Metrics) observeEventToAction(d time.Duration) {
	if m != nil {
		m.eventToAction.Observe(d.Seconds())
	}
}

func (m *Metrics) rolledOut(task, result string, took time.Duration) {
	if m != nil {
		m.rollouts.WithLabelValues(task, result).Inc()
		m.rolloutTime.Observe(took.Seconds())
	}
}

func (m *Metrics) restarted() {
	if m != nil {
		m.restarts.Inc()
	}
}

func (m *Metrics) setManifestErrors(broken map[string]int) {
	if m == nil {
		return
	}
	m.manifestErrors.Reset()
	for file, n := range broken {
		m.manifestErrors.WithLabelValues(file).Set(float64(n))
	}
}
