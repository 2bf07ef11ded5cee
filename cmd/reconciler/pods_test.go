package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/reconcile"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// fakeDaemon is the local API of a daemon as far as the client commands
// read it: GET /status and GET /status/{task}, answered from a list of
// states. Each GET /status moves on to the next state once it is
// answered (the last one stays), so that `wait` sees the node change.
type fakeDaemon struct {
	mu     sync.Mutex
	states [][]reconcile.TaskStatus
	lists  int // GET /status answered so far
}

// startDaemon serves states and returns the address for --api.
func startDaemon(t *testing.T, states ...[]reconcile.TaskStatus) string {
	t.Helper()
	f := &fakeDaemon{states: states}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		writeJSON(w, http.StatusOK, statusResponse{Tasks: f.current()})
		f.lists++
	})
	mux.HandleFunc("GET /status/{task}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, st := range f.current() {
			if st.Name == r.PathValue("task") {
				writeJSON(w, http.StatusOK, st)
				return
			}
		}
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no task " + r.PathValue("task")})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func (f *fakeDaemon) current() []reconcile.TaskStatus {
	return f.states[min(f.lists, len(f.states)-1)]
}

// The pod pair of manifests/examples/pod-init.yaml (init container setup,
// containers front and back), the task web, and the pod solo of one
// container after an init container.
func podFixture() []reconcile.TaskStatus {
	return []reconcile.TaskStatus{
		{Name: "pair-back", Pod: "pair", Phase: reconcile.PhaseRunning, Message: "running", Image: "testapp:v1"},
		{Name: "pair-front", Pod: "pair", Phase: reconcile.PhaseRunning, Message: "running", Image: "testapp:v1"},
		{Name: "pair-setup", Pod: "pair", InitContainer: true, Phase: reconcile.PhaseCompleted, Message: "exited with code 0", Image: "testapp:v1"},
		{Name: "solo-app", Pod: "solo", Phase: reconcile.PhaseRunning, Message: "running", Image: "testapp:v1"},
		{Name: "solo-init", Pod: "solo", InitContainer: true, Phase: reconcile.PhaseCompleted, Message: "exited with code 0", Image: "testapp:v1"},
		{Name: "web", Phase: reconcile.PhaseRunning, Message: "running", Image: "nginx"},
	}
}

// with returns the fixture with task name changed by mut.
func with(tasks []reconcile.TaskStatus, name string, mut func(*reconcile.TaskStatus)) []reconcile.TaskStatus {
	out := make([]reconcile.TaskStatus, len(tasks))
	copy(out, tasks)
	for i := range out {
		if out[i].Name == name {
			mut(&out[i])
		}
	}
	return out
}

func names(sts []reconcile.TaskStatus) []string {
	out := []string{}
	for _, st := range sts {
		out = append(out, st.Name)
	}
	return out
}

func TestPodOf(t *testing.T) {
	tasks := podFixture()
	for _, tc := range []struct {
		pod        string
		ok         bool
		init, cont []string
		choices    string
	}{
		{"pair", true, []string{"pair-setup"}, []string{"pair-back", "pair-front"}, "[back front] or one of the init containers: [setup]"},
		{"solo", true, []string{"solo-init"}, []string{"solo-app"}, "[app] or one of the init containers: [init]"},
		{"web", false, []string{}, []string{}, "[]"}, // a task, not a pod
		{"pair-front", false, []string{}, []string{}, "[]"},
		{"ghost", false, []string{}, []string{}, "[]"},
		{"", false, []string{}, []string{}, "[]"}, // the pod of the tasks of no pod is no pod
	} {
		p, ok := podOf(tasks, tc.pod)
		if ok != tc.ok || !reflect.DeepEqual(names(p.init), tc.init) || !reflect.DeepEqual(names(p.containers), tc.cont) || p.choices() != tc.choices {
			t.Errorf("podOf(%q) = init %v, containers %v, %v, choices %q; want %v, %v, %v, %q",
				tc.pod, names(p.init), names(p.containers), ok, p.choices(), tc.init, tc.cont, tc.ok, tc.choices)
		}
	}
	p, _ := podOf(tasks, "pair")
	if got, want := names(p.tasks()), []string{"pair-setup", "pair-back", "pair-front"}; !reflect.DeepEqual(got, want) {
		t.Errorf("tasks() = %v, want %v (init containers first)", got, want)
	}
	if st, ok := p.task("front"); !ok || st.Name != "pair-front" {
		t.Errorf("task(front) = %q, %v", st.Name, ok)
	}
	if _, ok := p.task("nope"); ok {
		t.Error("task(nope) found a task")
	}
}

