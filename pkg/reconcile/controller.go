package reconcile

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/warren/reconciler/pkg/clock"
	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/health"
	"github.com/warren/reconciler/pkg/observed"
)

// Runtime is what the controller needs from a container runtime. Not found is
// success for Stop and Delete; Create of an existing container is success.
type Runtime interface {
	observed.Lister
	Create(ctx context.Context, id string, t desired.Task, labels map[string]string) error
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id, signal string, grace time.Duration) error
	Delete(ctx context.Context, id string) error
	// SetLabels adds or replaces labels on a container.
	SetLabels(ctx context.Context, id string, labels map[string]string) error
}

// Puller resolves and fetches an image reference now, returning the digest
// it points at. Optional (Config.Puller): without it there is no periodic
// re-pull.
type Puller interface {
	Pull(ctx context.Context, ref string) (digest string, err error)
}

// ImageChecker says whether an image is on the node already. Optional
// (Config.Images): with it, a create that has to fetch its image first
// shows the phase Pulling instead of Creating.
type ImageChecker interface {
	HasImage(ctx context.Context, ref string) (bool, error)
}

// Preparer gets a task's container ready to be created, creating nothing:
// the node policy allows its spec and its image is on the node (imported,
// pulled or unpacked, as its pull policy says). Optional (Config.Preparer).
// With it, a replacement that stops the old container before it creates
// the new one (stop-first) stops nothing until the new one can be created:
// a manifest whose image cannot be had (a mistyped tag, a registry that is
// down) or that the node policy refuses leaves the old container running.
type Preparer interface {
	Prepare(ctx context.Context, t desired.Task) error
}

// Collector removes what interrupted operations left behind: snapshots,
// leases and files of containers that no longer exist (the reconciler was
// killed, or containerd went away, half way through a create or a delete).
// Optional (Config.Collector); the controller calls it at each resync and
// logs its error. It must be cheap when there is nothing to look for.
type Collector interface {
	Collect(ctx context.Context) error
}

// ExitWatcher reports task exits as they happen. Optional (the argument of
// Run): without it an exit is seen at the next resync.
type ExitWatcher interface {
	// WatchExits calls onExit with the container ID of every task exit (and
	// OOM kill) until ctx is done, resubscribing when the runtime restarts.
	WatchExits(ctx context.Context, onExit func(containerID string)) error
}

// Config configures a Controller. Zero values take the documented defaults.
type Config struct {
	Workers int           // concurrent task keys worked on; default 4
	Resync  time.Duration // full re-list and re-plan period; default 30s
	Log     logr.Logger
	Clock   clock.Clock // default clock.Real: every timer of the controller

	// RetryInitial and RetryMax bound the per-task retry backoff after a
	// failed action; defaults 500ms and 1m.
	RetryInitial, RetryMax time.Duration

	// Metrics, if set, records what the controller does.
	Metrics *Metrics

	// RepullInterval, if set with a Puller, re-pulls the image of every
	// task with imagePullPolicy Always that often; a tag that moved
	// replaces the task's container (auto-update). Default off.
	RepullInterval time.Duration

	// Reload, if set, is called at each resync period before the re-list:
	// the daemon re-reads the manifests directory there (and calls
	// SetDesired), so a lost file event delays convergence by one period
	// at most. One timer drives both looks.
	Reload func()

	// The runtime's optional capabilities (see each interface); nil: none.
	Puller    Puller
	Images    ImageChecker
	Preparer  Preparer
	Collector Collector

	// Exec runs the exec probes of health checks in the tasks' containers
	// (the runtime's Exec); nil: every exec probe fails. HealthMetrics, if
	// set, records the probes.
	Exec          health.ExecFunc
	HealthMetrics *health.Metrics
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Resync <= 0 {
		c.Resync = 30 * time.Second
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.RetryInitial <= 0 {
		c.RetryInitial = 500 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
	if c.Log.GetSink() == nil {
		c.Log = logr.Discard()
	}
}

// Controller keeps the runtime equal to the desired state it is given.
//
// A task name travels one way: SetDesired, an exit or the resync adds it to
// the queue; a worker (work) runs sync, which reads both states, plans
// (Plan), derives the status (taskStatus) and applies the actions; sync
// returns a result, and work alone turns it into queue calls.
type Controller struct {
	rt     Runtime
	cfg    Config
	q      *queue
	status *statusBoard
	pulled digests         // what the re-pulls found (repull.go)
	health *health.Monitor // probes the running tasks' health checks (health.go)

	mu        sync.Mutex
	want      desired.State
	refused   map[string]refusal   // task -> the spec the node refused for good
	unmanaged map[string]string    // last reported unmanaged containers, id -> reason
	changedAt map[string]time.Time // task -> when a desired change queued it, until its first action

	// The first full pass: every key the first resync queued has been
	// worked once (successfully or not). ready is closed then.
	firstPass map[string]bool // nil until the first resync has listed
	ready     chan struct{}
	readyOnce sync.Once
}

// refusal is a spec whose action failed for good (the node policy): nothing
// is tried again until the spec changes.
type refusal struct {
	hash string
	err  error
}

// New returns a controller; it starts nothing until Run.
func New(rt Runtime, cfg Config) *Controller {
	cfg.defaults()
	board := newStatusBoard()
	if cfg.Metrics != nil {
		cfg.Metrics.board = board
	}
	c := &Controller{
		rt:        rt,
		cfg:       cfg,
		q:         newQueue(cfg.Clock, cfg.RetryInitial, cfg.RetryMax),
		status:    board,
		changedAt: map[string]time.Time{},
		want:      desired.State{Tasks: map[string]desired.Task{}},
		refused:   map[string]refusal{},
		unmanaged: map[string]string{},
		ready:     make(chan struct{}),
	}
	// A change of a task's health is a reason to look at it again (an
	// unhealthy task is stopped) and at the tasks that wait for it.
	c.health = health.NewMonitor(health.Config{Exec: cfg.Exec, Clock: cfg.Clock, Log: cfg.Log.WithName("health"),
		Metrics: cfg.HealthMetrics, Changed: c.q.Add})
	return c
}

// Ready is closed once the first full pass is done: the node was listed and
// every task on either side was worked on once.
func (c *Controller) Ready() <-chan struct{} { return c.ready }

// Status returns every task's status, sorted by name, with the latest
// probe of each health check.
func (c *Controller) Status() []TaskStatus {
	list := c.status.list()
	for i := range list {
		c.withProbe(&list[i])
	}
	return list
}

// TaskStatus returns one task's status; false when the controller knows no
// such task (never desired, or removed).
func (c *Controller) TaskStatus(name string) (TaskStatus, bool) {
	st, ok := c.status.get(name)
	c.withProbe(&st)
	return st, ok
}

// withProbe adds to st what the last probe of its container found: the
// board holds the health state, which changes seldom; the streak, the time
// and the output of the last probe are read when asked for.
func (c *Controller) withProbe(st *TaskStatus) {
	if st.Health.State == "" {
		return
	}
	if h := c.healthOf(st.Name, st.ContainerID); h != nil {
		st.Health.Streak, st.Health.LastProbe, st.Health.Output = h.Streak, h.LastProbe, h.Output
	}
}

// StatusChanged returns a channel closed at the next change of any status.
func (c *Controller) StatusChanged() <-chan struct{} { return c.status.watch() }

// Unmanaged returns the containers of the namespace the reconciler leaves
// alone, as of the last resync.
func (c *Controller) Unmanaged() []observed.Unmanaged {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]observed.Unmanaged, 0, len(c.unmanaged))
	for id, reason := range c.unmanaged {
		out = append(out, observed.Unmanaged{ID: id, Reason: reason})
	}
	return out
}

