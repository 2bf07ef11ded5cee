package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"
	"github.com/warren/reconciler/e2e/testenv"
)

// The watcher against a real containerd: each way of writing the manifests
// directory ends with the containers it describes, and a transient state on
// the way (a file renamed away, empty or half written, a directory missing)
// never stops a container.

// watchGrace keeps stops short in these tests.
const watchGrace = "stopGracePeriod: 2s"

func msg(m string) string { return testenv.EnvSpec("MESSAGE", m) }

// The reconciler's log lines for its container actions.
const (
	actCreate = `msg="creating container"`
	actStart  = `msg="starting task"`
	actStop   = `msg="stopping container"`
	actDelete = `msg="deleting container"`
)

// actionLog counts the reconciler's actions in its log from an offset.
type actionLog struct {
	d    *testenv.TestDaemon
	from int
}

func mark(d *testenv.TestDaemon) actionLog { return actionLog{d: d, from: len(d.Output())} }

func (a actionLog) since() string { return a.d.Output()[a.from:] }

func (a actionLog) count(what string) int { return strings.Count(a.since(), what) }

// none fails the test if the reconciler created, stopped or deleted
// anything since the mark.
func (a actionLog) none(t *testing.T, when string) {
	t.Helper()
	for _, what := range []string{actCreate, actStart, actStop, actDelete} {
		if n := a.count(what); n != 0 {
			t.Errorf("%s: the reconciler logged %q %d times, want no action:\n%s", when, what, n, a.since())
		}
	}
}

// replacedOnce checks that the reconciler replaced one container since the
// mark, and never saw the task as gone on the way (which would stop it with
// the reason "no longer desired").
func (a actionLog) replacedOnce(t *testing.T, when string) {
	t.Helper()
	if c, s := a.count(actCreate), a.count(actStop); c != 1 || s != 1 {
		t.Errorf("%s: %d creates and %d stops, want one of each:\n%s", when, c, s, a.since())
	}
	if strings.Contains(a.since(), "no longer desired") {
		t.Errorf("%s: the task was seen as removed on the way:\n%s", when, a.since())
	}
}

// unchanged fails the test unless task has exactly the container before,
// running the same process.
func (n *node) unchanged(task string, before ctr, when string) {
	n.t.Helper()
	cs := n.containers(task)
	if len(cs) != 1 || cs[0].ID != before.ID || cs[0].Pid != before.Pid || cs[0].Status != containerd.Running {
		n.t.Fatalf("%s: containers of %s %+v, want only %s with pid %d running", when, task, cs, before.ID, before.Pid)
	}
}

// runningNew waits for task to run in a container other than old.
func (n *node) runningNew(task string, old ctr) ctr {
	n.t.Helper()
	var c ctr
	testenv.WaitFor(n.t, converge, task+" replaced", func() (ok bool) {
		c, ok = n.running(task)
		return ok && c.ID != old.ID
	})
	return c
}

