package runtime

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/api/types/runc/options"
	tasktypes "github.com/containerd/containerd/api/types/task"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/go-logr/logr"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// DefaultNamespace is the containerd namespace the reconciler works in.
const DefaultNamespace = "warren"

// Runtime is the reconciler's containerd client. It is the only place that
// speaks containerd; everything it takes and returns is in the reconciler's
// own words (desired.Task, observed.Raw).
type Runtime struct {
	client         *containerd.Client
	ns             string
	snapshotter    string
	imagesDir      string
	logDir         string
	logDriver      string // binary run by the shim as the log driver ("" = plain file)
	logMaxSize     int64
	logMaxFiles    int
	stateDir       string // volumes/ and secrets/ live here
	runcRoot       string
	policy         Policy
	registryConfig string // Docker config.json with registry credentials ("" = anonymous)
	dialOpts       []grpc.DialOption
	log            logr.Logger
	metrics        *Metrics    // nil: none recorded
	stats          *statsCache // per-task usage for the metrics, read at scrape time

	importMu sync.Mutex
	imported map[string]time.Time // archive path -> mtime when last looked at

	pulledMu sync.Mutex
	pulled   map[string]time.Time // image name -> when Prepare pulled it (PullAlways)

	users users // the process user per image and spec.user (users.go)
	index index // the namespace's containers between full listings (index.go)

	gcMu        sync.Mutex     // guards what Collect needs (collect.go)
	inFlight    map[string]int // container and lease IDs operations of this process work on
	collectDue  bool           // an operation failed: something may be left behind
	lastCollect time.Time
}

// Option configures a Runtime.
type Option func(*Runtime)

// WithNamespace sets the containerd namespace (default "warren").
func WithNamespace(ns string) Option { return func(r *Runtime) { r.ns = ns } }

// WithImagesDir sets a directory of image archives (*.tar, docker-archive or
// OCI layout) that are imported when a task asks for an image containerd does
// not have, and at every full listing (see List) when new or changed.
func WithImagesDir(dir string) Option { return func(r *Runtime) { r.imagesDir = dir } }

// WithLogDir sets where task stdout/stderr files are written.
func WithLogDir(dir string) Option { return func(r *Runtime) { r.logDir = dir } }

// WithLogDriver makes the containerd shim run binary (the reconciler itself)
// as the log driver of every task: it writes the task's stdout and stderr to
// the log directory, rotated at maxSize bytes, keeping maxFiles files, and
// goes on while the reconciler is stopped. Without it, output is appended to
// one file by the shim, with no rotation.
func WithLogDriver(binary string, maxSize int64, maxFiles int) Option {
	return func(r *Runtime) { r.logDriver, r.logMaxSize, r.logMaxFiles = binary, maxSize, maxFiles }
}

// WithStateDir sets the directory that holds named volumes (volumes/NAME)
// and the staged secrets of each container (secrets/ID).
func WithStateDir(dir string) Option { return func(r *Runtime) { r.stateDir = dir } }

// WithPolicy sets the node policy (default: the zero Policy, which allows no
// privileged mode, no added capability and no bind mount).
func WithPolicy(p Policy) Option { return func(r *Runtime) { r.policy = p } }

// WithRegistryConfig sets the Docker-style config.json that registry
// credentials are read from, at each pull. A missing file means anonymous
// pulls. See DefaultRegistryConfig.
func WithRegistryConfig(path string) Option { return func(r *Runtime) { r.registryConfig = path } }

// WithDialOptions adds gRPC dial options to the containerd connection
// (tests count calls with an interceptor).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(r *Runtime) { r.dialOpts = append(r.dialOpts, opts...) }
}

// WithRuncRoot sets runc's state directory for new containers (default: the
// shim's, /run/containerd/runc). A private containerd needs its own, or two
// daemons with the same namespace and container IDs would share runc state.
func WithRuncRoot(dir string) Option { return func(r *Runtime) { r.runcRoot = dir } }

// WithSnapshotter sets the snapshotter (default: containerd's default).
func WithSnapshotter(name string) Option { return func(r *Runtime) { r.snapshotter = name } }

// WithLogger sets the logger.
func WithLogger(l logr.Logger) Option { return func(r *Runtime) { r.log = l } }

