package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
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
const maxProbeOutput int64 = 4 << 10

// ExecResult is how an exec probe ended.
type ExecResult struct {
	ExitCode int
	Output   []byte // the end of stdout and stderr together, at most 4 KiB
	TimedOut bool   // killed at the timeout; ExitCode is then meaningless
}

// Exec runs command in container id's running task, as the container's
// process runs (its user, environment, working directory, capabilities
// and other limits), and waits for it up to timeout; past it the process
// is killed. Whatever happens, the exec process and its containerd record
// are removed before Exec returns; one it cannot remove (containerd went
// away) is removed by the next Exec in that container.
//
// The shim writes the probe's output to a file of the runtime's (a file://
// URI), not to FIFOs: a shim opening a FIFO whose reader is gone (the
// reconciler killed while containerd passes the exec on) blocks, and with
// it every call on that task, for half a minute. The file is read once the
// process is deleted (the shim has copied everything then) and removed.
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
	dir := r.probeDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, fmt.Errorf("exec in %s: %w", id, err)
	}
	outFile := filepath.Join(dir, id+".out")
	_ = os.Remove(outFile) // a killed reconciler's
	defer os.Remove(outFile)
	uri := "file://" + outFile
	tasks := r.client.TaskService()
	req := &tasksapi.ExecProcessRequest{ContainerID: id, ExecID: ProbeExecID, Stdout: uri, Stderr: uri, Spec: spec}
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
	removed := false
	defer func() {
		if !removed {
			r.removeProbe(ctx, id)
		}
	}()

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
	// Deleted, the process's output is all in the file (the shim waits
	// for its copy, a second at most when a child left behind holds it).
	r.removeProbe(ctx, id)
	removed = true
	res.ExitCode = int(e.code)
	res.Output = fileTail(outFile, maxProbeOutput)
	return res, nil
}

// fileTail returns the last max bytes of the file at path (nil if unreadable).
func fileTail(path string, max int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return nil
		}
	}
	b, _ := io.ReadAll(io.LimitReader(f, max))
	return b
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

// probeDir is where the probes' output files live: the runtime's own,
// emptied at start (a killed reconciler's files are nobody's).
func (r *Runtime) probeDir() string {
	if r.stateDir != "" {
		return filepath.Join(r.stateDir, "probes")
	}
	return filepath.Join(os.TempDir(), "reconciler-probes-"+r.ns)
}
