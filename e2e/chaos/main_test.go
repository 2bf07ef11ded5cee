package chaos

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/warren/reconciler/e2e/binbuild"
	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/pkg/runtime"
)

var (
	flagIterations = flag.Int("chaos.iterations", 1, "faults injected per kind (at least; see -chaos.duration)")
	flagDuration   = flag.Duration("chaos.duration", 0, "keep injecting each kind of fault until this share of time has passed (the total is split evenly over the kinds); 0: iterations only")
	flagSeed       = flag.Int64("chaos.seed", 0, "random seed (0: from the clock); printed, so that a run can be replayed")
	flagReport     = flag.String("chaos.report", "", "also write the table to this file (markdown)")
	flagConverge   = flag.Duration("chaos.converge", 90*time.Second, "longest wait for convergence after a fault before the remaining violations count")
)

// env is what TestMain prepared for every test.
var env struct {
	dir     string // short temporary directory (unix socket paths are limited)
	bin     string // the reconciler binary
	images  string // directory holding the test image archive
	archive string
	address string // the shared containerd's socket
	seed    int64
	run     string // unique to this run of the suite, for namespaces
	skip    string // why the suite cannot run here (never set under CI=true)
}

// kinds are the fault kinds, in table order.
var kinds = []string{"kill", "containerd", "ctr", "image", "flood", "disk"}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	env.seed = *flagSeed
	if env.seed == 0 {
		env.seed = time.Now().UnixNano() % 1_000_000_007
	}
	ci := os.Getenv("CI") == "true"
	if why := missing(); why != "" {
		if ci {
			fmt.Fprintf(os.Stderr, "chaos: CI=true and %s: the chaos suite must run in CI\n", why)
			return 1
		}
		env.skip = why
		return m.Run()
	}
	fmt.Fprintf(os.Stderr, "chaos: seed %d (replay with CHAOS_SEED=%d, or -chaos.seed=%d)\n", env.seed, env.seed, env.seed)
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rcch")
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	env.dir = dir
	env.run = strings.TrimPrefix(filepath.Base(dir), "rcch")
	defer os.RemoveAll(dir)
	env.bin = filepath.Join(dir, "reconciler")
	if err := binbuild.Reconciler(ctx, env.bin, filepath.Join(dir, "log-driver"), ""); err != nil {
		fmt.Fprintf(os.Stderr, "chaos: build reconciler: %v\n", err)
		return 1
	}
	env.images = filepath.Join(dir, "images")
	env.archive = filepath.Join(env.images, "testapp.tar")
	if err := imagebuild.Build(ctx, "../testapp", imagebuild.DefaultRef, env.archive, dir); err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	log := logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, nil))
	mc, err := runtime.StartManaged(ctx, filepath.Join(dir, "ctrd"), "containerd", log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		return 1
	}
	env.address = mc.Address()
	code := m.Run()
	if err := mc.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "chaos: stop containerd:", err)
	}
	table := stats.table()
	fmt.Fprintf(os.Stderr, "\nchaos: seed %d\n%s", env.seed, table)
	if *flagReport != "" {
		if err := os.WriteFile(*flagReport, []byte(table), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
		}
	}
	if code == 0 && stats.violations() > 0 {
		code = 1
	}
	return code
}

// missing says what this machine lacks to run the suite, or "".
func missing() string {
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	for _, b := range []string{"containerd", "runc", "containerd-shim-runc-v2", "ctr"} {
		if _, err := exec.LookPath(b); err != nil {
			return b + " not found on PATH (apt-get install -y containerd runc)"
		}
	}
	return ""
}

func requireEnv(t *testing.T) {
	t.Helper()
	if env.skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but the chaos suite cannot run: %s", env.skip)
		}
		t.Skip("outside CI (CI=true fails above): the chaos suite needs root, containerd, runc and ctr: " + env.skip)
	}
}