// New connects to the containerd socket at address.
func New(ctx context.Context, address string, opts ...Option) (*Runtime, error) {
	r := &Runtime{ns: DefaultNamespace, log: logr.Discard(), imported: map[string]time.Time{}, pulled: map[string]time.Time{}, inFlight: map[string]int{}}
	for _, o := range opts {
		o(r)
	}
	if !socketServes(address) {
		return nil, fmt.Errorf("connect to containerd at %s: %w", address, ErrNoContainerd)
	}
	copts := []containerd.Opt{containerd.WithDefaultNamespace(r.ns), containerd.WithTimeout(10 * time.Second)}
	r.dialOpts = append(r.dialOpts, r.collectDialOptions()...)
	if r.metrics != nil {
		r.dialOpts = append(r.dialOpts, r.metrics.dialOptions()...)
	}
	copts = append(copts, containerd.WithExtraDialOpts(r.dialOpts))
	c, err := containerd.New(address, copts...)
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", address, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ok, err := c.IsServing(sctx); err != nil || !ok {
		c.Close()
		return nil, fmt.Errorf("connect to containerd at %s: not serving: %w", address, err)
	}
	// The same connection, with image blobs read through a cache.
	if conn, ok := c.Conn().(*grpc.ClientConn); ok {
		cached, err := containerd.NewWithConn(conn, containerd.WithDefaultNamespace(r.ns),
			containerd.WithServices(containerd.WithContentStore(newBlobCache(c.ContentStore()))))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("connect to containerd at %s: %w", address, err)
		}
		c = cached
	}
	r.client = c
	if r.snapshotter == "" {
		// Resolved once: left empty, the client would look up the
		// namespace's default at every create and image check.
		label, err := c.GetLabel(namespaces.WithNamespace(sctx, r.ns), defaults.DefaultSnapshotterNSLabel)
		if errdefs.IsNotFound(err) {
			label, err = "", nil // the namespace is not there yet: no label
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("connect to containerd at %s: default snapshotter: %w", address, err)
		}
		r.snapshotter = cmp.Or(label, defaults.DefaultSnapshotter)
	}
	if r.logDir != "" {
		if err := os.MkdirAll(r.logDir, 0o700); err != nil {
			c.Close()
			return nil, fmt.Errorf("create log directory: %w", err)
		}
	}
	r.stats = &statsCache{ttl: DefaultStatsTTL, now: time.Now, read: r.readTaskUsage}
	if r.metrics != nil {
		r.metrics.rt.Store(r)
	}
	return r, nil
}

// Close closes the connection.
func (r *Runtime) Close() error {
	if r.metrics != nil {
		r.metrics.rt.CompareAndSwap(r, nil)
	}
	return r.client.Close()
}

// Namespace is the containerd namespace in use.
func (r *Runtime) Namespace() string { return r.ns }

// LogPath is the file a container's stdout and stderr go to ("" without a log dir).
func (r *Runtime) LogPath(id string) string {
	if r.logDir == "" {
		return ""
	}
	return logfile.Path(r.logDir, id)
}

