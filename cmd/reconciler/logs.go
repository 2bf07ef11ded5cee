package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// cmdLogs prints a task's stdout and stderr from the rotated files under
// the state directory. It needs neither containerd nor the daemon.
func cmdLogs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: reconciler logs TASK [-f] [--tail N] [--state-dir DIR]\n\nPrints the task's stdout and stderr (of its newest container), oldest line first.")
		fs.PrintDefaults()
	}
	follow := fs.Bool("f", false, "follow: keep printing new lines (across rotations and container replacements) until interrupted")
	tail := fs.Int("tail", -1, "print only the last N lines (-1: all)")
	stateDir := fs.String("state-dir", "/var/lib/reconciler", "state directory of the daemon (logs are in STATE_DIR/logs)")
	task, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if task == "" {
		fs.Usage()
		return exitUsage
	}
	dir := filepath.Join(*stateDir, "logs")
	id, err := logfile.ContainerForTask(dir, task)
	if errors.Is(err, os.ErrNotExist) || (err == nil && id == "") {
		fmt.Fprintf(stderr, "reconciler logs: no logs for task %q in %s\n", task, dir)
		return exitFailure
	}
	if err != nil {
		fmt.Fprintln(stderr, "reconciler logs:", err)
		return exitFailure
	}
	if !*follow {
		if err := logfile.Read(dir, id, *tail, stdout); err != nil {
			fmt.Fprintln(stderr, "reconciler logs:", err)
			return exitFailure
		}
		return exitOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := logfile.Follow(ctx, dir, task, id, *tail, stdout, 200*time.Millisecond); err != nil {
		fmt.Fprintln(stderr, "reconciler logs:", err)
		return exitFailure
	}
	return exitOK
}

// parseInterspersed parses flags before and after one positional argument
// (`logs web -f` and `logs -f web` both work) and returns it.
func parseInterspersed(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() == 0 {
		return "", nil
	}
	pos := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return "", errors.New("too many arguments")
	}
	return pos, nil
}

// isLogDriverCall reports whether a containerd shim started this binary as
// a log driver: the binary:// URI's query arrives as "key value" pairs in
// random order, one of them the marker.
func isLogDriverCall(args []string) bool {
	i := slices.Index(args, logfile.DriverMarker)
	return i >= 0 && i%2 == 0
}

// cmdLogDriver is the hidden log-driver mode (`reconciler log-driver --dir
// DIR --max-size N --max-files N`, started by the containerd shim with the
// container's stdout on fd 3, stderr on fd 4, and fd 5 to close when ready).
func cmdLogDriver(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("log-driver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String(logfile.DriverMarker[2:], "", "marks a call by the shim (ignored)")
	dir := fs.String("dir", "", "log directory")
	maxSize := fs.Int64("max-size", logfile.DefaultMaxSize, "rotate at this many bytes")
	maxFiles := fs.Int("max-files", logfile.DefaultMaxFiles, "files kept, the current one included")
	if err := fs.Parse(args); err != nil {
		return exitUsage
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
