package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	containerd "github.com/containerd/containerd/v2/client"

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
	env := func(msg string) map[string]string {
		return map[string]string{"LISTEN": fmt.Sprintf("127.0.0.1:%d", port), "MESSAGE": msg}
	}
	good := manifest("lkg", env("one"), "  stopGracePeriod: 2s\n")
	writeFile(t, dir, "lkg.yaml", good)
	var before ctr
	waitFor(t, converge, "lkg running", func() (ok bool) { before, ok = n.running("lkg"); return ok })
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitFor(t, converge, "lkg to answer", func() bool { body, _ := httpGet(url); return body == "one" })

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
		waitFor(t, converge, "the reconciler to report "+what, func() bool { return strings.Contains(d.output()[from:], what) })
		d.waitResyncs(3)
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
			apply: func() { writeFile(t, dir, "lkg.yaml", good[:cut]) },
			what:  "invalid yaml",
		},
		{
			name: "unknown field",
			apply: func() {
				writeFile(t, dir, "lkg.yaml", strings.Replace(good, "MESSAGE", "MESSAGE2", 1)+"  imagePolicy: Always\n")
			},
			what: `spec.imagePolicy: unknown field`,
		},
		{
			// Valid manifests that cannot run: with stop-first (the
			// default) the old container is stopped only once the new
			// one can be created.
			name: "an image that cannot be pulled",
			apply: func() {
				writeFile(t, dir, "lkg.yaml", strings.Replace(good, "reconciler/testapp:v1", "reconciler/no-such-image:v1", 1))
			},
			what: "the running container is kept: ",
		},
		{
			name:  "refused by the node policy",
			apply: func() { writeFile(t, dir, "lkg.yaml", good+"  securityContext: {privileged: true}\n") },
			what:  "the running container is kept: spec.securityContext.privileged: denied by node policy",
		},
		{
			name:  "same name in a second file",
			apply: func() { writeFile(t, dir, "lkg-copy.yaml", manifest("lkg", env("copy"), "")) },
			what:  `is also defined in lkg.yaml`,
			undo: func() {
				if err := os.Remove(filepath.Join(dir, "lkg-copy.yaml")); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tc := range cases {
		from := len(d.output())
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
		writeFile(t, dir, "lkg.yaml", good)
		d.waitResyncs(3)
		unchanged(tc.name + ", then fixed as it was")
	}

	// A valid change is applied: a new container with the new env.
	writeFile(t, dir, "lkg.yaml", manifest("lkg", env("two"), "  stopGracePeriod: 2s\n"))
	var after ctr
	waitFor(t, converge, "lkg replaced", func() (ok bool) {
		after, ok = n.running("lkg")
		return ok && after.ID != before.ID
	})
	waitFor(t, converge, "lkg to answer two", func() bool { body, _ := httpGet(url); return body == "two" })
}

// TestDuplicateNameAtStart starts the reconciler on a directory where two
// files define the same task, next to a container that one of them created
// earlier: the container is left as it is, nothing else is created, and
// removing one of the files lets the other apply.
func TestDuplicateNameAtStart(t *testing.T) {
	n := newNode(t, "e2e-dup")
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", manifest("dup", map[string]string{"MESSAGE": "a"}, "  stopGracePeriod: 1s\n"))
	d := startReconciler(t, n.ns, dir)
	var first ctr
	waitFor(t, converge, "dup running", func() (ok bool) { first, ok = n.running("dup"); return ok })
	d.stop()

	writeFile(t, dir, "b.yaml", manifest("dup", map[string]string{"MESSAGE": "b"}, "  stopGracePeriod: 1s\n"))
	d2 := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	waitFor(t, converge, "the duplicate to be reported", func() bool { return strings.Contains(d2.output(), "is also defined in") })
	d2.waitResyncs(3)
	if cs := n.containers("dup"); len(cs) != 1 || cs[0].ID != first.ID || cs[0].Pid != first.Pid || cs[0].Status != containerd.Running {
		t.Fatalf("containers of dup %+v, want only %s with pid %d running", cs, first.ID, first.Pid)
	}

	if err := os.Remove(filepath.Join(dir, "a.yaml")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "dup from b.yaml", func() bool {
		c, ok := n.running("dup")
		return ok && c.ID != first.ID && c.Labels[observed.LabelSource] == "b.yaml"
	})
}
