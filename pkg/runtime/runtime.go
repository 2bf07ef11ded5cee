package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/distribution/reference"
	"github.com/go-logr/logr"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// DefaultNamespace is the containerd namespace the reconciler works in.
const DefaultNamespace = "warren"

// Runtime is the reconciler's containerd client. It is the only place that
// speaks containerd; everything it takes and returns is in the reconciler's
// own words (desired.Task, observed.Raw).
type Runtime struct {
	client      *containerd.Client
	ns          string
	snapshotter string
	imagesDir   string
	logDir      string
	runcRoot    string
	log         logr.Logger

	importMu sync.Mutex
	imported map[string]time.Time // archive path -> mtime when imported
}

// Option configures a Runtime.
type Option func(*Runtime)

// WithNamespace sets the containerd namespace (default "warren").
func WithNamespace(ns string) Option { return func(r *Runtime) { r.ns = ns } }

// WithImagesDir sets a directory of image archives (*.tar) that are imported
// when a task asks for an image containerd does not have.
func WithImagesDir(dir string) Option { return func(r *Runtime) { r.imagesDir = dir } }

// WithLogDir sets where task stdout/stderr files are written.
func WithLogDir(dir string) Option { return func(r *Runtime) { r.logDir = dir } }

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
	r := &Runtime{ns: DefaultNamespace, log: logr.Discard(), imported: map[string]time.Time{}}
	for _, o := range opts {
		o(r)
	}
	if !socketServes(address) {
		return nil, fmt.Errorf("connect to containerd at %s: %w", address, ErrNoContainerd)
	}
	c, err := containerd.New(address, containerd.WithDefaultNamespace(r.ns), containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", address, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ok, err := c.IsServing(sctx); err != nil || !ok {
		c.Close()
		return nil, fmt.Errorf("connect to containerd at %s: not serving: %w", address, err)
	}
	r.client = c
	if r.logDir != "" {
		if err := os.MkdirAll(r.logDir, 0o700); err != nil {
			c.Close()
			return nil, fmt.Errorf("create log directory: %w", err)
		}
	}
	return r, nil
}

// Close closes the connection.
func (r *Runtime) Close() error { return r.client.Close() }

// Namespace is the containerd namespace in use.
func (r *Runtime) Namespace() string { return r.ns }

// LogPath is the file a container's stdout and stderr go to ("" without a log dir).
func (r *Runtime) LogPath(id string) string {
	if r.logDir == "" {
		return ""
	}
	return filepath.Join(r.logDir, id+".log")
}

// List returns the containers of the namespace (only those labelled with task,
// if task is not empty) with their task status, in two calls to containerd
// whatever their number.
func (r *Runtime) List(ctx context.Context, task string) ([]observed.Raw, error) {
	var filters []string // containerd ORs the filters it is given
	if task != "" {
		filters = append(filters,
			fmt.Sprintf("labels.%q==%s", observed.LabelTask, task),
			fmt.Sprintf("id~=^%s-", regexp.QuoteMeta(task)))
	}
	recs, err := r.client.ContainerService().List(ctx, filters...)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	resp, err := r.client.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", errgrpc.ToNative(err))
	}
	byID := make(map[string]int, len(resp.Tasks))
	for i, t := range resp.Tasks {
		byID[t.ID] = i
	}
	out := make([]observed.Raw, 0, len(recs))
	for _, c := range recs {
		raw := observed.Raw{ID: c.ID, Labels: c.Labels, Image: c.Image, CreatedAt: c.CreatedAt, Status: observed.NoTask}
		if i, ok := byID[c.ID]; ok {
			t := resp.Tasks[i]
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

// NormalizeImage turns a manifest image reference into the name containerd
// stores images under (docker.io/library/nginx:latest for nginx).
func NormalizeImage(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

// image returns the task's image, importing it from the images directory or
// pulling it when containerd does not have it, and unpacked for the snapshotter.
func (r *Runtime) image(ctx context.Context, ref string) (containerd.Image, error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return nil, err
	}
	img, err := r.client.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		if ierr := r.importArchives(ctx); ierr != nil {
			r.log.Error(ierr, "import image archives", "dir", r.imagesDir)
		}
		img, err = r.client.GetImage(ctx, name)
	}
	if errdefs.IsNotFound(err) {
		r.log.Info("pulling image", "image", name)
		img, err = r.client.Pull(ctx, name, containerd.WithPullUnpack, containerd.WithPullSnapshotter(r.snapshotter))
		if err != nil {
			return nil, fmt.Errorf("pull image %s: %w", name, err)
		}
		return img, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get image %s: %w", name, err)
	}
	unpacked, err := img.IsUnpacked(ctx, r.snapshotter)
	if err != nil {
		return nil, fmt.Errorf("check image %s: %w", name, err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, r.snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %s: %w", name, err)
		}
	}
	return img, nil
}

// importArchives imports every *.tar in the images directory that changed
// since it was last imported.
func (r *Runtime) importArchives(ctx context.Context) error {
	if r.imagesDir == "" {
		return nil
	}
	r.importMu.Lock()
	defer r.importMu.Unlock()
	paths, err := filepath.Glob(filepath.Join(r.imagesDir, "*.tar"))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if t, ok := r.imported[p]; ok && t.Equal(fi.ModTime()) {
			continue
		}
		if err := r.importArchive(ctx, p); err != nil {
			errs = append(errs, err)
			continue
		}
		r.imported[p] = fi.ModTime()
	}
	return errors.Join(errs...)
}

