package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// rtEnv is a pkg/runtime Runtime on the test containerd, in the namespace
// of a node, with its own state directory and the reconciler binary as the
// log driver (as the daemon runs it).
type rtEnv struct {
	t     *testing.T
	n     *node
	rt    *runtime.Runtime
	state string
	logs  string
	out   *logBuffer // the runtime's own log
}

// logBuffer collects a logr sink's lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		fmt.Fprintln(&l.b, prefix, args)
	}, funcr.Options{})
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newRT returns a runtime for namespace ns (opts come after the defaults).
func newRT(t *testing.T, ns string, opts ...runtime.Option) *rtEnv {
	t.Helper()
	n := newNode(t, ns)
	state := filepath.Join(env.dir, "rt-"+ns)
	e := &rtEnv{t: t, n: n, state: state, logs: filepath.Join(state, "logs"), out: &logBuffer{}}
	all := append([]runtime.Option{
		runtime.WithNamespace(n.ns),
		runtime.WithImagesDir(env.images),
		runtime.WithLogDir(e.logs),
		runtime.WithLogDriver(env.driver, logfile.DefaultMaxSize, logfile.DefaultMaxFiles),
		runtime.WithStateDir(state),
		runtime.WithLogger(e.out.logger()),
		// runc state apart from every other run's: the stale-task tests
		// leave some behind on purpose, under container IDs that the next
		// run of the suite makes again.
		runtime.WithRuncRoot(env.runcRoot),
	}, opts...)
	rt, err := runtime.New(t.Context(), env.address, all...)
	if err != nil {
		t.Fatalf("runtime.New: %v", err)
	}
	e.rt = rt
	t.Cleanup(func() {
		// Through the runtime, so staged secrets and log files go too.
		ctx := context.Background()
		if raws, err := rt.List(ctx, ""); err == nil {
			for _, r := range raws {
				if err := rt.Delete(ctx, r.ID); err != nil {
					t.Logf("cleanup: %v", err)
				}
			}
		}
		rt.Close()
		if t.Failed() {
			t.Logf("runtime log:\n%s", e.out.String())
		}
	})
	return e
}

// parse parses one manifest the way the daemon does (defaults filled in).
func parseTask(t *testing.T, yaml string) desired.Task {
	t.Helper()
	ts, err := desired.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse manifest: %v\n%s", err, yaml)
	}
	if len(ts) != 1 {
		t.Fatalf("%d tasks in manifest, want 1", len(ts))
	}
	return ts[0]
}

// create creates the container of a manifest and returns its ID.
func (e *rtEnv) create(yaml string) (string, error) {
	task := parseTask(e.t, yaml)
	id := observed.ContainerID(task.Metadata.Name, task.Hash())
	labels := observed.Labels(task.Metadata.Name, task.Hash(), task.Source, task.Spec.StopSig(), task.Spec.StopGrace())
	return id, e.rt.Create(e.t.Context(), id, task, labels)
}

// run creates and starts the container of a manifest.
func (e *rtEnv) run(yaml string) string {
	e.t.Helper()
	id, err := e.create(yaml)
	if err != nil {
		e.t.Fatalf("create: %v", err)
	}
	if err := e.rt.Start(e.t.Context(), id); err != nil {
		e.t.Fatalf("start %s: %v", id, err)
	}
	return id
}

// output is the container's stdout and stderr so far, from its log files.
func (e *rtEnv) output(id string) string {
	var b bytes.Buffer
	_ = logfile.Read(e.logs, id, -1, &b)
	return b.String()
}

// waitOutput waits until the container's output matches re and returns
// the first match's groups.
func (e *rtEnv) waitOutput(id, re string) []string {
	e.t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	testenv.WaitFor(e.t, converge, fmt.Sprintf("output of %s to match %q", id, re), func() bool {
		m = rx.FindStringSubmatch(e.output(id))
		return m != nil
	})
	return m
}

// exitStatus waits for the container's task to stop and returns its exit status.
func (e *rtEnv) exitStatus(id string) uint32 {
	e.t.Helper()
	var code uint32
	testenv.WaitFor(e.t, converge, id+" to exit", func() bool {
		c, err := e.n.client.LoadContainer(context.Background(), id)
		if err != nil {
			return false
		}
		tk, err := c.Task(context.Background(), nil)
		if err != nil {
			return false
		}
		st, err := tk.Status(context.Background())
		if err != nil || st.Status != containerd.Stopped {
			return false
		}
		code = st.ExitStatus
		return true
	})
	return code
}

// reconcilerLogs runs `reconciler logs` and returns its stdout.
func reconcilerLogs(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(env.bin, append([]string{"logs"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("reconciler logs %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
