package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	tasktypes "github.com/containerd/containerd/api/types/task"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/opencontainers/image-spec/identity"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// List returns the containers of the namespace (only those labelled with task,
// if task is not empty) with their task status. The full listing costs two
// calls to containerd whatever their number; a task's listing costs two calls
// per container of that task (usually one; none for a new task), whatever
// the number of other tasks: containerd 1.6 answers a task listing by asking
// every task's shim (a cost that grows with the number of tasks), and a filtered
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

func (r *Runtime) create(ctx context.Context, id string, t desired.Task, labels map[string]string) (retErr error) {
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
	if t.Spec.HealthCheck == nil {
		// The image's HEALTHCHECK is the task's check: kept on the
		// container, so the controller needs no image read to probe it.
		// One it cannot read is left out (logged): the task runs
		// unprobed rather than not at all, as with no HEALTHCHECK.
		hc, err := imageHealthCheck(ctx, img)
		if err != nil {
			r.log.Error(err, "image health check not used", "container", id, "image", t.Spec.Image)
		}
		if hc != nil {
			b, _ := json.Marshal(hc)
			labels[observed.LabelImageHealth] = string(b)
		}
	}
	var bridge bridgeFiles
	var sb *sandbox
	if sid := sandboxID(t.Spec); sid != "" {
		// The pod's sandbox is made or found, and this container
		// recorded in containerd, before another create or delete of
		// the pod's can look at it.
		r.podMu.Lock()
		defer r.podMu.Unlock()
		s, err := r.ensureSandbox(ctx, sid, t.Spec)
		if err != nil {
			return fmt.Errorf("create container %s: %w", id, err)
		}
		sb = &s
		labels[labelSandbox] = sid
		defer func() {
			if retErr == nil {
				return
			}
			if _, err := r.releaseSandboxLocked(context.WithoutCancel(ctx), sid); err != nil {
				r.log.Error(err, "release the pod sandbox of a container not created", "container", id)
			}
		}()
	}
	if t.Spec.Network == desired.NetworkBridge {
		files, netLabels, err := r.setUpBridge(ctx, id, t, sb)
		if err != nil {
			return fmt.Errorf("create container %s: %w", id, err)
		}
		bridge = files
		maps.Copy(labels, netLabels)
		created := false
		defer func() {
			if !created {
				if err := r.tearDownBridge(context.WithoutCancel(ctx), id); err != nil {
					r.log.Error(err, "release the network of a container not created", "container", id)
				}
				return
			}
			if err := r.refreshHosts(ctx); err != nil {
				r.log.Error(err, "update the tasks' /etc/hosts", "container", id)
			}
		}()
		defer func() { created = retErr == nil }()
	}
	userOf := userKey{image: img.Target().Digest.String(), user: t.Spec.User}
	var user *specs.User
	if u, ok := r.users.get(userOf); ok {
		user = &u
	}
	sopts, err := specOpts(specInput{
		img:           img,
		entrypoint:    imgSpec.Config.Entrypoint,
		cmd:           imgSpec.Config.Cmd,
		spec:          t.Spec,
		volumesDir:    r.volumesDir(),
		secretsDir:    r.secretsDir(id),
		secretFiles:   r.secrets,
		secretSources: r.policy.AllowedSecretSources,
		imageArch:     imgSpec.Architecture,
		compatABIs:    r.policy.AllowCompatSyscalls,

		imageConfig: imgSpec.Config,
		user:        user,
		remember:    r.users.rememberUser(userOf),
		net:         bridge,
		sandbox:     sb,
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

// Delete removes the container's task (killing it if it still runs), the
// container, its snapshot, its staged secrets and its log files. A missing container is success.
func (r *Runtime) Delete(ctx context.Context, id string) error {
	r.forgetProcess(id)
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
		if err := r.tearDownBridge(ctx, id); err != nil {
			return fmt.Errorf("delete container %s: %w", id, err)
		}
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
	_, statErr := os.Stat(r.bridgeDir(id))
	bridged := statErr == nil
	var sid string
	if info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata); err == nil {
		sid = info.Labels[labelSandbox]
	}
	// The network goes before the container: a DEL needs the namespace
	// pinned, and what is on /run is found again by its ID.
	if err := r.tearDownBridge(ctx, id); err != nil {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	r.index.remove(id)
	if sid != "" {
		if _, err := r.releaseSandbox(ctx, sid); err != nil {
			r.log.Error(err, "release a pod sandbox", "container", id)
			r.needCollect()
		}
	}
	if bridged {
		if err := r.refreshHosts(ctx); err != nil {
			r.log.Error(err, "update the tasks' /etc/hosts", "container", id)
		}
	}
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
