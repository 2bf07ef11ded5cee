package reconcile

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-logr/logr"

	"github.com/warren/reconciler/pkg/desired"
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
// it points at. It is optional: without it there is no periodic re-pull.
type Puller interface {
	Pull(ctx context.Context, ref string) (digest string, err error)
}

// ImageChecker says whether an image is on the node already. It is optional:
// with it, a create that has to fetch its image first shows the phase
// Pulling instead of Creating.
type ImageChecker interface {
	HasImage(ctx context.Context, ref string) (bool, error)
}

// Preparer gets a task's container ready to be created, creating nothing:
// the node policy allows its spec and its image is on the node (imported,
// pulled or unpacked, as its pull policy says). It is optional. With it, a
// replacement that stops the old container before it creates the new one
// (stop-first) stops nothing until the new one can be created: a manifest
// whose image cannot be had (a mistyped tag, a registry that is down) or
// that the node policy refuses leaves the old container running.
type Preparer interface {
	Prepare(ctx context.Context, t desired.Task) error
}

// Collector removes what interrupted operations left behind: snapshots,
// leases and files of containers that no longer exist (the reconciler was
// killed, or containerd went away, half way through a create or a delete).
// It is optional; the controller calls it at each resync and logs its
// error. It must be cheap when there is nothing to look for.
type Collector interface {
	Collect(ctx context.Context) error
}

// ExitWatcher reports task exits as they happen. It is optional: without it
// an exit is seen at the next resync.
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
	Clock   Clock // default RealClock

	// RetryInitial and RetryMax bound the per-task retry backoff after a
	// failed action; defaults 500ms and 1m.
	RetryInitial, RetryMax time.Duration

	// Metrics, if set, records what the controller does.
	Metrics *Metrics

	// RepullInterval, if set and the runtime is a Puller, re-pulls the image
	// of every task with imagePullPolicy Always that often; a tag that moved
	// replaces the task's container (auto-update). Default off.
	RepullInterval time.Duration
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.Resync <= 0 {
		c.Resync = 30 * time.Second
	}
	if c.Clock == nil {
		c.Clock = RealClock{}
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
type Controller struct {
	rt     Runtime
	cfg    Config
	q      *queue
	status *statusBoard

	mu        sync.Mutex
	want      desired.State
	retries   map[string]*backoff.ExponentialBackOff
	retryAt   map[string]time.Time // task -> when its retry after a failed sync is due
	refused   map[string]string    // task -> spec hash whose action failed permanently
	unmanaged map[string]string    // last reported unmanaged containers, id -> reason
	changedAt map[string]time.Time // task -> when a desired change queued it, until its first action
	pulled    map[string]string    // task -> image digest its tag pointed at when last re-pulled

	// The first full pass: every key the first resync queued has been
	// worked once (successfully or not). ready is closed then.
	firstPass map[string]bool // nil until the first resync has listed
	ready     chan struct{}
	readyOnce sync.Once
}

// New returns a controller; it starts nothing until Run.
func New(rt Runtime, cfg Config) *Controller {
	cfg.defaults()
	board := newStatusBoard()
	if cfg.Metrics != nil {
		cfg.Metrics.board = board
	}
	return &Controller{
		rt:        rt,
		cfg:       cfg,
		q:         newQueue(cfg.Clock),
		status:    board,
		changedAt: map[string]time.Time{},
		pulled:    map[string]string{},
		want:      desired.State{Tasks: map[string]desired.Task{}},
		retries:   map[string]*backoff.ExponentialBackOff{},
		retryAt:   map[string]time.Time{},
		refused:   map[string]string{},
		unmanaged: map[string]string{},
		ready:     make(chan struct{}),
	}
}

// Ready is closed once the first full pass is done: the node was listed and
// every task on either side was worked on once.
func (c *Controller) Ready() <-chan struct{} { return c.ready }

// Status returns every task's status, sorted by name.
func (c *Controller) Status() []TaskStatus { return c.status.list() }

// TaskStatus returns one task's status; false when the controller knows no
// such task (never desired, or removed).
func (c *Controller) TaskStatus(name string) (TaskStatus, bool) { return c.status.get(name) }

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
		s.Tasks, s.Broken, s.Hashes = old.Tasks, old.Broken, old.Hashes
	}
	if s.Tasks == nil {
		s.Tasks = map[string]desired.Task{}
	}
	c.want = s
	var changed []string
	for name, t := range s.Tasks {
		if o, ok := old.Tasks[name]; !ok || o.Source != t.Source || old.Hash(name) != s.Hash(name) {
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

// resyncKey is the queue key of a full pass: list everything once, queue
// every task seen on either side.
const resyncKey = "\x00resync"

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
	if p, ok := c.rt.(Puller); ok && c.cfg.RepullInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.repullLoop(ctx, p)
		}()
	}
	c.q.Add(resyncKey)
	var timer Timer
	var tick func()
	var tmu sync.Mutex
	tick = func() {
		c.q.Add(resyncKey)
		tmu.Lock()
		defer tmu.Unlock()
		if ctx.Err() == nil {
			timer = c.cfg.Clock.AfterFunc(c.cfg.Resync, tick)
		}
	}
	tmu.Lock()
	timer = c.cfg.Clock.AfterFunc(c.cfg.Resync, tick)
	tmu.Unlock()
	<-ctx.Done()
	tmu.Lock()
	timer.Stop()
	tmu.Unlock()
	c.q.ShutDown()
	wg.Wait()
	return nil
}