func (r *Runtime) importArchive(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	defer f.Close()
	imgs, err := r.client.Import(ctx, f)
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	for _, im := range imgs {
		r.log.Info("imported image", "image", im.Name, "archive", path)
	}
	return nil
}

// ImportArchive imports one image archive now (tests and `make run` use it to
// preload images).
func (r *Runtime) ImportArchive(ctx context.Context, path string) error {
	return r.importArchive(ctx, path)
}

// Create creates the container id for task t, with a new snapshot of its
// image, and labels. Creating a container that exists is success.
func (r *Runtime) Create(ctx context.Context, id string, t desired.Task, labels map[string]string) error {
	img, err := r.image(ctx, t.Spec.Image)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	imgSpec, err := img.Spec(ctx)
	if err != nil {
		return fmt.Errorf("create container %s: read image config: %w", id, err)
	}
	opts := []containerd.NewContainerOpts{
		containerd.WithImage(img),
		containerd.WithSnapshotter(r.snapshotter),
		containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(specOpts(img, imgSpec.Config.Entrypoint, imgSpec.Config.Cmd, t.Spec)...),
		containerd.WithContainerLabels(labels),
	}
	if r.runcRoot != "" {
		opts = append(opts, containerd.WithRuntime(plugins.RuntimeRuncV2, &options.Options{Root: r.runcRoot}))
	}
	_, err = r.client.NewContainer(ctx, id, opts...)
	if errdefs.IsAlreadyExists(err) {
		if _, lerr := r.client.LoadContainer(ctx, id); lerr == nil {
			return nil // created before: identity makes this a no-op
		}
		// The snapshot of an interrupted create outlived its container:
		// remove it and try once more.
		if rerr := r.removeSnapshot(ctx, id); rerr != nil {
			return fmt.Errorf("create container %s: %w", id, rerr)
		}
		_, err = r.client.NewContainer(ctx, id, opts...)
	}
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	return nil
}

func (r *Runtime) removeSnapshot(ctx context.Context, key string) error {
	sn := r.snapshotter
	if sn == "" {
		sn = "overlayfs"
		if def, err := r.client.GetLabel(ctx, "containerd.io/defaults/snapshotter"); err == nil && def != "" {
			sn = def
		}
	}
	err := r.client.SnapshotService(sn).Remove(ctx, key)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove snapshot %s: %w", key, err)
	}
	return nil
}

// specOpts builds the OCI spec from the image config and the manifest, one
// option per field. command replaces the image's ENTRYPOINT and args its CMD,
// as Docker and Kubernetes do.
func specOpts(img containerd.Image, entrypoint, cmd []string, s desired.Spec) []oci.SpecOpts {
	opts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithProcessArgs(processArgs(entrypoint, cmd, s.Command, s.Args)...),
		oci.WithHostNamespace(specs.NetworkNamespace),
		oci.WithHostHostsFile,
		oci.WithHostResolvconf,
	}
	if len(s.Env) > 0 {
		env := make([]string, 0, len(s.Env))
		for _, e := range s.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		opts = append(opts, oci.WithEnv(env))
	}
	if s.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(s.WorkingDir))
	}
	return opts
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
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if t, err := c.Task(ctx, nil); err == nil {
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
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("start container %s: load task: %w", id, err)
	}
	ioc := cio.NullIO
	if p := r.LogPath(id); p != "" {
		ioc = cio.LogFile(p)
	}
	t, err := c.NewTask(ctx, ioc)
	if err != nil {
		return fmt.Errorf("start container %s: create task: %w", id, err)
	}
	if err := t.Start(ctx); err != nil {
		// The call can fail after the process started (a cancelled or
		// timed-out call): a running task is kept, only a task that never
		// ran is removed so that the next Start begins clean.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if st, serr := t.Status(cctx); serr == nil && st.Status == containerd.Created {
			_, _ = t.Delete(cctx, containerd.WithProcessKill)
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
// container, its snapshot and its log file. A missing container is success.
func (r *Runtime) Delete(ctx context.Context, id string) error {
	c, err := r.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
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
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	if p := r.LogPath(id); p != "" {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.log.Error(err, "remove log file", "container", id)
		}
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