// List returns the containers of the namespace (only those labelled with task,
// if task is not empty) with their task status. The full listing costs two
// calls to containerd whatever their number; a task's listing costs two calls
// per container of that task (usually one; none for a new task), whatever
// the number of other tasks: containerd 1.6 answers a task listing by asking
// every task's shim (at 200 tasks, 45 ms against 0.3 ms), and a filtered
// container listing by reading every container, so a task's listing reads
// its containers by ID, from the index of the last full listing (index.go).
//
// A full listing (task "") first imports the archives of the images
// directory that are new or changed, so that the daemon's periodic resync
// imports an archive dropped in before any task asks for it. When nothing
// changed that costs one directory read and no call to containerd.
func (r *Runtime) List(ctx context.Context, task string) ([]observed.Raw, error) {
	var (
		recs    []containers.Container
		err     error
		indexed bool
		ids     []string
	)
	if task != "" {
		ids, indexed = r.index.of(task)
	}
	if indexed {
		recs, err = r.getContainers(ctx, ids)
	} else {
		var filters []string // containerd ORs the filters it is given
		if task != "" {
			filters = append(filters,
				fmt.Sprintf("labels.%q==%s", observed.LabelTask, task),
				fmt.Sprintf("id~=^%s-", regexp.QuoteMeta(task)))
		} else if err := r.importArchives(ctx); err != nil {
			r.log.Error(err, "import image archives", "dir", r.imagesDir)
		}
		since := r.index.begin()
		recs, err = r.client.ContainerService().List(ctx, filters...)
		if err == nil && task == "" {
			listed := make(map[string]string, len(recs))
			for _, c := range recs {
				listed[c.ID] = c.Labels[observed.LabelTask]
			}
			r.index.reset(listed, since)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	var tasks []*tasktypes.Process
	if task == "" {
		resp, err := r.client.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
		if err != nil {
			return nil, fmt.Errorf("list tasks: %w", errgrpc.ToNative(err))
		}
		tasks = resp.Tasks
	} else {
		// One task's containers (usually one): ask for their tasks only.
		// Listing every task costs containerd a call to each task's shim.
		for _, c := range recs {
			resp, err := r.client.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerID: c.ID})
			if err != nil {
				if err = errgrpc.ToNative(err); errdefs.IsNotFound(err) {
					continue
				}
				return nil, fmt.Errorf("get task %s: %w", c.ID, err)
			}
			tasks = append(tasks, resp.Process)
		}
	}
	byID := make(map[string]int, len(tasks))
	for i, t := range tasks {
		byID[t.ID] = i
	}
	out := make([]observed.Raw, 0, len(recs))
	for _, c := range recs {
		raw := observed.Raw{ID: c.ID, Labels: c.Labels, Image: c.Image, CreatedAt: c.CreatedAt, Status: observed.NoTask,
			Spec: recordedSpec(c.Extensions)}
		if i, ok := byID[c.ID]; ok {
			t := tasks[i]
			raw.Status = observed.ParseStatus(t.Status.String())
			raw.Pid = t.Pid
			raw.ExitCode = t.ExitStatus
			if t.ExitedAt != nil {
				raw.ExitedAt = t.ExitedAt.AsTime()
			}
		}
		out = append(out, raw)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// getContainers reads the containers of ids; those gone are left out (and
// forgotten by the index).
func (r *Runtime) getContainers(ctx context.Context, ids []string) ([]containers.Container, error) {
	var recs []containers.Container
	for _, id := range ids {
		c, err := r.client.ContainerService().Get(ctx, id)
		if errdefs.IsNotFound(err) {
			r.index.remove(id)
			continue
		} else if err != nil {
			return nil, err
		}
		recs = append(recs, c)
	}
	return recs, nil
}

// Create creates the container id for task t, with a new snapshot of its
// image, and labels (plus observed.LabelImageDigest: the digest of the image
// it was created from). Creating a container that exists is success.
//
// The node policy is checked first: a refused field is a *PolicyError
// (permanent), wrapped as "create container ID: FIELD: denied by node
// policy (...)". The image follows the task's imagePullPolicy.
//
// Everything it makes on the way (image content, the snapshot) is held by a
// lease of the reconciler's until the container holds it; if the create is
// interrupted (the reconciler killed, containerd gone), Collect removes
// what was left.
func (r *Runtime) Create(ctx context.Context, id string, t desired.Task, labels map[string]string) error {
	if err := r.policy.Check(t.Spec); err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	r.busy(id, true)
	defer r.busy(id, false)
	ctx, release, err := r.lease(ctx)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	defer release()
	if err := r.create(ctx, id, t, labels); err != nil {
		r.needCollect()
		return err
	}
	return nil
}

func (r *Runtime) create(ctx context.Context, id string, t desired.Task, labels map[string]string) error {
	if c, err := r.client.ContainerService().Get(ctx, id); err == nil {
		// Created before: identity makes this a no-op, if it is this
		// task's. Anything else on the ID is never taken over.
		if err := sameTask(id, c.Labels, labels); err != nil {
			return err
		}
		r.index.add(id, t.Metadata.Name)
		return nil
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	// Known before it exists and again once it does: a full listing that
	// begins in between would miss it (and drop the first record).
	r.index.add(id, t.Metadata.Name)
	defer r.index.add(id, t.Metadata.Name)
	img, err := r.image(ctx, t.Spec.Image, t.Spec.ImagePullPolicy)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	imgSpec, err := img.Spec(ctx)
	if err != nil {
		return fmt.Errorf("create container %s: read image config: %w", id, err)
	}
	labels = maps.Clone(labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[observed.LabelImageDigest] = img.Target().Digest.String()
	userOf := userKey{image: img.Target().Digest.String(), user: t.Spec.User}
	var user *specs.User
	if u, ok := r.users.get(userOf); ok {
		user = &u
	}
	sopts, err := specOpts(specInput{
		img:        img,
		entrypoint: imgSpec.Config.Entrypoint,
		cmd:        imgSpec.Config.Cmd,
		spec:       t.Spec,
		volumesDir: r.volumesDir(),
		secretsDir: r.secretsDir(id),
		imageArch:  imgSpec.Architecture,
		compatABIs: r.policy.AllowCompatSyscalls,

		imageConfig: imgSpec.Config,
		user:        user,
		remember:    r.users.rememberUser(userOf),
	})
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	opts := []containerd.NewContainerOpts{
		containerd.WithImage(img),
		containerd.WithSnapshotter(r.snapshotter),
		withNewSnapshot(id, img, r.snapshotter, snapshots.WithLabels(ownedLabel)),
		containerd.WithNewSpec(sopts...),
		containerd.WithContainerLabels(labels),
	}
	if r.runcRoot != "" {
		opts = append(opts, containerd.WithRuntime(plugins.RuntimeRuncV2, &options.Options{Root: r.runcRoot}))
	}
	if rec, err := specRecord(t.Spec); err == nil {
		opts = append(opts, containerd.WithContainerExtension(specExtension, rec))
	}
	_, err = r.client.NewContainer(ctx, id, opts...)
	if errdefs.IsAlreadyExists(err) {
		if c, gerr := r.client.ContainerService().Get(ctx, id); gerr == nil {
			return sameTask(id, c.Labels, labels) // created meanwhile
		}
		// The snapshot of an interrupted create outlived its container:
		// remove it and try once more.
		if rerr := r.removeSnapshot(ctx, id); rerr != nil {
			return fmt.Errorf("create container %s: %w", id, rerr)
		}
		_, err = r.client.NewContainer(ctx, id, opts...)
	}
	if err != nil {
		if _, lerr := r.client.LoadContainer(ctx, id); errdefs.IsNotFound(lerr) {
			r.removeSecrets(id)
		}
		return fmt.Errorf("create container %s: %w", id, err)
	}
	return nil
}

func (r *Runtime) volumesDir() string {
	if r.stateDir == "" {
		return ""
	}
	return filepath.Join(r.stateDir, "volumes")
}

func (r *Runtime) secretsDir(id string) string {
	if r.stateDir == "" {
		return ""
	}
	return filepath.Join(r.stateDir, "secrets", id)
}

func (r *Runtime) removeSecrets(id string) {
	if d := r.secretsDir(id); d != "" {
		if err := os.RemoveAll(d); err != nil {
			r.log.Error(err, "remove staged secrets", "container", id)
		}
	}
}

func (r *Runtime) removeSnapshot(ctx context.Context, key string) error {
	err := r.snapshotService().Remove(ctx, key)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove snapshot %s: %w", key, err)
	}
	return nil
}

// processArgs merges the image's ENTRYPOINT and CMD with the manifest's
// command and args (Kubernetes semantics).
func processArgs(entrypoint, cmd, command, args []string) []string {
	switch {
	case len(command) > 0:
		return append(append([]string{}, command...), args...)
	case len(args) > 0:
		return append(append([]string{}, entrypoint...), args...)
	default:
		return append(append([]string{}, entrypoint...), cmd...)
	}
}

// Start starts the container's task, replacing a task that has exited. A
// running task is left alone.
func (r *Runtime) Start(ctx context.Context, id string) error {
	rec, err := r.client.ContainerService().Get(ctx, id)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if _, err := r.client.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerID: id}); err == nil {
		return r.startExisting(ctx, id)
	} else if err = errgrpc.ToNative(err); !errdefs.IsNotFound(err) {
		return fmt.Errorf("start container %s: load task: %w", id, err)
	}
	return r.startNew(ctx, rec)
}

// startExisting starts the task of container id that exists: a created
// one is started, a running or paused one left as it is, and an exited one
// deleted and replaced by a new one.
func (r *Runtime) startExisting(ctx context.Context, id string) error {
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	t, err := c.Task(ctx, nil)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("start container %s: load task: %w", id, err)
	}
	if err == nil { // else gone meanwhile
		st, err := t.Status(ctx)
		if err != nil {
			return fmt.Errorf("start container %s: task status: %w", id, err)
		}
		switch st.Status {
		case containerd.Running, containerd.Paused, containerd.Pausing:
			return nil
		case containerd.Created:
			if err := t.Start(ctx); err != nil {
				return fmt.Errorf("start container %s: %w", id, err)
			}
			return nil
		}
		if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("start container %s: delete exited task: %w", id, err)
		}
	}
	rec, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	return r.startNew(ctx, rec)
}