func (c *Controller) work(ctx context.Context) bool {
	key, ok := c.q.Get()
	if !ok {
		return false
	}
	defer c.q.Done(key)
	if ctx.Err() != nil {
		return false
	}
	var err error
	began := c.cfg.Clock.Now()
	if key == resyncKey {
		err = c.resync(ctx)
	} else {
		err = c.sync(ctx, key)
		c.cfg.Metrics.observeSync(c.cfg.Clock.Now().Sub(began))
	}
	c.mu.Lock()
	if c.firstPass != nil && key != resyncKey {
		delete(c.firstPass, key)
		c.maybeReadyLocked()
	}
	b := c.retries[key]
	if err == nil {
		delete(c.retries, key)
		delete(c.retryAt, key)
		c.mu.Unlock()
		return true
	}
	if b == nil {
		b = backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(c.cfg.RetryInitial),
			backoff.WithMaxInterval(c.cfg.RetryMax),
			backoff.WithMaxElapsedTime(0),
			backoff.WithClockProvider(c.cfg.Clock))
		c.retries[key] = b
	}
	delay := b.NextBackOff()
	c.retryAt[key] = c.cfg.Clock.Now().Add(delay)
	c.mu.Unlock()
	if ctx.Err() == nil {
		c.cfg.Log.Error(err, "sync failed, will retry", "task", key, "retryIn", delay)
		c.q.AddAfter(key, delay)
	}
	return true
}

// repullLoop re-pulls the images of Always tasks every RepullInterval and
// queues the tasks whose tag moved.
func (c *Controller) repullLoop(ctx context.Context, p Puller) {
	for {
		wake := make(chan struct{})
		t := c.cfg.Clock.AfterFunc(c.cfg.RepullInterval, func() { close(wake) })
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		}
		c.mu.Lock()
		images := map[string]string{}
		for name, task := range c.want.Tasks {
			if task.Spec.ImagePullPolicy == desired.PullAlways {
				images[name] = task.Spec.Image
			}
		}
		c.mu.Unlock()
		for name, ref := range images {
			digest, err := p.Pull(ctx, ref)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				c.cfg.Log.Error(err, "re-pull failed; the running container is kept", "task", name, "image", ref)
				continue
			}
			c.mu.Lock()
			changed := c.pulled[name] != digest
			c.pulled[name] = digest
			c.mu.Unlock()
			if changed {
				c.q.Add(name)
			}
		}
	}
}

// staleImage reports whether the container runs an image digest other than
// the one its tag pointed at when last re-pulled.
func (c *Controller) staleImage(name string, ct observed.Container) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.pulled[name]
	return d, d != "" && ct.ImageDigest != "" && ct.ImageDigest != d
}

