package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/pkg/runtime"
)

// Missing says what this machine lacks to run the reconciler against a
// real containerd (root, containerd, runc and the shim, and the extra
// programs named), or "".
func Missing(extra ...string) string {
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	for _, b := range append([]string{"containerd", "runc", "containerd-shim-runc-v2"}, extra...) {
		if _, err := exec.LookPath(b); err != nil {
			return b + " not found on PATH (apt-get install -y containerd runc)"
		}
	}
	return ""
}

// CI reports whether CI=true: there the suites must run, and fail where
// they would skip elsewhere.
func CI() bool { return os.Getenv("CI") == "true" }

// Usable says whether this machine can run a suite needing the extra
// programs named (see Missing): skip is why not, "" if it can. Under
// CI=true that is an error instead.
func Usable(extra ...string) (skip string, err error) {
	why := Missing(extra...)
	if why != "" && CI() {
		return "", fmt.Errorf("CI=true (the suites must run) and %s", why)
	}
	return why, nil
}

// Require ends t at once if the suite cannot run here (skip, from Usable,
// is not ""): a skip, or under CI=true a failure. suite names the tests in
// the messages.
func Require(t testing.TB, suite, skip string) {
	t.Helper()
	if skip == "" {
		return
	}
	if CI() {
		t.Fatalf("CI=true but %s cannot run: %s", suite, skip)
	}
	t.Skipf("outside CI (CI=true fails above): %s cannot run here: %s", suite, skip)
}

// Suite is a test package that runs the reconciler in an Env.
type Suite struct {
	Name    string   // in messages: "e2e", "chaos"
	Prefix  string   // of the temporary directory (see Setup)
	TestApp string   // the test image's Go package, relative to the suite's directory
	Needs   []string // programs it needs besides those Missing checks
}

// Main is the suite's TestMain: it prepares the environment (Setup), runs
// the tests (m), closes the environment and returns the exit code; what
// fails goes to stderr. ready is called before the tests with the
// environment or, where the machine lacks what the suite needs outside CI,
// with nil and why (the tests then skip: see Require). Under CI=true such a
// machine fails the suite.
func (s Suite) Main(m *testing.M, ready func(e *Env, skip string)) int {
	skip, err := Usable(s.Needs...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
		return 1
	}
	if skip != "" {
		ready(nil, skip)
		return m.Run()
	}
	ctx := context.Background()
	e, err := Setup(ctx, s.Prefix, s.TestApp)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "%s: containerd pid %d on %s\n", s.Name, e.Pid, e.Address)
	ready(e, "")
	code := m.Run()
	if err := e.Close(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
	}
	return code
}

// Env is a prepared environment: everything lives under Dir.
type Env struct {
	Dir      string // short temporary directory (unix socket paths are limited)
	Bin      string // the reconciler binary
	Driver   string // the standalone log driver it embeds
	Images   string // directory holding the test image archive
	Archive  string // the test image archive, tagged imagebuild.DefaultRef
	Address  string // the private containerd's socket
	RuncRoot string // runc state of that containerd, apart from any other's
	State    string // that containerd's state directory (its task bundles)
	Pid      int    // of that containerd

	containerd *runtime.Managed
}

// Setup makes a temporary directory named after prefix, builds the
// reconciler and the test image (from the Go package testapp, a path
// relative to the caller's directory) into it and starts a private
// containerd there, logging to stderr. The caller closes it.
func Setup(ctx context.Context, prefix, testapp string) (*Env, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, Bin: filepath.Join(dir, "reconciler"), Driver: filepath.Join(dir, "log-driver"),
		Images: filepath.Join(dir, "images")}
	e.Archive = filepath.Join(e.Images, "testapp.tar")
	if err := Reconciler(ctx, e.Bin, e.Driver, ""); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build reconciler: %w", err)
	}
	if err := imagebuild.Build(ctx, testapp, imagebuild.DefaultRef, e.Archive, dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	log := logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, nil))
	mc, err := runtime.StartManaged(ctx, filepath.Join(dir, "ctrd"), "containerd", log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e.containerd, e.Address, e.Pid = mc, mc.Address(), mc.Pid()
	e.RuncRoot, e.State = runtime.PathsFor(mc.Dir).RuncRoot, runtime.PathsFor(mc.Dir).State
	return e, nil
}

// Close stops the containerd and removes the directory.
func (e *Env) Close(ctx context.Context) error {
	err := e.containerd.Stop(ctx)
	if err != nil {
		err = fmt.Errorf("stop containerd: %w", err)
	}
	return errors.Join(err, os.RemoveAll(e.Dir))
}