// startNew creates the task of container rec, with its output to the log
// driver, and starts it. It asks containerd directly, as the client's
// NewTask would, less three reads of the container record (each with its
// whole OCI spec, decoded once more): the task needs only the snapshot's
// mounts. (NewTask also adds the spec's SELinux mount label to them; the
// reconciler never sets one.)
func (r *Runtime) startNew(ctx context.Context, rec containers.Container) error {
	id := rec.ID
	ioc := cio.NullIO
	switch {
	case r.logDir != "" && r.logDriver != "":
		ioc = cio.BinaryIO(r.logDriver, logfile.DriverArgs(r.logDir, r.logMaxSize, r.logMaxFiles))
	case r.logDir != "":
		ioc = cio.LogFile(r.LogPath(id))
	}
	out, err := ioc(id)
	if err != nil {
		return fmt.Errorf("start container %s: output: %w", id, err)
	}
	defer out.Close() // the shim holds the output: nothing of it is in this process
	cfg := out.Config()
	req := &tasksapi.CreateTaskRequest{ContainerID: id, Terminal: cfg.Terminal, Stdin: cfg.Stdin, Stdout: cfg.Stdout, Stderr: cfg.Stderr}
	if rec.SnapshotKey != "" {
		mounts, err := r.client.SnapshotService(rec.Snapshotter).Mounts(ctx, rec.SnapshotKey)
		if err != nil {
			return fmt.Errorf("start container %s: root file system: %w", id, err)
		}
		for _, m := range mounts {
			req.Rootfs = append(req.Rootfs, &types.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
		}
	}
	_, err = r.client.TaskService().Create(ctx, req)
	if err = errgrpc.ToNative(err); errdefs.IsAlreadyExists(err) {
		// A task delete cut short (the reconciler killed during it) can
		// leave containerd with a task of this ID that it neither lists
		// nor loads, and that blocks every new task of the ID. Deleting
		// it by ID clears it (containerd answers not found, and clears it).
		r.log.Info("clearing a stale task left by an interrupted delete", "container", id)
		if err := r.deleteStaleTask(ctx, id); err != nil {
			return fmt.Errorf("start container %s: %w", id, err)
		}
		_, err = r.client.TaskService().Create(ctx, req)
		err = errgrpc.ToNative(err)
	}
	if err != nil {
		out.Cancel()
		return fmt.Errorf("start container %s: create task: %w", id, err)
	}
	if _, err := r.client.TaskService().Start(ctx, &tasksapi.StartRequest{ContainerID: id}); err != nil {
		err = errgrpc.ToNative(err)
		// The call can fail after the process started (a cancelled or
		// timed-out call): a running task is kept, only a task that never
		// ran is removed so that the next Start begins clean.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		resp, gerr := r.client.TaskService().Get(cctx, &tasksapi.GetRequest{ContainerID: id})
		if gerr == nil && resp.Process != nil && resp.Process.Status == tasktypes.Status_CREATED {
			_, _ = r.client.TaskService().Delete(cctx, &tasksapi.DeleteTaskRequest{ContainerID: id})
		}
		return fmt.Errorf("start container %s: %w", id, err)
	}
	return nil
}

// Stop stops the container's task: signal (default SIGTERM), up to grace for
// it to exit, then SIGKILL to every process of the container. The exit wait is
// registered before the first signal, so an exit in between is not missed.
// A missing container or task, or one already stopped, is success.
func (r *Runtime) Stop(ctx context.Context, id, signal string, grace time.Duration) error {
	sig, err := parseSignal(signal)
	if err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	t, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("stop container %s: load task: %w", id, err)
	}
	st, err := t.Status(ctx)
	if errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return fmt.Errorf("stop container %s: task status: %w", id, err)
	}
	if st.Status == containerd.Stopped {
		return nil
	}
	waitCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited, err := t.Wait(waitCtx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("stop container %s: wait: %w", id, err)
	}
	if st.Status == containerd.Paused || st.Status == containerd.Pausing {
		// A paused process cannot handle its signal.
		_ = t.Resume(ctx)
	}
	if err := t.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: send %s: %w", id, signal, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop container %s: %w", id, ctx.Err())
	case <-timer.C:
	}
	r.log.Info("grace period over, killing", "container", id, "grace", grace)
	if err := t.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: send SIGKILL: %w", id, err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop container %s: %w", id, ctx.Err())
	}
}