// resync lists the whole namespace once and queues every task on either side.
func (c *Controller) resync(ctx context.Context) error {
	began := c.cfg.Clock.Now()
	have, err := observed.Observe(ctx, c.rt, "")
	if err != nil {
		return err
	}
	if col, ok := c.rt.(Collector); ok {
		if err := col.Collect(ctx); err != nil {
			c.cfg.Log.Error(err, "remove what interrupted operations left behind; trying again at the next resync")
		}
	}
	running := 0
	for _, ct := range have.Containers {
		if ct.Status == observed.Running {
			running++
		}
	}
	took := c.cfg.Clock.Now().Sub(began)
	c.cfg.Metrics.observeResync(took, running, len(have.Containers), len(have.Unmanaged))
	c.cfg.Log.V(1).Info("resync listed the node", "containers", len(have.Containers), "running", running, "unmanaged", len(have.Unmanaged), "took", took)
	c.reportUnmanaged(have.Unmanaged)

	// Plan every task from this one listing. A task in sync whose status is
	// already what this listing says is left alone; any other task is
	// queued, and its worker lists it again, fresh, before acting or writing
	// its status (this pass never writes a status: its listing may be older
	// than a worker's). So a pass over a node in sync costs one listing,
	// whatever the number of tasks.
	c.mu.Lock()
	want := c.want
	c.mu.Unlock()
	byTask := map[string][]Action{}
	for _, a := range Plan(want, have, c.cfg.Clock.Now()) {
		byTask[a.Task] = append(byTask[a.Task], a)
	}
	keys := map[string]bool{}
	for name := range want.Tasks {
		keys[name] = true
	}
	for _, ct := range have.Containers {
		keys[ct.Task] = true
	}
	var queue []string
	for name := range keys {
		t, ok := want.Tasks[name]
		if len(byTask[name]) > 0 || !ok {
			queue = append(queue, name)
			continue
		}
		cur, known := c.status.get(name)
		if st := observedStatus(name, &t, want.Hash(name), have.ForTask(name), nil, want.Broken); !known || !cur.same(st) {
			queue = append(queue, name)
		}
	}
	// A task waiting out its retry backoff after a failed sync is left to
	// its timer: the resync must not turn the backoff into a retry every
	// period (a registry down, with many tasks, would get a pull storm).
	// A desired change or an exit still queues it at once. Such a task
	// has been worked once already, so the first pass need not wait for it.
	c.mu.Lock()
	now := c.cfg.Clock.Now()
	queue = slices.DeleteFunc(queue, func(k string) bool {
		at, ok := c.retryAt[k]
		return ok && now.Before(at)
	})
	if c.firstPass == nil {
		c.firstPass = make(map[string]bool, len(queue))
		for _, k := range queue {
			c.firstPass[k] = true
		}
		c.maybeReadyLocked()
	}
	c.mu.Unlock()
	for _, k := range queue {
		c.q.Add(k)
	}
	return nil
}

func (c *Controller) maybeReadyLocked() {
	if len(c.firstPass) == 0 {
		c.readyOnce.Do(func() { close(c.ready) })
	}
}

func (c *Controller) reportUnmanaged(list []observed.Unmanaged) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]string, len(list))
	for _, u := range list {
		seen[u.ID] = u.Reason
		if c.unmanaged[u.ID] != u.Reason {
			c.cfg.Log.Info("leaving unmanaged container alone", "container", u.ID, "reason", u.Reason)
		}
	}
	c.unmanaged = seen
}