func TestCheckPod(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	base := podFixture()
	waiting := with(with(base, "pair-setup", func(st *reconcile.TaskStatus) { st.Phase, st.Message = reconcile.PhaseRunning, "running" }),
		"pair-front", func(st *reconcile.TaskStatus) {
			st.Phase, st.Message = reconcile.PhaseWaiting, "waiting for pair-setup to be completed"
		})
	tests := []struct {
		name    string
		tasks   []reconcile.TaskStatus
		forCond string
		met     bool
		done    string
		last    string
		failed  string
	}{
		{name: "running: the init container completed, the containers run", tasks: base, forCond: "running", met: true,
			done: "pod: pair-setup completed, pair-back running, pair-front running"},
		{name: "healthy: no checks, running", tasks: base, forCond: "healthy", met: true,
			done: "pod: pair-setup completed, pair-back healthy, pair-front healthy"},
		{name: "running: the init container still runs", tasks: waiting, forCond: "running",
			done: "pod: pair-back running",
			last: "pair-setup: Running (running); pair-front: Waiting (waiting for pair-setup to be completed)"},
		{name: "healthy: a container is unhealthy", forCond: "healthy",
			tasks: with(base, "pair-back", func(st *reconcile.TaskStatus) { st.Health.State = "unhealthy" }),
			done:  "pod: pair-setup completed, pair-front healthy", last: "pair-back: Running (running)"},
		{name: "completed: the containers run", tasks: base, forCond: "completed",
			done: "pod: pair-setup completed", last: "pair-back: Running (running); pair-front: Running (running)"},
		{name: "completed: every task exited 0", forCond: "completed", met: true,
			tasks: with(with(base, "pair-back", func(st *reconcile.TaskStatus) { st.Phase = reconcile.PhaseCompleted }),
				"pair-front", func(st *reconcile.TaskStatus) { st.Phase = reconcile.PhaseCompleted }),
			done: "pod: pair-setup completed, pair-back completed, pair-front completed"},
		{name: "deleted: its tasks are there", tasks: base, forCond: "deleted",
			done: "pod: ", last: "pair-setup: Completed (exited with code 0); pair-back: Running (running); pair-front: Running (running)"},
		{name: "running: a container's change was rolled back", forCond: "running",
			tasks: with(base, "pair-front", func(st *reconcile.TaskStatus) {
				st.ContainerID = "pair-front-aaaaaaaaaaaa"
				st.RolledBack = reconcile.RollbackStatus{RefusedHash: "bbbbbbbbbbbb", Reason: "exited with code 1, 3 times in 7s", At: at}
			}),
			met: true, done: "pod: pair-setup completed, pair-back running, pair-front running",
			failed: "pair-front: the change to spec bbbbbbbbbbbb was rolled back at 2026-12-05T10:00:00Z: exited with code 1, 3 times in 7s; pair-front-aaaaaaaaaaaa runs the last good spec"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := podOf(tc.tasks, "pair")
			w := checkPod(p, tc.forCond, waitConditions[tc.forCond])
			if w.met != tc.met || w.done != tc.done || w.last != tc.last || w.failed != tc.failed {
				t.Errorf("checkPod(%s) = %+v\nwant met %v, done %q, last %q, failed %q", tc.forCond, w, tc.met, tc.done, tc.last, tc.failed)
			}
		})
	}
}