// Delete removes the container's task (killing it if it still runs), the
// container, its snapshot, its staged secrets and its log files. A missing container is success.
func (r *Runtime) Delete(ctx context.Context, id string) error {
	err := r.delete(ctx, id)
	if err != nil {
		r.needCollect()
	}
	return err
}

func (r *Runtime) delete(ctx context.Context, id string) error {
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		r.index.remove(id)
		return r.removeSnapshot(ctx, id)
	} else if err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	if t, err := c.Task(ctx, nil); err == nil {
		if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete container %s: delete task: %w", id, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: load task: %w", id, err)
	} else if err := r.deleteStaleTask(ctx, id); err != nil {
		// No task that containerd can load, but maybe one an interrupted
		// delete left: it would outlive the container and block a new
		// container of the same ID (the same spec again) from starting.
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	r.index.remove(id)
	r.removeSecrets(id)
	if r.logDir != "" {
		if err := logfile.Remove(r.logDir, id); err != nil {
			r.log.Error(err, "remove log files", "container", id)
			r.needCollect()
		}
	}
	return nil
}

// deleteStaleTask deletes the task of container id by ID, through the task
// service: also one that containerd cannot load (its shim's container is
// gone), which Task(...).Delete cannot reach. Not found is success.
func (r *Runtime) deleteStaleTask(ctx context.Context, id string) error {
	_, err := r.client.TaskService().Delete(ctx, &tasksapi.DeleteTaskRequest{ContainerID: id})
	if err = errgrpc.ToNative(err); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete stale task: %w", err)
	}
	return nil
}

