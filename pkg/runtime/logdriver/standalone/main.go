// Command standalone is the log driver as a program of its own: the same
// driver as the reconciler binary runs (package logdriver), without the
// daemon's packages to load and initialise. `make build` compiles it and
// embeds it in the reconciler binary, which writes it into its state
// directory at start and has the shims run it (cmd/reconciler/logdriver.go).
//
// It must never import more than package logdriver does: its start is on
// the path of every container start.
package main

import (
	"os"

	"github.com/warren/reconciler/pkg/runtime/logdriver"
)

func main() {
	// A shim's call is run by logdriver's init function; anything else
	// (--check, bad arguments) arrives here.
	os.Exit(logdriver.Main(os.Args[1:], os.Stderr))
}
