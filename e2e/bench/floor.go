package main

import (
	"context"
	"fmt"
	goruntime "runtime"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

func withNS(ctx context.Context, ns string) context.Context {
	return namespaces.WithNamespace(ctx, ns)
}

// starter creates and starts containers without the reconciler: the floor,
// and the references that tell where the reconciler's difference to the
// floor goes.
type starter interface {
	namespace() string
	createStart(ctx context.Context, id string) error
	remove(ctx context.Context, id string) error
}

// rawClient is the bare containerd client doing what the reconciler does
// for a task, and nothing else: create the container (a snapshot of the
// image, the image's command, host network as a manifest's default), create
// its task with no output and start it. With seccomp it also applies the
// reconciler's seccomp profile (containerd's default narrowed to the
// node's ABI), the one secure default of the reconciler that costs time at
// start (runc compiles and loads the filter).
// With a log driver (the standalone driver the reconciler embeds, and the
// log directory), the task's output goes to it as the reconciler's does:
// the shim starts one such process per task.
type rawClient struct {
	client    *containerd.Client
	ns        string
	img       containerd.Image
	seccomp   bool
	logDriver [2]string // binary, log directory
	runcRoot  string
}

// newRawClient imports the test image archive into ns and unpacks it.
func newRawClient(ctx context.Context, client *containerd.Client, ns, runcRoot, archive string, withSeccomp bool) (*rawClient, error) {
	img, err := testenv.ImportImage(withNS(ctx, ns), client, archive)
	if err != nil {
		return nil, fmt.Errorf("floor image: %w", err)
	}
	return &rawClient{client: client, ns: ns, img: img, seccomp: withSeccomp, runcRoot: runcRoot}, nil
}

func (f *rawClient) namespace() string { return f.ns }

func (f *rawClient) createStart(ctx context.Context, id string) error {
	return f.createStartIn(ctx, id, oci.WithHostNamespace(specs.NetworkNamespace))
}

// createStartIn is createStart with the network namespace option given
// (the host's, or a namespace's path).
func (f *rawClient) createStartIn(ctx context.Context, id string, netns oci.SpecOpts) error {
	ctx = withNS(ctx, f.ns)
	sopts := []oci.SpecOpts{oci.WithImageConfig(f.img), netns, oci.WithHostHostsFile, oci.WithHostResolvconf}
	if f.seccomp {
		sopts = append(sopts, runtime.WithSeccompProfile(goruntime.GOARCH))
	}
	c, err := f.client.NewContainer(ctx, id,
		containerd.WithImage(f.img),
		containerd.WithNewSnapshot(id, f.img),
		containerd.WithNewSpec(sopts...),
		containerd.WithRuntime(plugins.RuntimeRuncV2, &options.Options{Root: f.runcRoot}))
	if err != nil {
		return fmt.Errorf("floor: create %s: %w", id, err)
	}
	ioc := cio.NullIO
	if bin, dir := f.logDriver[0], f.logDriver[1]; bin != "" {
		ioc = cio.BinaryIO(bin, logfile.DriverArgs(dir, 10<<20, 5))
	}
	t, err := c.NewTask(ctx, ioc)
	if err != nil {
		return fmt.Errorf("floor: create task %s: %w", id, err)
	}
	if err := t.Start(ctx); err != nil {
		return fmt.Errorf("floor: start %s: %w", id, err)
	}
	return nil
}

// remove kills and deletes container id with its task and snapshot.
func (f *rawClient) remove(ctx context.Context, id string) error {
	ctx = withNS(ctx, f.ns)
	c, err := f.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	if t, err := c.Task(ctx, nil); err == nil {
		exited, werr := t.Wait(ctx)
		if err := t.Kill(ctx, syscall.SIGKILL); err == nil && werr == nil {
			<-exited
		}
		if _, err := t.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("floor: delete task %s: %w", id, err)
		}
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("floor: delete %s: %w", id, err)
	}
	return nil
}

// wipe removes every container of the namespace.
func (f *rawClient) wipe(ctx context.Context, c int) error {
	cs, err := f.client.Containers(withNS(ctx, f.ns))
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(cs))
	for _, x := range cs {
		ids = append(ids, x.ID())
	}
	return each(ids, c, func(id string) error { return f.remove(ctx, id) })
}

// runtimeOnly is pkg/runtime creating and starting the same task as the
// reconciler would (its spec with the secure defaults, labels, the log
// driver), called directly: the reconciler without its loop (no watcher,
// no queue, no listing).
type runtimeOnly struct {
	rt   *runtime.Runtime
	ns   string
	task desired.Task
}

func newRuntimeOnly(ctx context.Context, address, runcRoot, ns, images, state, bin string) (*runtimeOnly, error) {
	rt, err := runtime.New(ctx, address, runtime.WithRuncRoot(runcRoot),
		runtime.WithNamespace(ns), runtime.WithImagesDir(images), runtime.WithStateDir(state),
		runtime.WithLogDir(state+"/logs"), runtime.WithLogDriver(bin, 10<<20, 5))
	if err != nil {
		return nil, err
	}
	tasks, err := desired.Parse("bench.yaml", []byte(testenv.Manifest("bench")))
	if err != nil {
		rt.Close()
		return nil, err
	}
	return &runtimeOnly{rt: rt, ns: ns, task: tasks[0]}, nil
}

func (r *runtimeOnly) namespace() string { return r.ns }

func (r *runtimeOnly) createStart(ctx context.Context, id string) error {
	t := r.task
	labels := observed.Labels(t.Metadata.Name, t.Hash(), t.Source, t.Spec.StopSig(), t.Spec.StopGrace())
	if err := r.rt.Create(ctx, id, t, labels); err != nil {
		return err
	}
	return r.rt.Start(ctx, id)
}

func (r *runtimeOnly) remove(ctx context.Context, id string) error { return r.rt.Delete(ctx, id) }

// each runs fn on every id with at most c at once and returns the first error.
func each(ids []string, c int, fn func(id string) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan string)
	for range max(c, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				if err := fn(id); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		next <- id
	}
	close(next)
	wg.Wait()
	return first
}

// burstOf creates and starts ids at concurrency c and returns the time from
// the first call to the last task's start event; then it removes them all
// (not timed).
func burstOf(ctx context.Context, s starter, rec *recorder, ids []string, c int) (time.Duration, error) {
	from := rec.mark()
	began := time.Now()
	if err := each(ids, c, func(id string) error { return s.createStart(ctx, id) }); err != nil {
		return 0, err
	}
	evs, err := rec.wait(ctx, from, 10*time.Minute, len(ids), of(topicStart, s.namespace(), ids...))
	if err != nil {
		return 0, fmt.Errorf("waiting for start events: %w", err)
	}
	dur := latest(evs).Sub(began)
	return dur, each(ids, c, func(id string) error { return s.remove(ctx, id) })
}

// singleOf creates and starts one container and returns the time from the
// first call to its start event; then it removes it (not timed).
func singleOf(ctx context.Context, s starter, rec *recorder, id string) (time.Duration, error) {
	from := rec.mark()
	began := time.Now()
	if err := s.createStart(ctx, id); err != nil {
		return 0, err
	}
	evs, err := rec.wait(ctx, from, time.Minute, 1, of(topicStart, s.namespace(), id))
	if err != nil {
		return 0, fmt.Errorf("waiting for the start event of %s: %w", id, err)
	}
	return evs[id].At.Sub(began), s.remove(ctx, id)
}
