package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/warren/reconciler/e2e/testenv"
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
	run      string // a suffix of this run's namespaces (see newNode)
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	ci := os.Getenv("CI") == "true"
	if why := testenv.Missing(); why != "" {
		if ci {
			fmt.Fprintf(os.Stderr, "e2e: CI=true and %s: the e2e tests must run in CI\n", why)
			return 1
		}
		env.skip = why
		return m.Run()
	}
	ctx := context.Background()
	e, err := testenv.Setup(ctx, "rce2e", "./testapp")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	env.dir, env.bin, env.driver, env.images, env.archive = e.Dir, e.Bin, e.Driver, e.Images, e.Archive
	env.address, env.runcRoot = e.Address, e.RuncRoot
	env.run = e.Dir[max(0, len(e.Dir)-4):] // the end of the temporary name: random digits
	fmt.Fprintf(os.Stderr, "e2e: containerd pid %d on %s\n", e.Pid, env.address)
	code := m.Run()
	if err := e.Close(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
	}
	return code
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