func TestStatusPod(t *testing.T) {
	addr := startDaemon(t, podFixture())
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string // lines, each a prefix of a line of stdout, in order
		stderrIn string
	}{
		{name: "every task, with their pods", args: []string{}, stdout: []string{
			"NAME         POD           PHASE",
			"pair-back    pair          Running",
			"pair-front   pair          Running",
			"pair-setup   pair (init)   Completed",
			"solo-app     solo          Running",
			"solo-init    solo (init)   Completed",
			"web          -             Running",
		}},
		{name: "a pod: its tasks, init containers first", args: []string{"pair"}, stdout: []string{
			"NAME         POD           PHASE",
			"pair-setup   pair (init)   Completed",
			"pair-back    pair          Running",
			"pair-front   pair          Running",
		}},
		{name: "a task of a pod", args: []string{"pair-front"}, stdout: []string{
			"NAME         POD    PHASE",
			"pair-front   pair   Running",
		}},
		{name: "a task", args: []string{"web"}, stdout: []string{
			"NAME   PHASE     HEALTH",
			"web    Running   -",
		}},
		{name: "a task, wide", args: []string{"web", "-o", "wide"}, stdout: []string{
			"NAME   POD   PHASE     HEALTH",
			"web    -     Running   -",
		}},
		{name: "unknown", args: []string{"ghost"}, code: exitFailure, stderrIn: `reconciler status: no task or pod "ghost"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(append(append([]string{"status"}, tc.args...), "--api", addr), &out, &errb)
			lines := strings.Split(out.String(), "\n")
			ok := code == tc.code && strings.Contains(errb.String(), tc.stderrIn) && len(lines) >= len(tc.stdout)
			for i, want := range tc.stdout {
				ok = ok && strings.HasPrefix(lines[i], want)
			}
			if !ok {
				t.Errorf("status %v = %d\nstdout:\n%s\nstderr: %q\nwant %d, lines starting %q, stderr with %q", tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderrIn)
			}
		})
	}

	// -o json: the pod, and its tasks with their pod.
	var out, errb bytes.Buffer
	if code := runMain([]string{"status", "pair", "-o", "json", "--api", addr}, &out, &errb); code != exitOK {
		t.Fatalf("status pair -o json = %d, %s", code, errb.String())
	}
	var got struct {
		Pod   string `json:"pod"`
		Tasks []struct {
			Name          string `json:"name"`
			Pod           string `json:"pod"`
			InitContainer bool   `json:"initContainer"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if got.Pod != "pair" || len(got.Tasks) != 3 || got.Tasks[0].Name != "pair-setup" || !got.Tasks[0].InitContainer ||
		got.Tasks[1].Pod != "pair" || got.Tasks[1].InitContainer {
		t.Errorf("status pair -o json:\n%s", out.String())
	}
	// A task of a pod names its pod in its JSON.
	out.Reset()
	if code := runMain([]string{"status", "pair-back", "-o", "json", "--api", addr}, &out, &errb); code != exitOK || !strings.Contains(out.String(), `"pod": "pair"`) {
		t.Errorf("status pair-back -o json = %d:\n%s", code, out.String())
	}
}

// TestLogsPod: logs POD -c CONTAINER, logs POD for a pod of one
// container, and each error, with the daemon answering and without.
func TestLogsPod(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, "logs")
	for task, line := range map[string]string{
		"pair-front": "front", "pair-back": "back", "pair-setup": "setup", "solo-app": "app", "web": "web", "web-extra": "extra",
	} {
		w, err := logfile.Open(dir, task+"-0123456789ab", 1<<20, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteRecord(time.Now(), "stdout", false, []byte(line)); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	tasks := append(podFixture(), reconcile.TaskStatus{Name: "web-extra", Phase: reconcile.PhaseRunning},
		reconcile.TaskStatus{Name: "quiet-app", Pod: "quiet", Phase: reconcile.PhaseWaiting})
	addr := startDaemon(t, tasks)
	down := []string{"--state-dir", state} // no daemon on its socket
	up := []string{"--state-dir", state, "--api", addr}
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrIn string
	}{
		{name: "a container of a pod", args: append([]string{"pair", "-c", "front"}, up...), stdout: "front\n"},
		{name: "-c before the pod", args: append([]string{"-c", "back", "pair"}, up...), stdout: "back\n"},
		{name: "an init container", args: append([]string{"pair", "-c", "setup"}, up...), stdout: "setup\n"},
		{name: "the task of a pod's container", args: append([]string{"pair-front"}, up...), stdout: "front\n"},
		{name: "a pod of one container", args: append([]string{"solo"}, up...), stdout: "app\n"},
		{name: "a task", args: append([]string{"web"}, up...), stdout: "web\n"},
		{name: "a task, the daemon down", args: append([]string{"web"}, down...), stdout: "web\n"},
		{name: "-c, the daemon down: by name", args: append([]string{"pair", "-c", "front"}, down...), stdout: "front\n"},
		{name: "a pod of several containers", args: append([]string{"pair"}, up...), code: exitUsage,
			stderrIn: "reconciler logs: a container name must be specified for pod pair, choose one of: [back front] or one of the init containers: [setup]\n"},
		{name: "unknown container", args: append([]string{"pair", "-c", "nope"}, up...), code: exitFailure,
			stderrIn: `reconciler logs: container "nope" is not valid for pod pair, choose one of: [back front] or one of the init containers: [setup]`},
		{name: "-c with a task", args: append([]string{"web", "-c", "extra"}, up...), code: exitUsage,
			stderrIn: "reconciler logs: web is a task, not a pod: -c names a container of a pod (reconciler logs web)"},
		{name: "-c with the task of a pod's container", args: append([]string{"pair-front", "-c", "x"}, up...), code: exitUsage,
			stderrIn: "pair-front is a task, not a pod"},
		{name: "unknown pod", args: append([]string{"ghost"}, up...), code: exitFailure,
			stderrIn: `reconciler logs: no logs for task "ghost" in ` + dir + ", and the daemon knows no task or pod of that name"},
		{name: "unknown pod with -c", args: append([]string{"ghost", "-c", "app"}, up...), code: exitFailure,
			stderrIn: `reconciler logs: no pod "ghost": the daemon knows no task or pod of that name`},
		{name: "a known task without logs", args: append([]string{"pair-back"}, "--state-dir", t.TempDir(), "--api", addr), code: exitFailure,
			stderrIn: `no logs for task "pair-back" in `},
		{name: "a container without logs yet", args: append([]string{"quiet"}, up...), code: exitFailure,
			stderrIn: `reconciler logs: no logs for task "quiet-app" (container app of pod quiet) in ` + dir},
		{name: "unknown, the daemon down", args: append([]string{"pair"}, down...), code: exitFailure,
			stderrIn: `reconciler logs: no logs for task "pair" in ` + dir + " (whether pair is a pod is known to the daemon only, which does not answer: reach the reconciler daemon"},
		{name: "-c, the daemon down, no such task", args: append([]string{"pair", "-c", "nope"}, down...), code: exitFailure,
			stderrIn: `reconciler logs: no logs for task "pair-nope" (container nope of pod pair) in ` + dir + " (the daemon does not answer: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(append([]string{"logs"}, tc.args...), &out, &errb)
			if code != tc.code || out.String() != tc.stdout || !strings.Contains(errb.String(), tc.stderrIn) {
				t.Errorf("logs %v = %d, stdout %q, stderr %q; want %d, %q, stderr with %q", tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderrIn)
			}
		})
	}
}

