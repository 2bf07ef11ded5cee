package chaos

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/plugins"

	"github.com/warren/reconciler/e2e/invariants"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/runtime"
)

// world is one test's node: a namespace of a containerd, a manifests
// directory, a state directory and the reconciler running on them.
type world struct {
	t         *testing.T
	kind      string
	rng       *rand.Rand
	ns        string
	address   string
	manifests string
	state     string
	client    *containerd.Client
	check     *invariants.Checker
	flags     []string // extra flags of `reconciler run`
	d         *testenv.TestDaemon
	versions  map[string]int // task name -> version in its file (absent: no file)
	stable    []string       // tasks no fault touches
	net       *bridgeNet     // the world's bridge (see useBridge), nil for none
	ports     map[string]int // bridge tasks: task name -> its host port on 127.0.0.1
}

// newWorld prepares a world for fault kind on the containerd at address
// (env.address if ""). state is the reconciler's state directory ("" for a
// fresh one). It starts nothing.
func newWorld(t *testing.T, kind, address, state string, flags ...string) *world {
	t.Helper()
	requireEnv(t)
	if kind != "checker" && !slices.Contains(selectedKinds(), kind) {
		t.Skipf("kind %s not in -chaos.kinds=%s (CI sets no -chaos.kinds: every kind runs)", kind, *flagKinds)
	}
	if address == "" {
		address = env.address
	}
	// Namespaces are unique to the run: runc keeps its state in
	// /run/containerd/runc/NAMESPACE whatever the containerd, so two runs
	// of the suite at once (make test in two checkouts) must not share one.
	ns := "chaos-" + kind + "-" + env.run
	if state == "" {
		state = filepath.Join(env.dir, "s-"+kind)
	}
	manifests := filepath.Join(env.dir, "m-"+kind)
	for _, d := range []string{state, manifests} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// Cleanups run last first: the daemon stops (see start), its output
	// is logged, the namespace is wiped, then runc's directory goes.
	t.Cleanup(func() { _ = os.Remove(filepath.Join("/run/containerd/runc", ns)) }) // runc's, once empty
	c := testenv.Connect(t, address, ns)
	h := fnv.New64a()
	h.Write([]byte(kind))
	w := &world{
		t: t, kind: kind, rng: rand.New(rand.NewPCG(uint64(env.seed), h.Sum64())),
		ns: ns, address: address, manifests: manifests, state: state, client: c,
		flags: flags, versions: map[string]int{}, ports: map[string]int{},
	}
	w.check = &invariants.Checker{Client: c, Namespace: ns, Manifests: manifests, StateDir: state}
	t.Cleanup(func() {
		if w.d != nil && t.Failed() {
			t.Logf("reconciler output (last 200 lines):\n%s", w.d.Tail(200))
		}
	})
	return w
}

// start starts the reconciler and waits for its first full sync.
func (w *world) start() {
	w.t.Helper()
	run := testenv.Run{Address: w.address, Containerd: "external", RuncRoot: w.runcRoot(),
		Namespace: w.ns, Manifests: w.manifests, Images: env.images, StateDir: w.state,
		Resync: 2 * time.Second, Flags: w.flags}
	// Quiet: the world logs the output of its last daemon only (see newWorld).
	w.d = testenv.StartTest(w.t, env.bin, run.Args(), testenv.TestOptions{Tail: 100, Quiet: true})
	w.d.WaitLog(testenv.InitialSync, 60*time.Second)
}

// runcRoot is the runc state directory of the world's containerd: apart
// from any other daemon's, so that runs side by side (or a run after one
// that was killed) never meet a container ID in runc's state.
func (w *world) runcRoot() string {
	return runtime.PathsFor(filepath.Dir(w.address)).RuncRoot
}

// taskYAML is the manifest of a test-image task at a version (its env).
// Every task has an exec health check that passes: the faults meet probes
// in flight (a probe a killed reconciler left, containerd away mid-probe,
// no room for the FIFOs), and none may make a task unhealthy. An extra
// "healthCheck:" line replaces it. Every task has minReady 1s (an extra
// "minReady:" line replaces it): a changed spec of a running task is a
// rollout, which the suite waits out (see waitConverged), and the
// default 10s would add that much to each.
func taskYAML(name string, version int, extra ...string) string {
	spec := []string{"stopGracePeriod: 2s", testenv.EnvSpec("VERSION", strconv.Itoa(version))}
	has := func(key string) bool {
		return slices.ContainsFunc(extra, func(l string) bool { return strings.HasPrefix(l, key) })
	}
	if !has("healthCheck:") {
		spec = append(spec, passingCheck)
	}
	if !has("minReady:") {
		spec = append(spec, "minReady: 1s")
	}
	return testenv.Manifest(name, append(spec, extra...)...)
}

// passingCheck is the health check of every task of the suite.
const passingCheck = "healthCheck: {exec: {command: [/testapp, probe]}, interval: 5s, timeout: 5s}"

// write writes a file into the manifests directory atomically.
func (w *world) write(name, content string) {
	w.t.Helper()
	testenv.WriteFile(w.t, w.manifests, name, content)
}

