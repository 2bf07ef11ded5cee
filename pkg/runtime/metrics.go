package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	cgroup1 "github.com/containerd/cgroups/v3/cgroup1/stats"
	cgroup2 "github.com/containerd/cgroups/v3/cgroup2/stats"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warren/reconciler/pkg/observed"
)

// DefaultStatsTTL is how long the per-task CPU and memory figures read from
// containerd are reused by the scrapes that follow.
const DefaultStatsTTL = 5 * time.Second

// Metrics are the runtime's Prometheus metrics: image pulls, OOM kills,
// the containerd connection and failed calls, and per-task CPU and memory
// read at scrape time. A nil *Metrics records nothing.
type Metrics struct {
	pullDuration prometheus.Histogram
	pulls        *prometheus.CounterVec
	oomKills     prometheus.Counter
	callErrors   prometheus.Counter
	connected    *prometheus.Desc
	taskCPU      *prometheus.Desc
	taskMemory   *prometheus.Desc
	rt           atomic.Pointer[Runtime] // the runtime collected at scrape time; set by New
}

// NewMetrics creates the runtime's metrics and registers them with reg. Pass
// them to New with WithMetrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pullDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "reconciler_image_pull_duration_seconds",
			Help:    "Time of successful image pulls from a registry, unpack included.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}),
		pulls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reconciler_image_pulls_total",
			Help: "Image pulls from a registry (imagePullPolicy Always, IfNotPresent misses, re-pulls), by result (success, error).",
		}, []string{"result"}),
		oomKills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reconciler_oom_kills_total",
			Help: "OOM kills of tasks in the reconciler's containerd namespace, from containerd's /tasks/oom events while the daemon watches.",
		}),
		callErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "reconciler_containerd_call_errors_total",
			Help: "Failed gRPC calls to containerd. Not counted: NotFound and AlreadyExists (the normal answers to idempotent deletes and creates), Unimplemented (the client probing a newer service) and calls the reconciler itself cancelled.",
		}),
		connected: prometheus.NewDesc("reconciler_containerd_connected",
			"1 if containerd answers a health check at scrape time, else 0.", nil, nil),
		taskCPU: prometheus.NewDesc("reconciler_task_cpu_seconds_total",
			"CPU time used by each running task (cgroup cpuacct usage), summed over the task's containers; read from containerd at most every 5 s.", []string{"task"}, nil),
		taskMemory: prometheus.NewDesc("reconciler_task_memory_bytes",
			"Working set memory of each running task: cgroup memory usage minus inactive file cache (as kubelet's container_memory_working_set_bytes), summed over the task's containers; read from containerd at most every 5 s.", []string{"task"}, nil),
	}
	for _, r := range []string{"success", "error"} {
		m.pulls.WithLabelValues(r)
	}
	reg.MustRegister(m.pullDuration, m.pulls, m.oomKills, m.callErrors, collector{m})
	return m
}

// WithMetrics makes the runtime record m and serve its scrape-time metrics.
func WithMetrics(m *Metrics) Option { return func(r *Runtime) { r.metrics = m } }

func (m *Metrics) observePull(d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.pulls.WithLabelValues("error").Inc()
		return
	}
	m.pulls.WithLabelValues("success").Inc()
	m.pullDuration.Observe(d.Seconds())
}

func (m *Metrics) oomKilled() {
	if m != nil {
		m.oomKills.Inc()
	}
}

// countCallError counts err if it is a failure of containerd (see the help
// text); ctx is the call's.
func (m *Metrics) countCallError(ctx context.Context, err error) {
	if m == nil || err == nil || errors.Is(err, io.EOF) {
		return
	}
	switch status.Code(err) {
	case codes.NotFound, codes.AlreadyExists, codes.Unimplemented:
		return
	case codes.Canceled:
		if ctx.Err() != nil {
			return
		}
	}
	m.callErrors.Inc()
}

// dialOptions are the interceptors that count failed calls.
func (m *Metrics) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(m.unaryInterceptor),
		grpc.WithChainStreamInterceptor(m.streamInterceptor),
	}
}

func (m *Metrics) unaryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	m.countCallError(ctx, err)
	return err
}

func (m *Metrics) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		m.countCallError(ctx, err)
		return nil, err
	}
	return &countedStream{ClientStream: s, ctx: ctx, m: m}, nil
}

// countedStream counts the error that ends a stream (io.EOF, its normal
// end, is not one), once.
type countedStream struct {
	grpc.ClientStream
	ctx     context.Context
	m       *Metrics
	counted atomic.Bool
}

func (s *countedStream) RecvMsg(msg any) error {
	err := s.ClientStream.RecvMsg(msg)
	if err != nil && !errors.Is(err, io.EOF) && s.counted.CompareAndSwap(false, true) {
		s.m.countCallError(s.ctx, err)
	}
	return err
}

