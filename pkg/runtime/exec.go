package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ProbeExecID is the exec ID of a health probe in a container: one probe
// at a time per container, so one ID, and a probe a killed reconciler left
// behind is found by it and removed before the next one.
const ProbeExecID = "reconciler-probe"

// maxProbeOutput is how much of a probe's output is kept: its end.
const maxProbeOutput = 4 << 10

// ExecResult is how an exec probe ended.
type ExecResult struct {
	ExitCode int
	Output   []byte // the end of stdout and stderr together, at most 4 KiB
	TimedOut bool   // killed at the timeout; ExitCode is then meaningless
}

// Exec runs command in container id's running task, as the container's
// process runs (its user, environment, working directory, capabilities
// and other limits), and waits for it up to timeout; past it the process
// is killed. Whatever happens, the exec process, its containerd record and
// its FIFOs are removed before Exec returns; one it cannot remove (containerd
// went away) is removed by the next Exec in that container.
func (r *Runtime) Exec(ctx context.Context, id string, command []string, timeout time.Duration) (ExecResult, error) {
	var res ExecResult
	proc, err := r.probeProcess(ctx, id)
	if err != nil {
		return res, fmt.Errorf("exec in %s: %w", id, err)
	}
	proc.Args = command
	proc.Terminal = false
	spec, err := typeurl.MarshalAnyToProto(proc)
	if err != nil {
		return res, fmt.Errorf("exec in %s: %w", id, err)
	}
	dir := r.fifoDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, fmt.Errorf("exec in %s: %w", id, err)
	}
	out := &tailBuffer{max: maxProbeOutput}
	ioc, err := cio.NewCreator(cio.WithStreams(nil, out, out), cio.WithFIFODir(dir))(ProbeExecID)
	if err != nil {
		return res, fmt.Errorf("exec in %s: output: %w", id, err)
	}
	defer func() {
		ioc.Cancel()
		ioc.Close() // removes the FIFOs
	}()
	cfg := ioc.Config()
	tasks := r.client.TaskService()
	req := &tasksapi.ExecProcessRequest{ContainerID: id, ExecID: ProbeExecID, Stdout: cfg.Stdout, Stderr: cfg.Stderr, Spec: spec}
	_, err = tasks.Exec(ctx, req)
	if err = errgrpc.ToNative(err); errdefs.IsAlreadyExists(err) {
		// A probe of an earlier reconciler (killed, or cut off from
		// containerd) is still there: remove it, then run this one.
		r.removeProbe(ctx, id)
		_, err = tasks.Exec(ctx, req)
		err = errgrpc.ToNative(err)
	}
	if err != nil {
		return res, fmt.Errorf("exec in %s: %w", id, err)
	}
	defer r.removeProbe(ctx, id)

	// The wait is asked before the start, so a quick exit is not missed.
	type exit struct {
		code uint32
		err  error
	}
	wctx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	exited := make(chan exit, 1)
	waiting := make(chan struct{})
	go func() {
		close(waiting)
		resp, err := tasks.Wait(wctx, &tasksapi.WaitRequest{ContainerID: id, ExecID: ProbeExecID})
		if err != nil {
			exited <- exit{err: errgrpc.ToNative(err)}
			return
		}
		exited <- exit{code: resp.ExitStatus}
	}()
	<-waiting
	began := time.Now()
	if _, err := tasks.Start(ctx, &tasksapi.StartRequest{ContainerID: id, ExecID: ProbeExecID}); err != nil {
		return res, fmt.Errorf("exec in %s: start: %w", id, errgrpc.ToNative(err))
	}
	timer := time.NewTimer(max(timeout-time.Since(began), 0))
	defer timer.Stop()
	var e exit
	select {
	case e = <-exited:
	case <-timer.C:
		res.TimedOut = true
		_, _ = tasks.Kill(ctx, &tasksapi.KillRequest{ContainerID: id, ExecID: ProbeExecID, Signal: uint32(syscall.SIGKILL)})
		select {
		case e = <-exited:
		case <-time.After(5 * time.Second):
			e.err = errors.New("no exit 5s after SIGKILL")
		}
	case <-ctx.Done():
		e.err = ctx.Err()
	}
	if e.err != nil && !res.TimedOut {
		return res, fmt.Errorf("exec in %s: wait: %w", id, e.err)
	}
	// The output is complete once the shim closed its side, which it does
	// when the process and whatever it left holding its output are gone;
	// a child left behind can hold it open, so the wait is bounded.
	copied := make(chan struct{})
	go func() { ioc.Wait(); close(copied) }()
	select {
	case <-copied:
	case <-time.After(time.Second):
		ioc.Cancel()
	}
	res.ExitCode = int(e.code)
	res.Output = out.bytes()
	return res, nil
}

// removeProbe kills and deletes the probe process of container id, if
// any, once it has exited; what cannot be removed now (containerd away) is
// left to the next probe, which finds it by its ID.
func (r *Runtime) removeProbe(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	tasks := r.client.TaskService()
	// An exited process answers the kill "not found" and is still to
	// be deleted.
	_, _ = tasks.Kill(ctx, &tasksapi.KillRequest{ContainerID: id, ExecID: ProbeExecID, Signal: uint32(syscall.SIGKILL)})
	// Deleted before its exit is reaped, containerd 1.6 answers "cannot
	// delete a running process" (code Unknown): wait for the exit first.
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	_, _ = tasks.Wait(wctx, &tasksapi.WaitRequest{ContainerID: id, ExecID: ProbeExecID})
	wcancel()
	_, err := tasks.DeleteProcess(ctx, &tasksapi.DeleteProcessRequest{ContainerID: id, ExecID: ProbeExecID})
	if err = errgrpc.ToNative(err); err != nil && !errdefs.IsNotFound(err) {
		r.log.V(1).Info("probe process not removed, the next probe will", "container", id, "err", err.Error())
	}
}

// probeProcess returns the process spec of container id (a copy): a probe
// runs as its process does. Container specs never change, so each is read
// once and kept while the container is known.
func (r *Runtime) probeProcess(ctx context.Context, id string) (*specs.Process, error) {
	r.procMu.Lock()
	p, ok := r.procs[id]
	r.procMu.Unlock()
	if !ok {
		rec, err := r.client.ContainerService().Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if rec.Spec == nil {
			return nil, errors.New("the container has no spec")
		}
		v, err := typeurl.UnmarshalAny(rec.Spec)
		if err != nil {
			return nil, err
		}
		s, ok := v.(*specs.Spec)
		if !ok || s.Process == nil {
			return nil, errors.New("the container's spec has no process")
		}
		p = *s.Process
		r.procMu.Lock()
		if r.procs == nil {
			r.procs = map[string]specs.Process{}
		}
		r.procs[id] = p
		r.procMu.Unlock()
	}
	p.Env = append([]string(nil), p.Env...)
	return &p, nil
}

// forgetProcess drops the kept process spec of a deleted container.
func (r *Runtime) forgetProcess(id string) {
	r.procMu.Lock()
	delete(r.procs, id)
	r.procMu.Unlock()
}

// fifoDir is where probes' FIFOs live: the runtime's own, emptied at start
// (a killed reconciler's FIFOs are nobody's).
func (r *Runtime) fifoDir() string {
	if r.stateDir != "" {
		return filepath.Join(r.stateDir, "fifo")
	}
	return filepath.Join(os.TempDir(), "reconciler-fifo-"+r.ns)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.b)
}