// sync re-reads both states for one task, plans, and applies the plan.
func (c *Controller) sync(ctx context.Context, name string) error {
	c.mu.Lock()
	want := desired.State{Broken: c.want.Broken, Err: c.want.Err, Tasks: map[string]desired.Task{}}
	var tp *desired.Task
	var hash string // of tp's spec
	if t, ok := c.want.Tasks[name]; ok {
		hash = c.want.Hash(name)
		want.Tasks[name], want.Hashes = t, map[string]string{name: hash}
		tp = &t
	}
	refusedHash, refused := c.refused[name]
	c.mu.Unlock()

	have, err := observed.Observe(ctx, c.rt, name)
	if err != nil {
		return err
	}
	now := c.cfg.Clock.Now()
	if tp != nil {
		id := observed.ContainerID(name, hash)
		for _, ct := range have.Containers {
			if d, stale := c.staleImage(name, ct); stale && ct.ID == id {
				// The tag moved (auto-update): the container goes, and the
				// next look creates it again from the new image.
				c.cfg.Log.Info("image tag moved, replacing container", "task", name, "image", tp.Spec.Image, "old", ct.ImageDigest, "new", d)
				for _, a := range remove(ct, "image "+tp.Spec.Image+" moved to "+d) {
					if err := c.apply(ctx, a, observedStatus(name, tp, hash, have.Containers, nil, want.Broken)); err != nil {
						return err
					}
				}
				c.q.Add(name)
				return nil
			}
		}
	}
	actions := Plan(want, have, now)
	st := observedStatus(name, tp, hash, have.Containers, actions, want.Broken)

	if tp != nil && refused && refusedHash == hash {
		// Refused for good (node policy): nothing changes until the spec does.
		c.setStatus(withPhase(c.current(name, st), PhaseFailed, ""))
		return nil
	}
	if tp == nil && len(have.Containers) == 0 {
		c.mu.Lock()
		delete(c.refused, name)
		delete(c.changedAt, name)
		c.mu.Unlock()
		if c.status.remove(name) {
			c.cfg.Log.Info("task removed", "task", name)
		}
		return nil
	}
	c.cfg.Log.V(1).Info("reconciled", "task", name, "actions", len(actions), "containers", len(have.Containers))
	if !Changes(actions) {
		c.mu.Lock()
		delete(c.changedAt, name)
		c.mu.Unlock()
		c.setStatus(st)
		for _, a := range actions {
			if a.Op == OpWait {
				c.q.AddAfter(name, a.NotBefore.Sub(now))
			}
			if a.Op == OpBlocked {
				return errors.New(a.Reason)
			}
		}
		return nil
	}
	c.mu.Lock()
	if at, ok := c.changedAt[name]; ok {
		delete(c.changedAt, name)
		c.cfg.Metrics.observeEventToAction(now.Sub(at))
	}
	c.mu.Unlock()
	if err := c.prepare(ctx, actions, st); err != nil {
		return c.failed(name, tp, st, fmt.Errorf("the new spec cannot be applied, the running container is kept: %w", err))
	}
	for _, a := range actions {
		began := c.cfg.Clock.Now()
		err := c.apply(ctx, a, st)
		c.cfg.Metrics.observeAction(a.Op, c.cfg.Clock.Now().Sub(began), err)
		if err == nil && a.Restart {
			c.cfg.Metrics.restarted()
		}
		if err != nil {
			return c.failed(name, tp, st, err)
		}
	}
	// Look again with fresh state: the status then says what is, and a
	// task that died at once meets its restart policy.
	c.q.Add(name)
	return nil
}

// failed records why the actions for task name (desired as tp, nil when
// not desired) stopped: a permanent error (the node policy) marks the spec
// refused until it changes and is not retried (nil); any other is returned
// for a retry with back-off.
func (c *Controller) failed(name string, tp *desired.Task, st TaskStatus, err error) error {
	var p interface{ Permanent() bool }
	if tp != nil && errors.As(err, &p) && p.Permanent() {
		c.mu.Lock()
		c.refused[name] = tp.Hash()
		c.mu.Unlock()
		c.setStatus(withPhase(st, PhaseFailed, err.Error()))
		return nil
	}
	c.setStatus(withPhase(st, PhaseError, err.Error()))
	return err
}