func (n *node) runningNow(task string) ctr {
	n.t.Helper()
	var c ctr
	testenv.WaitFor(n.t, converge, task+" running", func() (ok bool) { c, ok = n.running(task); return ok })
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// taskSource is the source file of task in the daemon's status.
func taskSource(t *testing.T, ns, task string) string {
	st, err := testenv.ReadTaskStatus(env.bin, stateDir(ns), task)
	if err != nil {
		return ""
	}
	return st.Source
}

// TestWatchAtomicRename: the recommended write (temporary file renamed into
// place), then a file renamed within the directory (the same container,
// untouched), moved out (removed) and moved in (created).
func TestWatchAtomicRename(t *testing.T) {
	n := newNode(t, "e2e-watch-rename")
	dir, other := t.TempDir(), t.TempDir()
	d := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", msg("one"), watchGrace))
	c1 := n.runningNow("web")

	a := mark(d)
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", msg("two"), watchGrace))
	c2 := n.runningNew("web", c1)
	a.replacedOnce(t, "atomic rename")

	a = mark(d)
	must(t, os.Rename(filepath.Join(dir, "web.yaml"), filepath.Join(dir, "site.yaml")))
	testenv.WaitFor(t, converge, "web's source to be site.yaml", func() bool { return taskSource(t, n.ns, "web") == "site.yaml" })
	d.WaitResyncs(3, converge)
	n.unchanged("web", c2, "renamed within the directory")
	a.none(t, "renamed within the directory")

	must(t, os.Rename(filepath.Join(dir, "site.yaml"), filepath.Join(other, "site.yaml")))
	testenv.WaitFor(t, converge, "web removed", func() bool { return len(n.containers("web")) == 0 })

	must(t, os.Rename(filepath.Join(other, "site.yaml"), filepath.Join(dir, "site.yaml")))
	n.runningNow("web")
}

// vimSave replays vim's system calls for `:w` ('writebackup', 'nobackup'),
// as strace shows them for vim 9. backupcopy=auto probes with a file "4913"
// first, then saves as with no: the original renamed to "web.yaml~", a new
// file written, the backup removed. backupcopy=yes copies the original to
// the backup and writes the file in place (truncated first). pause is slept
// where a slow machine would leave the file renamed away or empty.
func vimSave(t *testing.T, dir, name, content, mode string, pause time.Duration) {
	t.Helper()
	path := filepath.Join(dir, name)
	backup := path + "~"
	if mode == "auto" {
		probe := filepath.Join(dir, "4913")
		f, err := os.OpenFile(probe, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		must(t, err)
		must(t, f.Close())
		must(t, os.Remove(probe))
	}
	if mode == "yes" {
		old, err := os.ReadFile(path)
		must(t, err)
		must(t, os.WriteFile(backup, old, 0o644))
	} else {
		must(t, os.Rename(path, backup))
	}
	time.Sleep(pause) // a slow writer, not a wait for a condition
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	must(t, err)
	must(t, f.Truncate(0))
	time.Sleep(pause)
	_, err = f.WriteString(content)
	must(t, err)
	must(t, f.Sync())
	must(t, f.Chmod(0o644))
	must(t, f.Close())
	must(t, os.Remove(backup))
}

// TestWatchVimSave saves a manifest the ways vim does, at full speed and
// slowed down: each save replaces the container once, and the task is never
// seen as removed. A save without a change does nothing.
func TestWatchVimSave(t *testing.T) {
	n := newNode(t, "e2e-watch-vim")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", msg("v0"), watchGrace))
	prev := n.runningNow("web")
	for i, save := range []struct {
		mode  string
		pause time.Duration
	}{{"auto", 0}, {"yes", 0}, {"no", 100 * time.Millisecond}, {"yes", 100 * time.Millisecond}} {
		when := fmt.Sprintf("vim backupcopy=%s, pause %s", save.mode, save.pause)
		a := mark(d)
		vimSave(t, dir, "web.yaml", testenv.Manifest("web", msg(fmt.Sprint("v", i+1)), watchGrace), save.mode, save.pause)
		prev = n.runningNew("web", prev)
		a.replacedOnce(t, when)
	}
	a := mark(d)
	old, err := os.ReadFile(filepath.Join(dir, "web.yaml"))
	must(t, err)
	vimSave(t, dir, "web.yaml", string(old), "auto", 0)
	d.WaitResyncs(3, converge)
	n.unchanged("web", prev, ":w without a change")
	a.none(t, ":w without a change")
}

// TestWatchInPlaceWrites: writes that leave the file half written or empty
// for a while (longer than the debounce): the container keeps running until
// the new content is complete, then is replaced once.
func TestWatchInPlaceWrites(t *testing.T) {
	n := newNode(t, "e2e-watch-inplace")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir)
	path := filepath.Join(dir, "web.yaml")
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", msg("v0"), watchGrace))
	prev := n.runningNow("web")

	// Chunked, each piece cut inside a line so that no prefix is valid
	// ("kind: Ta", an env entry without its closing brace): the daemon reads
	// them (and says so) while the old container runs on. (A prefix that
	// happens to be a valid manifest would be applied: docs/writing-manifests.md says to
	// rename into place.)
	a := mark(d)
	next := testenv.Manifest("web", msg("v1"), watchGrace)
	cut1, cut2 := strings.Index(next, "kind: Task")+len("kind: Ta"), strings.Index(next, "value:")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0o644)
	must(t, err)
	for _, piece := range []string{next[:cut1], next[cut1:cut2]} {
		_, err := f.WriteString(piece)
		must(t, err)
		time.Sleep(150 * time.Millisecond) // a slow writer
		n.unchanged("web", prev, "half written")
	}
	if !strings.Contains(a.since(), "manifest file invalid") {
		t.Errorf("the half-written file was not read (the test did not exercise last known good):\n%s", a.since())
	}
	_, err = f.WriteString(next[cut2:])
	must(t, err)
	must(t, f.Close())
	prev = n.runningNew("web", prev)
	a.replacedOnce(t, "chunked")

	steps := []struct {
		name  string
		write func(content string)
	}{
		{"truncate then write", func(content string) {
			must(t, os.Truncate(path, 0))
			time.Sleep(150 * time.Millisecond) // a slow writer
			must(t, os.WriteFile(path, []byte(content), 0o644))
		}},
		{"cp over", func(content string) {
			src := filepath.Join(t.TempDir(), "web.yaml")
			must(t, os.WriteFile(src, []byte(content), 0o644))
			if out, err := exec.Command("cp", src, path).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
		}},
		{"sed -i", func(content string) {
			if out, err := exec.Command("sed", "-i", `s/value: "v[0-9]*"/value: "v9"/`, path).CombinedOutput(); err != nil {
				t.Fatalf("sed: %v %s", err, out)
			}
		}},
	}
	for i, s := range steps {
		a := mark(d)
		s.write(testenv.Manifest("web", msg(fmt.Sprint("v", i+2)), watchGrace))
		prev = n.runningNew("web", prev)
		a.replacedOnce(t, s.name)
	}
}