// collector reports, at scrape time, whether containerd answers and the
// usage of the running tasks (through the runtime's cache).
type collector struct{ m *Metrics }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.m.connected
	ch <- c.m.taskCPU
	ch <- c.m.taskMemory
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	r := c.m.rt.Load()
	up := 0.0
	ctx := context.Background()
	if r != nil && r.Ping(ctx) == nil {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.m.connected, prometheus.GaugeValue, up)
	if up == 0 {
		return // no figures rather than a second failing call
	}
	for _, u := range r.stats.get(ctx) {
		ch <- prometheus.MustNewConstMetric(c.m.taskCPU, prometheus.CounterValue, u.cpuSeconds, u.task)
		ch <- prometheus.MustNewConstMetric(c.m.taskMemory, prometheus.GaugeValue, u.memoryBytes, u.task)
	}
}

// taskUsage is what one running task uses, summed over its containers (two
// while a start-first replacement overlaps).
type taskUsage struct {
	task        string
	cpuSeconds  float64
	memoryBytes float64
}

// statsCache reuses the last reading for ttl, so that frequent or parallel
// scrapes make one round of calls to containerd. A failed reading is cached
// too (as no figures): a daemon in trouble is not asked again at each scrape.
type statsCache struct {
	ttl  time.Duration
	now  func() time.Time
	read func(context.Context) ([]taskUsage, error)

	mu   sync.Mutex
	at   time.Time
	last []taskUsage
}

func (c *statsCache) get(ctx context.Context) []taskUsage {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); c.at.IsZero() || now.Sub(c.at) >= c.ttl {
		last, err := c.read(ctx)
		if err != nil {
			last = nil
		}
		c.at, c.last = now, last
	}
	return c.last
}

// readTaskUsage reads the CPU and memory of the running tasks of owned
// containers: their containers and tasks are listed, then ONE Metrics call
// asks for all of them.
func (r *Runtime) readTaskUsage(ctx context.Context) ([]taskUsage, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	recs, err := r.client.ContainerService().List(ctx,
		fmt.Sprintf("labels.%q==%s", observed.LabelManagedBy, observed.ManagedByValue))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	taskOf := make(map[string]string, len(recs))
	for _, c := range recs {
		if name := c.Labels[observed.LabelTask]; name != "" {
			taskOf[c.ID] = name
		}
	}
	if len(taskOf) == 0 {
		return nil, nil
	}
	tl, err := r.client.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", errgrpc.ToNative(err))
	}
	var filters []string // ORed
	for _, t := range tl.Tasks {
		if _, ok := taskOf[t.ID]; ok && t.Status == task.Status_RUNNING {
			filters = append(filters, fmt.Sprintf("id==%q", t.ID))
		}
	}
	if len(filters) == 0 {
		return nil, nil
	}
	resp, err := r.client.TaskService().Metrics(ctx, &tasksapi.MetricsRequest{Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("task metrics: %w", errgrpc.ToNative(err))
	}
	sum := map[string]*taskUsage{}
	for _, mt := range resp.Metrics {
		name, ok := taskOf[mt.ID]
		if !ok || mt.Data == nil {
			continue
		}
		cpu, mem, err := decodeUsage(mt.Data)
		if err != nil {
			r.log.V(1).Info("task metrics not decoded", "container", mt.ID, "error", err.Error())
			continue
		}
		u := sum[name]
		if u == nil {
			u = &taskUsage{task: name}
			sum[name] = u
		}
		u.cpuSeconds += cpu
		u.memoryBytes += mem
	}
	out := make([]taskUsage, 0, len(sum))
	for _, u := range sum {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].task < out[j].task })
	return out, nil
}

// decodeUsage reads CPU seconds and working set bytes from a task's cgroup
// stats, cgroup v1 or v2.
func decodeUsage(data typeurl.Any) (cpuSeconds, memoryBytes float64, err error) {
	v, err := typeurl.UnmarshalAny(data)
	if err != nil {
		return 0, 0, fmt.Errorf("decode task metrics: %w", err)
	}
	switch s := v.(type) {
	case *cgroup1.Metrics:
		if s.CPU != nil && s.CPU.Usage != nil {
			cpuSeconds = float64(s.CPU.Usage.Total) / 1e9
		}
		if s.Memory != nil && s.Memory.Usage != nil {
			memoryBytes = workingSet(s.Memory.Usage.Usage, s.Memory.TotalInactiveFile)
		}
	case *cgroup2.Metrics:
		if s.CPU != nil {
			cpuSeconds = float64(s.CPU.UsageUsec) / 1e6
		}
		if s.Memory != nil {
			memoryBytes = workingSet(s.Memory.Usage, s.Memory.InactiveFile)
		}
	default:
		return 0, 0, fmt.Errorf("decode task metrics: unexpected type %T", v)
	}
	return cpuSeconds, memoryBytes, nil
}

func workingSet(usage, inactiveFile uint64) float64 {
	if inactiveFile < usage {
		return float64(usage - inactiveFile)
	}
	return 0
}