// pulling shows the phase Pulling when the image of t is not on the node
// yet, or is pulled whatever (PullAlways), and the runtime can tell.
func (c *Controller) pulling(ctx context.Context, t *desired.Task, id string, st TaskStatus) bool {
	ic, ok := c.rt.(ImageChecker)
	if !ok {
		return false
	}
	has, err := ic.HasImage(ctx, t.Spec.Image)
	if err != nil || (has && t.Spec.ImagePullPolicy != desired.PullAlways) {
		return false
	}
	c.setStatus(withPhase(st, PhasePulling, "pulling "+t.Spec.Image+" for container "+id))
	return true
}

func (c *Controller) current(name string, fallback TaskStatus) TaskStatus {
	if st, ok := c.status.get(name); ok {
		return st
	}
	return fallback
}

func withPhase(st TaskStatus, p Phase, msg string) TaskStatus {
	st.Phase = p
	if msg != "" {
		st.Message = msg
	}
	return st
}

// setStatus records st and logs a phase transition once.
func (c *Controller) setStatus(st TaskStatus) {
	prev, transition := c.status.set(st, c.cfg.Clock.Now())
	if transition {
		c.cfg.Log.Info("task phase changed", "task", st.Name, "from", string(prev), "to", string(st.Phase), "message", st.Message)
	}
}

// prepare runs the Preparer, when the runtime has one, before actions that
// stop or delete a container of the task and then create its new one: the
// old container goes only once the new one can be created.
func (c *Controller) prepare(ctx context.Context, actions []Action, st TaskStatus) error {
	p, ok := c.rt.(Preparer)
	if !ok {
		return nil
	}
	destructive := false
	for _, a := range actions {
		switch a.Op {
		case OpStop, OpDelete:
			destructive = true
		case OpCreate:
			if !destructive || a.Desired == nil {
				return nil
			}
			t := a.Desired
			c.pulling(ctx, t, a.ContainerID, st)
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), actionTimeout)
			defer cancel()
			return p.Prepare(pctx, *t)
		}
	}
	return nil
}

// actionTimeout bounds an action that shutdown does not interrupt.
const actionTimeout = 5 * time.Minute

func (c *Controller) apply(ctx context.Context, a Action, st TaskStatus) error {
	log := c.cfg.Log.WithValues("task", a.Task, "container", a.ContainerID, "reason", a.Reason)
	if a.Op != OpStop {
		// Create, start and delete are short and must not be cut in half by
		// shutdown (a start cancelled after the process began would look
		// failed). A stop can wait out a long grace period: shutdown
		// interrupts it, and the next start of the reconciler resumes it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), actionTimeout)
		defer cancel()
	}
	switch a.Op {
	case OpCreate:
		t := a.Desired
		if !c.pulling(ctx, t, a.ContainerID, st) {
			c.setStatus(withPhase(st, PhaseCreating, "creating container "+a.ContainerID))
		}
		log.Info("creating container", "image", t.Spec.Image)
		labels := observed.Labels(t.Metadata.Name, t.Hash(), t.Source, t.Spec.StopSig(), t.Spec.StopGrace())
		maps.Copy(labels, a.Labels)
		return c.rt.Create(ctx, a.ContainerID, *t, labels)
	case OpStart:
		if st.Phase == PhaseCompleted || st.Phase == PhaseFailed || st.Phase == PhaseCrashLoopBackOff {
			c.setStatus(withPhase(st, PhaseRestarting, a.Reason))
		}
		log.Info("starting task")
		if err := c.rt.SetLabels(ctx, a.ContainerID, a.Labels); err != nil {
			return err
		}
		return c.rt.Start(ctx, a.ContainerID)
	case OpStop:
		c.setStatus(withPhase(st, PhaseStopping, "stopping "+a.ContainerID+": "+a.Reason))
		log.Info("stopping container", "signal", a.StopSignal, "grace", a.StopGrace)
		return c.rt.Stop(ctx, a.ContainerID, a.StopSignal, a.StopGrace)
	case OpDelete:
		log.Info("deleting container")
		return c.rt.Delete(ctx, a.ContainerID)
	case OpBlocked:
		return errors.New(a.Reason)
	case OpWait:
		return nil
	}
	return fmt.Errorf("unknown action %q", a.Op)
}