func parseSignal(name string) (syscall.Signal, error) {
	if name == "" {
		return syscall.SIGTERM, nil
	}
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if s := unix.SignalNum(n); s != 0 {
		return s, nil
	}
	return 0, fmt.Errorf("unknown signal %q", name)
}

// sameTask checks that the container id that exists, with labels have, is
// the one a create with labels want would make.
func sameTask(id string, have, want map[string]string) error {
	for _, k := range []string{observed.LabelManagedBy, observed.LabelTask, observed.LabelSpecHash} {
		if have[k] != want[k] {
			return fmt.Errorf("create container %s: a container of that ID exists and is not this task's (label %s is %q, not %q); it is left alone", id, k, have[k], want[k])
		}
	}
	return nil
}

// withNewSnapshot is containerd.WithNewSnapshot for the resolved
// snapshotter and without ID-mapping labels: it prepares the container's
// writable snapshot on the image's layers. containerd's asks the daemon for
// the snapshotter's capabilities first (one more call per container), which
// only matter to a snapshot with ID-mapping labels.
func withNewSnapshot(id string, img containerd.Image, snapshotter string, opts ...snapshots.Opt) containerd.NewContainerOpts {
	return func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
		diffIDs, err := img.RootFS(ctx)
		if err != nil {
			return err
		}
		if _, err := client.SnapshotService(snapshotter).Prepare(ctx, id, identity.ChainID(diffIDs).String(), opts...); err != nil {
			return err
		}
		c.Snapshotter, c.SnapshotKey, c.Image = snapshotter, id, img.Name()
		return nil
	}
}
