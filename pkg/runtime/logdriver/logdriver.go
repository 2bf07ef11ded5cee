package logdriver

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/warren/reconciler/pkg/runtime/logfile"
)

func init() {
	if IsCall(os.Args[1:]) {
		os.Exit(Main(os.Args[1:], os.Stderr))
	}
}

// IsCall reports whether args are those of a shim starting the binary as a
// log driver: the binary:// URI's query arrives as "key value" pairs in
// random order, one of them the marker.
func IsCall(args []string) bool {
	i := slices.Index(args, logfile.DriverMarker)
	return i >= 0 && i%2 == 0
}

// Exit codes of Main, as the reconciler's commands use them.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Main runs the log driver (`--dir DIR --max-size N --max-files N`, the
// marker among them or not) with the container's stdout on fd 3, its stderr
// on fd 4 and fd 5 to close when ready, and returns the exit code. With
// --check it returns 0 at once: the daemon's check that a driver it wrote
// out can run.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("log-driver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String(logfile.DriverMarker[2:], "", "marks a call by the shim (ignored)")
	dir := fs.String("dir", "", "log directory")
	maxSize := fs.Int64("max-size", logfile.DefaultMaxSize, "rotate at this many bytes")
	maxFiles := fs.Int("max-files", logfile.DefaultMaxFiles, "files kept, the current one included")
	check := fs.Bool("check", false, "exit 0 at once: this program runs")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if *check {
		return exitOK
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "reconciler log-driver: --dir is required")
		return exitUsage
	}
	if err := logfile.RunDriver(*dir, *maxSize, *maxFiles); err != nil {
		fmt.Fprintln(stderr, "reconciler log-driver:", err)
		return exitFailure
	}
	return exitOK
}