// SetDesired replaces the desired state and queues every task whose entry
// changed. A state whose directory could not be read keeps the previous tasks
// (so they are still kept running) and forbids deletions until the directory
// reads again.
func (c *Controller) SetDesired(s desired.State) {
	c.mu.Lock()
	old := c.want
	if s.Err != nil {
		s = s.WithTasksOf(old)
	}
	if s.Tasks == nil {
		s.Tasks = map[string]desired.Task{}
	}
	c.want = s
	var changed []string
	for name, t := range s.Tasks {
		if o, ok := old.Tasks[name]; !ok || o.Source != t.Source || o.Revision != t.Revision || old.Hash(name) != s.Hash(name) {
			changed = append(changed, name)
		}
	}
	for name := range old.Tasks {
		if _, ok := s.Tasks[name]; !ok {
			changed = append(changed, name)
		}
	}
	now := c.cfg.Clock.Now()
	for _, name := range changed {
		if _, ok := c.changedAt[name]; !ok {
			c.changedAt[name] = now
		}
	}
	c.mu.Unlock()

	if s.Err == nil {
		counts := make(map[string]int, len(s.Broken))
		for file, err := range s.Broken {
			counts[file] = max(1, len(desired.Errors(err)))
		}
		c.cfg.Metrics.setManifestErrors(counts)
	}
	for _, name := range changed {
		c.q.Add(name)
	}
	if !sameKeys(s.Broken, old.Broken) || (s.Err == nil) != (old.Err == nil) {
		// Which containers are protected by a broken file changed: a resync
		// looks at every task.
		c.q.Add(resyncKey)
	}
}

// Exited tells the controller that a container's task exited (or was
// OOM-killed). It only queues the task; the worker reads fresh state.
func (c *Controller) Exited(containerID string) {
	if name, ok := taskOf(containerID); ok {
		c.q.Add(name)
	}
}

// taskOf recovers the task name from a container ID (observed.ContainerID).
func taskOf(id string) (string, bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 || len(id)-i-1 != desired.HashLen {
		return "", false
	}
	return id[:i], true
}

func sameKeys(a, b map[string]error) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// Run works the queue until ctx is done. It lists the node at start and every
// Resync period. With an ExitWatcher, task exits are acted on at once.
func (c *Controller) Run(ctx context.Context, exits ExitWatcher) error {
	var wg sync.WaitGroup
	for range c.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c.work(ctx) {
			}
		}()
	}
	if exits != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := exits.WatchExits(ctx, c.Exited); err != nil && ctx.Err() == nil {
				c.cfg.Log.Error(err, "exit events stopped; exits are seen at each resync only")
			}
		}()
	}
	if c.cfg.Puller != nil && c.cfg.RepullInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.repullLoop(ctx)
		}()
	}
	c.q.Add(resyncKey)
	stopTicks := clock.Every(c.cfg.Clock, c.cfg.Resync, func() {
		if c.cfg.Reload != nil {
			c.cfg.Reload()
		}
		c.q.Add(resyncKey)
	})
	<-ctx.Done()
	stopTicks()
	c.health.Close()
	c.q.ShutDown()
	wg.Wait()
	return nil
}
