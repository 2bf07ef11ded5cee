package chaos

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/e2e/testenv"
)

var (
	flagIterations = flag.Int("chaos.iterations", 1, "faults injected per kind (at least; see -chaos.duration)")
	flagDuration   = flag.Duration("chaos.duration", 0, "keep injecting each kind of fault until this share of time has passed (the total is split evenly over the kinds); 0: iterations only")
	flagSeed       = flag.Int64("chaos.seed", 0, "random seed (0: from the clock); printed, so that a run can be replayed")
	flagReport     = flag.String("chaos.report", "", "also write the table to this file (markdown)")
	flagConverge   = flag.Duration("chaos.converge", 90*time.Second, "longest wait for convergence after a fault before the remaining violations count")
	flagKinds      = flag.String("chaos.kinds", "", "comma-separated fault kinds to run (e.g. update,kill); empty: all. The checker's own tests always run")
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
var kinds = []string{"kill", "containerd", "ctr", "image", "flood", "disk", "health", "update", "netkill", "git"}

// selectedKinds are the kinds this run injects: -chaos.kinds, or all.
func selectedKinds() []string {
	if *flagKinds == "" {
		return kinds
	}
	var out []string
	for _, k := range strings.Split(*flagKinds, ",") {
		if k = strings.TrimSpace(k); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	env.seed = *flagSeed
	for _, k := range selectedKinds() {
		if !slices.Contains(kinds, k) {
			fmt.Fprintf(os.Stderr, "chaos: unknown kind %q in -chaos.kinds (kinds: %s)\n", k, strings.Join(kinds, ", "))
			return 2
		}
	}
	if env.seed == 0 {
		env.seed = time.Now().UnixNano() % 1_000_000_007
	}
	suite := testenv.Suite{Name: "chaos", Prefix: "rcch", TestApp: "../testapp", Needs: []string{"ctr"}}
	code := suite.Main(m, func(e *testenv.Env, skip string) {
		env.skip = skip
		if e == nil {
			return
		}
		fmt.Fprintf(os.Stderr, "chaos: seed %d (replay with CHAOS_SEED=%d, or -chaos.seed=%d)\n", env.seed, env.seed, env.seed)
		env.dir, env.bin, env.images, env.archive, env.address = e.Dir, e.Bin, e.Images, e.Archive, e.Address
		env.run = strings.TrimPrefix(filepath.Base(e.Dir), "rcch")
	})
	if env.dir == "" { // skipped, or not set up
		return code
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

// requireEnv skips a test outside CI when the machine cannot run the
// suite. Under CI=true TestMain has already failed in that case.
func requireEnv(t *testing.T) {
	t.Helper()
	testenv.Require(t, "the chaos suite", env.skip)
}
