package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/runtime"
)

// TestRuntimeExec: an exec probe runs in the task's container as its
// process does (user, working directory, environment), reports its exit
// code and the end of its output, is killed at its timeout, and leaves no
// process, containerd exec record or output file behind, whatever
// happened: a timeout, a child holding its output, the task exiting
// mid-probe, or a probe a killed reconciler left. (No FIFO is ever made:
// the shim writes the output to a file.)
func TestRuntimeExec(t *testing.T) {
	e := newRT(t, "exec")
	ctx := namespaces.WithNamespace(t.Context(), e.n.ns)
	id := e.run(testenv.Manifest("probed",
		"user: \"1234\"", "workingDir: /tmp", testenv.EnvSpec("PROBE_NOTE", "from the spec")))
	e.waitOutput(id, `testapp: start`)
	tasks := e.n.client.TaskService()

	// clean checks, through containerd, that nothing of a probe is left.
	clean := func(t *testing.T) {
		t.Helper()
		_, err := tasks.DeleteProcess(ctx, &tasksapi.DeleteProcessRequest{ContainerID: id, ExecID: runtime.ProbeExecID})
		if err = errgrpc.ToNative(err); !errdefs.IsNotFound(err) {
			t.Errorf("the probe's exec record is still in containerd (delete: %v)", err)
		}
		pids, err := tasks.ListPids(ctx, &tasksapi.ListPidsRequest{ContainerID: id})
		if err != nil {
			t.Fatal(err)
		}
		if len(pids.Processes) != 1 {
			t.Errorf("%d processes in the container after the probe, want only its own", len(pids.Processes))
		}
		if left, _ := filepath.Glob(filepath.Join(e.state, "probes", "*")); len(left) > 0 {
			t.Errorf("probe output files left behind: %v", left)
		}
	}

	t.Run("a probe left by a killed reconciler", func(t *testing.T) {
		// An exec process of the probe's ID that nobody waits for, as a
		// reconciler killed mid-probe leaves it.
		rec, err := e.n.client.ContainerService().Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		v, err := typeurl.UnmarshalAny(rec.Spec)
		if err != nil {
			t.Fatal(err)
		}
		proc := *v.(*specs.Spec).Process
		proc.Args = []string{"/testapp", "probe", "-sleep", "1m"}
		spec, err := typeurl.MarshalAnyToProto(&proc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tasks.Exec(ctx, &tasksapi.ExecProcessRequest{ContainerID: id, ExecID: runtime.ProbeExecID, Spec: spec}); err != nil {
			t.Fatal(err)
		}
		if _, err := tasks.Start(ctx, &tasksapi.StartRequest{ContainerID: id, ExecID: runtime.ProbeExecID}); err != nil {
			t.Fatal(err)
		}
		res, err := e.rt.Exec(ctx, id, []string{"/testapp", "probe"}, 5*time.Second)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("Exec over a left probe = %+v, %v; want exit 0", res, err)
		}
		clean(t)
	})

	for _, c := range []struct {
		name     string
		cmd      []string
		timeout  time.Duration
		code     int
		timedOut bool
		output   []string
		within   time.Duration
	}{
		{"as the task's process", []string{"/testapp", "probe"}, 5 * time.Second, 0, false,
			[]string{`uid=1234 cwd=/tmp note="from the spec"`, "probe: on stderr"}, 5 * time.Second},
		{"failing", []string{"/testapp", "probe", "-exit", "3"}, 5 * time.Second, 3, false, []string{"probe: uid="}, 5 * time.Second},
		{"timed out", []string{"/testapp", "probe", "-sleep", "1m"}, 500 * time.Millisecond, 0, true, nil, 8 * time.Second},
		// Last: its child stays in the container, a process of the
		// probe's, not the probe.
		{"a child holds the output", []string{"/testapp", "probe", "-child", "1m"}, 5 * time.Second, 0, false, []string{"probe: uid="}, 8 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			began := time.Now()
			res, err := e.rt.Exec(ctx, id, c.cmd, c.timeout)
			took := time.Since(began)
			if err != nil {
				t.Fatalf("Exec: %v", err)
			}
			if res.TimedOut != c.timedOut || (!c.timedOut && res.ExitCode != c.code) {
				t.Errorf("Exec = exit %d, timed out %v; want exit %d, timed out %v", res.ExitCode, res.TimedOut, c.code, c.timedOut)
			}
			for _, o := range c.output {
				if !strings.Contains(string(res.Output), o) {
					t.Errorf("output %q lacks %q", res.Output, o)
				}
			}
			if took > c.within {
				t.Errorf("Exec took %s, want within %s", took, c.within)
			}
			if c.timedOut {
				// The host's process list too: the killed probe is gone.
				procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
				for _, p := range procs {
					if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "probe\x00-sleep\x001m\x00") {
						t.Errorf("the timed-out probe still runs on the host: %s %q", p, b)
					}
				}
			}
			if c.name != "a child holds the output" {
				clean(t)
			} else if left, _ := filepath.Glob(filepath.Join(e.state, "probes", "*")); len(left) > 0 {
				t.Errorf("probe output files left behind: %v", left)
			}
		})
	}

	t.Run("the task exits mid-probe", func(t *testing.T) {
		done := make(chan error, 1)
		go func() {
			_, err := e.rt.Exec(ctx, id, []string{"/testapp", "probe", "-sleep", "1m"}, time.Minute)
			done <- err
		}()
		time.Sleep(500 * time.Millisecond) // the probe runs
		if _, err := tasks.Kill(ctx, &tasksapi.KillRequest{ContainerID: id, Signal: uint32(syscall.SIGKILL), All: true}); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			t.Logf("Exec when the task was killed: %v", err)
		case <-time.After(15 * time.Second):
			t.Fatal("Exec still waits 15s after its task was killed")
		}
		e.exitStatus(id)
		if left, _ := filepath.Glob(filepath.Join(e.state, "probes", "*")); len(left) > 0 {
			t.Errorf("probe output files left behind: %v", left)
		}
		if _, err := e.rt.Exec(ctx, id, []string{"/testapp", "probe"}, time.Second); err == nil {
			t.Error("Exec in a stopped task succeeded")
		}
	})
}