// TestWatchTouchNoAction: events without a change of content (touch, chmod,
// the same bytes written again, cp of the same file) make the daemon do
// nothing: no container action, the same process.
func TestWatchTouchNoAction(t *testing.T) {
	n := newNode(t, "e2e-watch-touch")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	content := testenv.Manifest("web", watchGrace)
	testenv.WriteFile(t, dir, "web.yaml", content)
	before := n.runningNow("web")
	d.WaitResyncs(3, converge) // the start settled

	a := mark(d)
	path := filepath.Join(dir, "web.yaml")
	src := filepath.Join(t.TempDir(), "web.yaml")
	must(t, os.WriteFile(src, []byte(content), 0o644))
	for _, cmd := range [][]string{{"touch", path}, {"chmod", "600", path}, {"chmod", "644", path}, {"cp", src, path}, {"touch", "-d", "2001-01-01", path}} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", cmd, err, out)
		}
	}
	must(t, os.WriteFile(path, []byte(content), 0o644))
	d.WaitResyncs(3, converge)
	n.unchanged("web", before, "touch, chmod, cp and a rewrite of the same content")
	a.none(t, "touch, chmod, cp and a rewrite of the same content")
}

// swapLink points the symlink link at target atomically: a new link
// renamed over the old one (`ln -s target tmp && mv -T tmp link`).
func swapLink(t *testing.T, target, link string) {
	t.Helper()
	must(t, os.Symlink(target, link+"_tmp"))
	must(t, os.Rename(link+"_tmp", link))
}

