package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"

	"github.com/warren/reconciler/e2e/binbuild"
	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/pkg/runtime"
)

// env is what TestMain prepared for every test.
var env struct {
	dir      string // short temporary directory (unix socket paths are limited)
	bin      string // the reconciler binary
	driver   string // the standalone log driver it embeds
	images   string // directory holding the test image archive
	archive  string // the test image archive
	address  string // containerd socket
	runcRoot string // runc state of the tests' containerd, apart from any other's
	skip     string // why the tests cannot run here (never set under CI=true)
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	ci := os.Getenv("CI") == "true"
	if why := missing(); why != "" {
		if ci {
			fmt.Fprintf(os.Stderr, "e2e: CI=true and %s: the e2e tests must run in CI\n", why)
			return 1
		}
		env.skip = why
		return m.Run()
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rce2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	env.dir = dir
	defer os.RemoveAll(dir)
	env.bin = filepath.Join(dir, "reconciler")
	env.driver = filepath.Join(dir, "log-driver")
	if err := binbuild.Reconciler(ctx, env.bin, env.driver, ""); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build reconciler: %v\n", err)
		return 1
	}
	env.images = filepath.Join(dir, "images")
	env.archive = filepath.Join(env.images, "testapp.tar")
	if err := imagebuild.Build(ctx, "./testapp", imagebuild.DefaultRef, env.archive, dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	log := logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, nil))
	mc, err := runtime.StartManaged(ctx, filepath.Join(dir, "ctrd"), "containerd", log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	env.address = mc.Address()
	env.runcRoot = runtime.PathsFor(mc.Dir).RuncRoot
	fmt.Fprintf(os.Stderr, "e2e: containerd pid %d on %s\n", mc.Pid(), env.address)
	code := m.Run()
	if err := mc.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stop containerd:", err)
	}
	return code
}

// missing says what this machine lacks to run the e2e tests, or "".
func missing() string {
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	for _, b := range []string{"containerd", "runc", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(b); err != nil {
			return b + " not found on PATH (apt-get install -y containerd runc)"
		}
	}
	return ""
}

// requireEnv skips a test outside CI when the machine cannot run e2e tests.
// Under CI=true TestMain has already failed in that case.
func requireEnv(t *testing.T) {
	t.Helper()
	if env.skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but e2e cannot run: %s", env.skip)
		}
		t.Skip("outside CI (CI=true fails above): e2e needs root, containerd and runc: " + env.skip)
	}
}