// TestWaitPod: wait POD waits for the init containers to complete and the
// containers to reach the condition; a task keeps its meaning.
func TestWaitPod(t *testing.T) {
	base := podFixture()
	starting := with(with(with(base, "pair-setup", func(st *reconcile.TaskStatus) { st.Phase, st.Message = reconcile.PhaseRunning, "running" }),
		"pair-front", func(st *reconcile.TaskStatus) {
			st.Phase, st.Message = reconcile.PhaseWaiting, "waiting for pair-setup to be completed"
		}), "pair-back", func(st *reconcile.TaskStatus) {
		st.Phase, st.Message = reconcile.PhaseWaiting, "waiting for pair-setup to be completed"
	})
	stopping := with(base, "pair-back", func(st *reconcile.TaskStatus) { st.Phase, st.Message = reconcile.PhaseStopping, "no longer desired" })
	gone := []reconcile.TaskStatus{base[len(base)-1]} // web alone
	tests := []struct {
		name     string
		states   [][]reconcile.TaskStatus
		args     []string
		code     int
		stdout   string
		stderrIn string
	}{
		{name: "running, once the init container completed", states: [][]reconcile.TaskStatus{starting, base}, args: []string{"pair"},
			stdout: "pair: running (pod: pair-setup completed, pair-back running, pair-front running)\n"},
		{name: "a pod and a task", states: [][]reconcile.TaskStatus{base}, args: []string{"web", "solo"},
			stdout: "web: running\nsolo: running (pod: solo-init completed, solo-app running)\n"},
		{name: "deleted, once its tasks are gone", states: [][]reconcile.TaskStatus{stopping, gone}, args: []string{"pair", "--for=deleted"},
			stdout: "pair: deleted\n"},
		{name: "deleted: a pod never there", states: [][]reconcile.TaskStatus{base}, args: []string{"ghost", "--for=deleted"},
			stdout: "ghost: deleted\n"},
		{name: "timed out", states: [][]reconcile.TaskStatus{starting}, args: []string{"pair", "--timeout", "300ms"}, code: exitFailure,
			stderrIn: "timed out waiting for pair to be running; last status pod pair: pair-setup: Running (running); " +
				"pair-back: Waiting (waiting for pair-setup to be completed); pair-front: Waiting (waiting for pair-setup to be completed)\n"},
		{name: "unknown pod", states: [][]reconcile.TaskStatus{base}, args: []string{"ghost", "--timeout", "300ms"}, code: exitFailure,
			stderrIn: "timed out waiting for ghost to be running; last status ghost: not known to the daemon\n"},
		{name: "completed: the containers run on", states: [][]reconcile.TaskStatus{base}, args: []string{"pair", "--for=completed", "--timeout", "300ms"}, code: exitFailure,
			stderrIn: "timed out waiting for pair to be completed; last status pod pair: pair-back: Running (running); pair-front: Running (running)\n"},
		{name: "a container's change rolled back", args: []string{"pair"}, code: exitFailure,
			states: [][]reconcile.TaskStatus{with(base, "pair-back", func(st *reconcile.TaskStatus) {
				st.ContainerID = "pair-back-aaaaaaaaaaaa"
				st.RolledBack = reconcile.RollbackStatus{RefusedHash: "bbbbbbbbbbbb", Reason: "exited with code 1, 3 times in 7s", At: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
			})},
			stderrIn: "pair-back: the change to spec bbbbbbbbbbbb was rolled back at 2026-12-05T10:00:00Z: exited with code 1, 3 times in 7s; pair-back-aaaaaaaaaaaa runs the last good spec\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := startDaemon(t, tc.states...)
			var out, errb bytes.Buffer
			args := append(tc.args, "--api", addr)
			if !strings.Contains(strings.Join(args, " "), "--timeout") {
				args = append(args, "--timeout", "10s")
			}
			code := runMain(append([]string{"wait"}, args...), &out, &errb)
			if code != tc.code || out.String() != tc.stdout || !strings.Contains(errb.String(), tc.stderrIn) {
				t.Errorf("wait %v = %d, stdout %q, stderr %q; want %d, %q, stderr with %q", tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderrIn)
			}
		})
	}
}