// TestWatchGitSyncSwap: the manifests directory is a symlink to a checkout,
// swapped to the next revision the way git-sync publishes one. The new
// revision converges; a task whose manifest did not change keeps its
// container and process.
func TestWatchGitSyncSwap(t *testing.T) {
	n := newNode(t, "e2e-watch-gitsync")
	root := t.TempDir()
	revs := map[string]map[string]string{
		"rev1": {"a.yaml": testenv.Manifest("a", msg("a"), watchGrace), "b.yaml": testenv.Manifest("b", msg("b1"), watchGrace)},
		"rev2": {"a.yaml": testenv.Manifest("a", msg("a"), watchGrace), "b.yaml": testenv.Manifest("b", msg("b2"), watchGrace), "c.yaml": testenv.Manifest("c", watchGrace)},
	}
	for rev, files := range revs {
		must(t, os.Mkdir(filepath.Join(root, rev), 0o755))
		for name, content := range files {
			testenv.WriteFile(t, filepath.Join(root, rev), name, content)
		}
	}
	dir := filepath.Join(root, "current")
	must(t, os.Symlink("rev1", dir))
	d := startReconciler(t, n.ns, dir)
	ca, cb := n.runningNow("a"), n.runningNow("b")

	a := mark(d)
	swapLink(t, "rev2", dir)
	must(t, os.RemoveAll(filepath.Join(root, "rev1"))) // git-sync's clean-up of the old worktree
	n.runningNew("b", cb)
	n.runningNow("c")
	n.unchanged("a", ca, "a task unchanged between revisions")
	if c, s := a.count(actCreate), a.count(actStop); c != 2 || s != 1 {
		t.Errorf("revision swap: %d creates and %d stops, want 2 (b, c) and 1 (b):\n%s", c, s, a.since())
	}
	if strings.Contains(a.since(), "no longer desired") {
		t.Errorf("revision swap: a task was seen as removed on the way:\n%s", a.since())
	}
	if strings.Contains(a.since(), " task=a ") {
		t.Errorf("the unchanged task a was acted on:\n%s", a.since())
	}
}

// TestWatchConfigMapSwap: the Kubernetes ConfigMap volume layout (each file a
// symlink through "..data", swapped to a new timestamped directory).
func TestWatchConfigMapSwap(t *testing.T) {
	n := newNode(t, "e2e-watch-configmap")
	dir := t.TempDir()
	rev := 0
	update := func(files map[string]string) {
		rev++
		ts := fmt.Sprintf("..2026_01_02_15_04_%02d.%d", rev, 1000+rev)
		must(t, os.Mkdir(filepath.Join(dir, ts), 0o755))
		for name, content := range files {
			testenv.WriteFile(t, filepath.Join(dir, ts), name, content)
		}
		old, _ := os.Readlink(filepath.Join(dir, "..data"))
		swapLink(t, ts, filepath.Join(dir, "..data"))
		for name := range files {
			if _, err := os.Lstat(filepath.Join(dir, name)); os.IsNotExist(err) {
				must(t, os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)))
			}
		}
		if old != "" {
			must(t, os.RemoveAll(filepath.Join(dir, old)))
		}
	}
	update(map[string]string{"a.yaml": testenv.Manifest("a", msg("a"), watchGrace), "b.yaml": testenv.Manifest("b", msg("b1"), watchGrace)})
	d := startReconciler(t, n.ns, dir)
	ca, cb := n.runningNow("a"), n.runningNow("b")

	a := mark(d)
	update(map[string]string{"a.yaml": testenv.Manifest("a", msg("a"), watchGrace), "b.yaml": testenv.Manifest("b", msg("b2"), watchGrace)})
	n.runningNew("b", cb)
	n.unchanged("a", ca, "a task unchanged between revisions")
	a.replacedOnce(t, "..data swap")
}