// setTask writes task name at version v (its own file, NAME.yaml). A task
// with a host port in w.ports is a bridge task serving its port (see
// bridgeSpec).
func (w *world) setTask(name string, v int, extra ...string) {
	if port, ok := w.ports[name]; ok {
		extra = append(bridgeSpec(name, v, port), extra...)
	}
	w.write(name+".yaml", taskYAML(name, v, extra...))
	w.versions[name] = v
}

// removeTask deletes the task's file.
func (w *world) removeTask(name string) {
	w.t.Helper()
	if err := os.Remove(filepath.Join(w.manifests, name+".yaml")); err != nil && !os.IsNotExist(err) {
		w.t.Fatal(err)
	}
	delete(w.versions, name)
}

// burst applies n random changes to the pool of tasks "NAME-0".."NAME-(size-1)":
// creates, replacements (a new version) and deletions, mixed. It returns a
// summary such as "3 creates, 2 replacements, 1 deletion", and forgets the
// changed tasks in b (if not nil): they may restart.
func (w *world) burst(prefix string, size, n int, b *invariants.Baseline) string {
	var creates, replaces, deletes int
	for range n {
		name := fmt.Sprintf("%s-%d", prefix, w.rng.IntN(size))
		if b != nil {
			delete(b.Tasks, name)
		}
		v, present := w.versions[name]
		switch {
		case !present:
			w.setTask(name, 1)
			creates++
		case w.rng.IntN(3) == 0:
			w.removeTask(name)
			deletes++
		default:
			w.setTask(name, v+1)
			replaces++
		}
	}
	return fmt.Sprintf("%d creates, %d replacements, %d deletions", creates, replaces, deletes)
}

// pool returns the tasks of a burst pool that have a file now.
func (w *world) pool(prefix string) []string {
	var out []string
	for name := range w.versions {
		if strings.HasPrefix(name, prefix+"-") {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// addStable writes the tasks no fault may touch and remembers them.
func (w *world) addStable(names ...string) {
	for _, n := range names {
		w.setTask(n, 1)
		w.stable = append(w.stable, n)
	}
}

// addBystander creates and starts a container the reconciler does not own
// (no labels), which it must leave alone.
func (w *world) addBystander(id string) {
	w.t.Helper()
	ctx := w.t.Context()
	img, err := testenv.ImportImage(ctx, w.client, env.archive)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := testenv.StartContainer(ctx, w.client, img, id, containerd.WithContainerLabels(map[string]string{"owner": "someone-else"}),
		containerd.WithRuntime(plugins.RuntimeRuncV2, &options.Options{Root: w.runcRoot()})); err != nil {
		w.t.Fatal(err)
	}
}

// victims picks 1 to 3 of names for the next fault and returns them with
// the baseline of everything else (the other names and the stable tasks),
// which must not change.
func (w *world) victims(names []string) ([]string, invariants.Baseline) {
	w.t.Helper()
	victims := w.pick(names, 1+w.rng.IntN(3))
	var others []string
	for _, n := range names {
		if !slices.Contains(victims, n) {
			others = append(others, n)
		}
	}
	return victims, w.baseline(append(others, w.stable...)...)
}

// baseline records what the next fault must not change: the bystanders,
// and the tasks named (default: the stable ones).
func (w *world) baseline(tasks ...string) invariants.Baseline {
	w.t.Helper()
	if len(tasks) == 0 {
		tasks = w.stable
	}
	var b invariants.Baseline
	var err error
	for i := 0; i < 3; i++ { // the node may be between two states of a stable task's restart
		if b, err = w.check.Baseline(w.t.Context(), tasks...); err == nil {
			return b
		}
		time.Sleep(time.Second)
	}
	w.t.Fatalf("baseline: %v", err)
	return b
}

// settle is how long the invariants must hold once they first hold: at
// least one resync of the reconciler, so that a late action shows.
const settle = 2500 * time.Millisecond

// converge waits until every invariant holds and no rollout is under way
// (and both still hold after the settle time), and records the fault with the time from since to the
// first clean check. A fault that does not converge in -chaos.converge
// records its violations and fails the test.
func (w *world) converge(what string, since time.Time, b invariants.Baseline) time.Duration {
	w.t.Helper()
	return w.waitConverged(what, since, b, true)
}

// ready waits for convergence without recording a fault (set-up).
func (w *world) ready(what string) {
	w.t.Helper()
	if w.waitConverged(what, time.Now(), invariants.Baseline{}, false) < 0 {
		w.t.FailNow()
	}
}

func (w *world) waitConverged(what string, since time.Time, b invariants.Baseline, record bool) time.Duration {
	w.t.Helper()
	deadline := since.Add(*flagConverge)
	var last []invariants.Violation
	var rolling []invariants.Rollout
	var took time.Duration
	clean := time.Time{}
	for {
		w.noCrash()
		vs, ro, err := w.check.CheckRollouts(w.t.Context(), b)
		if err != nil {
			vs = []invariants.Violation{{Kind: invariants.CheckFailure, Subject: "containerd", Detail: err.Error()}}
		}
		if len(vs) == 0 && len(ro) == 0 {
			// Every desired bridge task answers on its port, with its
			// version.
			vs = w.unanswered()
		}
		now := time.Now()
		switch {
		case len(vs) > 0 || len(ro) > 0:
			// A rollout under way is no violation, but not the end either:
			// it ends in its new container or in a rollback.
			clean = time.Time{}
			last, rolling = vs, ro
		case clean.IsZero():
			clean, took = now, now.Sub(since)
		case now.Sub(clean) >= settle:
			if record {
				stats.record(w.kind, took, 0)
			}
			if len(last) > 0 || len(rolling) > 0 {
				// What it waited for last: where the time went.
				w.t.Logf("%s: converged in %s; last seen:\n%s%s", what, took.Round(time.Millisecond), violationList(last), rolloutList(rolling))
			} else {
				w.t.Logf("%s: converged in %s", what, took.Round(time.Millisecond))
			}
			return took
		}
		if now.After(deadline) {
			n := 0
			for _, v := range last {
				if v.Kind != invariants.CheckFailure {
					n++
				}
			}
			if record {
				stats.record(w.kind, -1, max(n, 1))
			}
			w.t.Errorf("%s: no convergence after %s (seed %d); %d violations:\n%s%s", what, *flagConverge, env.seed, len(last), violationList(last), rolloutList(rolling))
			w.dump()
			return -1
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func rolloutList(rs []invariants.Rollout) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "  still mid-rollout: %s\n", r)
	}
	return b.String()
}

func violationList(vs []invariants.Violation) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "  %s\n", v)
	}
	return b.String()
}

