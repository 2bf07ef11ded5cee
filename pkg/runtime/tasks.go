package runtime

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	tasktypes "github.com/containerd/containerd/api/types/task"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"golang.org/x/sys/unix"

	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

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
	if rec.Labels[labelSandbox] != "" {
		if err := r.restoreSandbox(ctx, rec); err != nil {
			return fmt.Errorf("start container %s: %w", id, err)
		}
	} else if err := r.restoreBridge(ctx, rec); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
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
		// A start cut short can leave containerd's bundle directory of the
		// ID behind instead (bundle.go), which blocks it the same way.
		if cleared, cerr := r.clearStaleBundle(err, id); cerr != nil {
			err = fmt.Errorf("%w (%v)", err, cerr)
		} else if cleared {
			_, err = r.client.TaskService().Create(ctx, req)
			err = errgrpc.ToNative(err)
		}
	}
	if err != nil {
		// Or runc's state of the container (bundle.go).
		if cleared, cerr := r.clearStaleRuncState(ctx, err, id); cerr != nil {
			err = fmt.Errorf("%w (%v)", err, cerr)
		} else if cleared {
			_, err = r.client.TaskService().Create(ctx, req)
			err = errgrpc.ToNative(err)
		}
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
//
// A bridge container a stop-first rollout keeps (labelled held-for) lets
// go of its network once stopped: its published ports are the new
// container's to take. Started again (a rollback), it is set up again.
func (r *Runtime) Stop(ctx context.Context, id, signal string, grace time.Duration) error {
	if err := r.stop(ctx, id, signal, grace); err != nil {
		return err
	}
	if _, err := os.Stat(r.bridgeDir(id)); err != nil || r.net == nil {
		return nil
	}
	c, err := r.client.ContainerService().Get(ctx, id)
	if err != nil || c.Labels[observed.LabelHeldFor] == "" {
		return nil
	}
	if err := r.net.tearDown(ctx, id); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	if err := r.refreshHosts(ctx); err != nil {
		r.log.Error(err, "update the tasks' /etc/hosts", "container", id)
	}
	return nil
}

func (r *Runtime) stop(ctx context.Context, id, signal string, grace time.Duration) error {
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