// TestWatchDirectoryDeletedAndRecreated: the directory deleted (nothing is
// stopped while it is missing), re-created and refilled by a slow script
// (nothing is stopped either), then missing when the daemon starts (it
// waits, deleting nothing) and finally back with a change.
func TestWatchDirectoryDeletedAndRecreated(t *testing.T) {
	n := newNode(t, "e2e-watch-dir")
	dir := filepath.Join(t.TempDir(), "manifests")
	must(t, os.Mkdir(dir, 0o755))
	content := testenv.Manifest("web", msg("one"), watchGrace)
	testenv.WriteFile(t, dir, "web.yaml", content)
	d := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	before := n.runningNow("web")

	a := mark(d)
	must(t, os.RemoveAll(dir))
	testenv.WaitFor(t, converge, "the daemon to see the directory gone", func() bool {
		return strings.Contains(a.since(), "manifests directory unreadable")
	})
	d.WaitResyncs(3, converge)
	n.unchanged("web", before, "directory deleted")

	must(t, os.Mkdir(dir, 0o755))
	time.Sleep(100 * time.Millisecond) // a slow script between mkdir and cp
	testenv.WriteFile(t, dir, "web.yaml", content)
	d.WaitResyncs(3, converge)
	n.unchanged("web", before, "directory re-created and refilled")
	a.none(t, "directory deleted, re-created and refilled")

	// Missing when the daemon starts.
	d.Stop()
	must(t, os.RemoveAll(dir))
	d2 := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	d2.WaitResyncs(3, converge)
	n.unchanged("web", before, "daemon started without the directory")
	mark(d2).none(t, "daemon started without the directory") // nothing since the start...
	if strings.Contains(d2.Output(), actCreate) || strings.Contains(d2.Output(), actStop) {
		t.Errorf("the daemon acted without its directory:\n%s", d2.Output()) // ...nor before
	}
	// Back whole, built beside it and renamed into place: the daemon, which
	// never saw web.yaml, must not read the directory empty in between.
	next := filepath.Join(filepath.Dir(dir), ".manifests.new")
	must(t, os.Mkdir(next, 0o755))
	testenv.WriteFile(t, next, "web.yaml", testenv.Manifest("web", msg("two"), watchGrace))
	must(t, os.Rename(next, dir))
	n.runningNew("web", before)
}

// TestWatchLatency measures, over 40 files, the time from the rename of a
// new manifest into the directory to the first containerd write for it
// (the snapshot prepared for its container) and to its /containers/create
// event, with the default debounce. It prints the figures; it asserts only
// a generous bound.
func TestWatchLatency(t *testing.T) {
	n := newNode(t, "e2e-watch-latency")
	dir := t.TempDir()
	startReconciler(t, n.ns, dir)
	testenv.WriteFile(t, dir, "warmup.yaml", testenv.Manifest("warmup", watchGrace)) // the image is imported once
	n.runningNow("warmup")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events, errs := n.client.Subscribe(ctx, fmt.Sprintf(`namespace==%q`, n.ns))
	const trials = 40
	var toFirst, toCreate []time.Duration
	for i := range trials {
		name := fmt.Sprintf("lat%02d", i)
		tmp := filepath.Join(dir, "."+name+".yaml.tmp")
		must(t, os.WriteFile(tmp, []byte(testenv.Manifest(name, watchGrace)), 0o644))
		renamed := time.Now()
		must(t, os.Rename(tmp, filepath.Join(dir, name+".yaml")))
		var first time.Time
		timeout := time.After(converge)
	wait:
		for {
			select {
			case e := <-events:
				v, err := typeurl.UnmarshalAny(e.Event)
				if err != nil {
					continue // an event type this client does not know
				}
				id := ""
				switch ev := v.(type) {
				case *eventtypes.SnapshotPrepare:
					id = ev.Key
				case *eventtypes.ContainerCreate:
					id = ev.ID
				}
				if !strings.HasPrefix(id, name+"-") {
					continue
				}
				at := e.Timestamp
				if first.IsZero() {
					first = at
					toFirst = append(toFirst, at.Sub(renamed))
				}
				if _, ok := v.(*eventtypes.ContainerCreate); ok {
					toCreate = append(toCreate, at.Sub(renamed))
					break wait
				}
			case err := <-errs:
				t.Fatalf("events: %v", err)
			case <-timeout:
				t.Fatalf("no /containers/create event for %s", name)
			}
		}
		n.runningNow(name) // one at a time: the next file meets an idle daemon
	}
	p50, p99 := percentiles(toFirst)
	c50, c99 := percentiles(toCreate)
	t.Logf("rename -> first containerd write (snapshot prepare), %d trials: p50 %s, p99 %s, max %s", len(toFirst), p50, p99, slices.Max(toFirst))
	t.Logf("rename -> /containers/create event, %d trials: p50 %s, p99 %s, max %s", len(toCreate), c50, c99, slices.Max(toCreate))
	if c99 > time.Second {
		t.Errorf("p99 from rename to create is %s, want well under a second", c99)
	}
}

// percentiles returns the median and the 99th percentile (nearest rank).
func percentiles(ds []time.Duration) (time.Duration, time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))].Round(100 * time.Microsecond)
	}
	return rank(0.50), rank(0.99)
}
