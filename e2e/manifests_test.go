package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
)

// TestLastKnownGood breaks the file of a running task in three ways, each
// seen by the reconciler and lasting two resyncs: the container is neither
// restarted nor removed (same ID, same PID, still running). Then a valid
// change is applied.
func TestLastKnownGood(t *testing.T) {
	n := newNode(t, "e2e-lkg")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	port := freePort(t)
	env := func(msg string) string {
		return testenv.EnvSpec("LISTEN", fmt.Sprintf("127.0.0.1:%d", port), "MESSAGE", msg)
	}
	good := testenv.Manifest("lkg", env("one"), "stopGracePeriod: 2s")
	testenv.WriteFile(t, dir, "lkg.yaml", good)
	var before ctr
	testenv.WaitFor(t, converge, "lkg running", func() (ok bool) { before, ok = n.running("lkg"); return ok })
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	testenv.WaitFor(t, converge, "lkg to answer", func() bool { body, _ := httpGet(url); return body == "one" })

	// The unchanged task: one container, the same one, running the same
	// process.
	unchanged := func(when string) {
		t.Helper()
		cs := n.containers("lkg")
		if len(cs) != 1 || cs[0].ID != before.ID || cs[0].Pid != before.Pid || cs[0].Status != containerd.Running {
			t.Fatalf("%s: containers of lkg %+v, want only %s with pid %d running", when, cs, before.ID, before.Pid)
		}
	}
	// seen waits until the reconciler logs what it makes of the broken
	// file, then for resyncs after that.
	seen := func(from int, what string) {
		t.Helper()
		testenv.WaitFor(t, converge, "the reconciler to report "+what, func() bool { return strings.Contains(d.Output()[from:], what) })
		d.WaitResyncs(3, converge)
	}

	cut := strings.Index(good, `value: "one"`) + len(`value: "o`)
	cases := []struct {
		name  string
		apply func()
		what  string // in the reconciler's log once it has read the broken file
		undo  func()
	}{
		{
			name:  "truncated yaml",
			apply: func() { testenv.WriteFile(t, dir, "lkg.yaml", good[:cut]) },
			what:  "invalid yaml",
		},
		{
			name: "unknown field",
			apply: func() {
				testenv.WriteFile(t, dir, "lkg.yaml", strings.Replace(good, "MESSAGE", "MESSAGE2", 1)+"  imagePolicy: Always\n")
			},
			what: `spec.imagePolicy: unknown field`,
		},
		{
			// Valid manifests that cannot run: with stop-first (the
			// default) the old container is stopped only once the new
			// one can be created.
			name: "an image that cannot be pulled",
			apply: func() {
				testenv.WriteFile(t, dir, "lkg.yaml", strings.Replace(good, "reconciler/testapp:v1", "reconciler/no-such-image:v1", 1))
			},
			what: "the running container is kept: ",
		},
		{
			name:  "refused by the node policy",
			apply: func() { testenv.WriteFile(t, dir, "lkg.yaml", good+"  securityContext: {privileged: true}\n") },
			what:  "the running container is kept: spec.securityContext.privileged: denied by node policy",
		},
		{
			name:  "same name in a second file",
			apply: func() { testenv.WriteFile(t, dir, "lkg-copy.yaml", testenv.Manifest("lkg", env("copy"))) },
			what:  `is also defined in lkg.yaml`,
			undo: func() {
				if err := os.Remove(filepath.Join(dir, "lkg-copy.yaml")); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tc := range cases {
		from := len(d.Output())
		tc.apply()
		seen(from, tc.what)
		unchanged(tc.name)
		if body, err := httpGet(url); body != "one" {
			t.Fatalf("%s: the task answers %q (%v), want one", tc.name, body, err)
		}
		// Back to the good file: the same spec, so nothing happens.
		if tc.undo != nil {
			tc.undo()
		}
		testenv.WriteFile(t, dir, "lkg.yaml", good)
		d.WaitResyncs(3, converge)
		unchanged(tc.name + ", then fixed as it was")
	}

	// A valid change is applied: a new container with the new env.
	testenv.WriteFile(t, dir, "lkg.yaml", testenv.Manifest("lkg", env("two"), "stopGracePeriod: 2s"))
	var after ctr
	testenv.WaitFor(t, converge, "lkg replaced", func() (ok bool) {
		after, ok = n.running("lkg")
		return ok && after.ID != before.ID
	})
	testenv.WaitFor(t, converge, "lkg to answer two", func() bool { body, _ := httpGet(url); return body == "two" })
}

// TestDuplicateNameAtStart starts the reconciler on a directory where two
// files define the same task, next to a container that one of them created
// earlier: the container is left as it is, nothing else is created, and
// removing one of the files lets the other apply.
func TestDuplicateNameAtStart(t *testing.T) {
	n := newNode(t, "e2e-dup")
	dir := t.TempDir()
	testenv.WriteFile(t, dir, "a.yaml", testenv.Manifest("dup", testenv.EnvSpec("MESSAGE", "a"), "stopGracePeriod: 1s"))
	d := startReconciler(t, n.ns, dir)
	var first ctr
	testenv.WaitFor(t, converge, "dup running", func() (ok bool) { first, ok = n.running("dup"); return ok })
	d.Stop()

	testenv.WriteFile(t, dir, "b.yaml", testenv.Manifest("dup", testenv.EnvSpec("MESSAGE", "b"), "stopGracePeriod: 1s"))
	d2 := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	testenv.WaitFor(t, converge, "the duplicate to be reported", func() bool { return strings.Contains(d2.Output(), "is also defined in") })
	d2.WaitResyncs(3, converge)
	if cs := n.containers("dup"); len(cs) != 1 || cs[0].ID != first.ID || cs[0].Pid != first.Pid || cs[0].Status != containerd.Running {
		t.Fatalf("containers of dup %+v, want only %s with pid %d running", cs, first.ID, first.Pid)
	}

	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, converge, "dup from b.yaml", func() bool {
		c, ok := n.running("dup")
		return ok && c.ID != first.ID && c.Labels[observed.LabelSource] == "b.yaml"
	})
}
