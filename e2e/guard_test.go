package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren/reconciler/e2e/testenv"
)

// guardStatus reads `reconciler status -o json` of the daemon on namespace ns.
func guardStatus(t *testing.T, ns string) testenv.NodeStatus {
	t.Helper()
	st, err := testenv.ReadStatus(env.bin, stateDir(ns))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestGuardRefusesWritableDropDirectory: the daemon applies nothing from a
// manifest file or directory that others could have written, keeps every
// task running as it is (nothing replaced, nothing deleted), says why on
// the status and in the log with the command that fixes it, and applies
// again once fixed. --insecure-manifests-dir relaxes the check.
func TestGuardRefusesWritableDropDirectory(t *testing.T) {
	n := newNode(t, "e2e-guard")
	dir := filepath.Join(t.TempDir(), "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web", testenv.EnvSpec("V", "1")))
	d := startReconciler(t, n.ns, dir, "-v", "1") // -v 1 logs each resync
	var first ctr
	testenv.WaitFor(t, converge, "web running", func() (ok bool) { first, ok = n.running("web"); return ok })

	// A changed spec in a file others can write: refused, web untouched.
	// The file appears with its final mode: a daemon that reads it at once
	// never sees it writable by its owner only.
	path := filepath.Join(dir, "web.yaml")
	testenv.WriteFileMode(t, dir, "web.yaml", testenv.Manifest("web", testenv.EnvSpec("V", "2")), 0o666)
	testenv.WaitFor(t, converge, "the refusal on the status", func() bool {
		return strings.Contains(guardStatus(t, n.ns).Manifests.Broken["web.yaml"], "writable by group or others (mode -rw-rw-rw-)")
	})
	d.WaitLog("run chmod go-w "+path, converge)
	// A new file others can write: not applied.
	testenv.WriteFileMode(t, dir, "evil.yaml", testenv.Manifest("evil"), 0o646)
	testenv.WaitFor(t, converge, "evil refused", func() bool { return guardStatus(t, n.ns).Manifests.Broken["evil.yaml"] != "" })

	// The directory others can write: nothing applied, nothing deleted,
	// not even a task whose file is removed.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, converge, "the directory refused on the status", func() bool {
		return strings.Contains(guardStatus(t, n.ns).Manifests.Error, "run chmod go-w "+dir)
	})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	d.WaitResyncs(3, converge) // a wrong deletion would have happened by now
	if c, ok := n.running("web"); !ok || c.ID != first.ID || c.Pid != first.Pid {
		t.Fatalf("web touched while the directory was refused: %+v, want %+v", c, first)
	}
	if cs := n.containers("evil"); len(cs) != 0 {
		t.Fatalf("evil applied: %+v", cs)
	}

	// Fixed: the directory is applied as it is now (web's file is gone).
	// The file first, while the directory is still refused: the daemon
	// then sees the fixed directory whole.
	if err := os.Chmod(filepath.Join(dir, "evil.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, converge, "web removed and evil running once the directory is fixed", func() bool {
		_, evil := n.running("evil")
		return evil && len(n.containers("web")) == 0
	})
	if st := guardStatus(t, n.ns); st.Manifests.Error != "" || len(st.Manifests.Broken) != 0 {
		t.Errorf("status after the fix: %+v", st.Manifests)
	}
}

// TestGuardRelaxed: with --insecure-manifests-dir a directory and files
// others can write are applied.
func TestGuardRelaxed(t *testing.T) {
	n := newNode(t, "e2e-guard-relaxed")
	dir := filepath.Join(t.TempDir(), "manifests")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web"))
	if err := os.Chmod(filepath.Join(dir, "web.yaml"), 0o666); err != nil {
		t.Fatal(err)
	}
	startReconciler(t, n.ns, dir, "--insecure-manifests-dir")
	testenv.WaitFor(t, converge, "web running", func() bool { _, ok := n.running("web"); return ok })
}