// dump logs what containerd says, for a failure's post-mortem.
func (w *world) dump() {
	for _, args := range [][]string{{"containers", "ls"}, {"tasks", "ls"}, {"snapshots", "ls"}, {"leases", "ls"}} {
		out, err := w.ctr(args...)
		w.t.Logf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if out, err := exec.Command("sh", "-c", "tail -n 60 "+filepath.Join(filepath.Dir(w.address), "containerd.log")).CombinedOutput(); err == nil {
		w.t.Logf("containerd log:\n%s", out)
	}
}

// noCrash fails the test if the reconciler died or panicked.
func (w *world) noCrash() {
	w.t.Helper()
	if w.d == nil {
		return
	}
	out := w.d.Output()
	if strings.Contains(out, "panic:") || strings.Contains(out, "fatal error:") {
		w.t.Fatalf("the reconciler panicked (seed %d):\n%s", env.seed, w.d.Tail(100))
	}
	if !w.d.Alive() {
		w.t.Fatalf("the reconciler exited (seed %d):\n%s", env.seed, w.d.Tail(100))
	}
}

// status is `reconciler status -o json` of the world's daemon.
func (w *world) status() testenv.NodeStatus {
	w.t.Helper()
	st, err := testenv.ReadStatus(env.bin, w.state)
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

// taskStatus returns one task's phase and message from the status ("" if absent).
func (w *world) taskStatus(name string) (phase, message string) {
	for _, t := range w.status().Tasks {
		if t.Name == name {
			return t.Phase, t.Message
		}
	}
	return "", ""
}

// waitFor polls cond every 100 ms until it holds, and fails t, naming the
// seed, if timeout passes first.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := testenv.Poll(timeout, 100*time.Millisecond, what, cond); err != nil {
		t.Fatalf("%v (seed %d)", err, env.seed)
	}
}

// jitter is a random duration in [0, d).
func (w *world) jitter(d time.Duration) time.Duration {
	return time.Duration(w.rng.Int64N(int64(d)))
}

// iterations runs one fault iteration at a time: at least -chaos.iterations,
// and while this kind's share of -chaos.duration lasts.
func iterations(t *testing.T, each func(i int)) {
	share := *flagDuration / time.Duration(len(selectedKinds()))
	began := time.Now()
	for i := 0; i < *flagIterations || time.Since(began) < share; i++ {
		if t.Failed() {
			return
		}
		each(i)
	}
}

// ctr runs ctr on the world's containerd and namespace.
func (w *world) ctr(args ...string) (string, error) {
	out, err := exec.Command("ctr", append([]string{"--address", w.address, "-n", w.ns}, args...)...).CombinedOutput()
	return string(out), err
}

// running returns the running containers the reconciler owns, by task.
func (w *world) running() map[string]invariants.Container {
	w.t.Helper()
	n, err := w.check.Read(w.t.Context())
	if err != nil {
		w.t.Fatal(err)
	}
	out := map[string]invariants.Container{}
	for _, c := range n.Containers {
		if c.Owned && c.Status == containerd.Running {
			out[c.Task] = c
		}
	}
	return out
}

// pick returns k distinct random elements of names.
func (w *world) pick(names []string, k int) []string {
	names = slices.Clone(names)
	sort.Strings(names)
	w.rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	return names[:min(k, len(names))]
}
