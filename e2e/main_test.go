package e2e

import (
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
	ctrState string // that containerd's state directory
	skip     string // why the tests cannot run here (never set under CI=true)
	run      string // a suffix of this run's namespaces (see newNode)
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	suite := testenv.Suite{Name: "e2e", Prefix: "rce2e", TestApp: "./testapp"}
	return suite.Main(m, func(e *testenv.Env, skip string) {
		env.skip = skip
		if e == nil {
			return
		}
		env.dir, env.bin, env.driver, env.images, env.archive = e.Dir, e.Bin, e.Driver, e.Images, e.Archive
		env.address, env.runcRoot, env.ctrState = e.Address, e.RuncRoot, e.State
		env.run = e.Dir[max(0, len(e.Dir)-4):] // the end of the temporary name: random digits
	})
}

// requireEnv skips a test outside CI when the machine cannot run e2e tests.
// Under CI=true TestMain has already failed in that case.
func requireEnv(t *testing.T) {
	t.Helper()
	testenv.Require(t, "e2e", env.skip)
}
