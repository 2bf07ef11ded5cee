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
	"syscall"
	"time"

	"github.com/warren/reconciler/pkg/runtime/logdriver"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// cmdLogs prints a task's stdout and stderr from the rotated files under
// the state directory. It needs neither containerd nor the daemon.
func cmdLogs(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("logs", args, stdout, stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: reconciler logs TASK [-f] [--tail N] [--state-dir DIR]\n\nPrints the task's stdout and stderr (of its newest container), oldest line first.")
		fs.PrintDefaults()
	}
	follow := fs.Bool("f", false, "follow: keep printing new lines (across rotations and container replacements) until interrupted")
	tail := fs.Int("tail", -1, "print only the last N lines (-1: all)")
	stateDir := fs.String("state-dir", "/var/lib/reconciler", "state directory of the daemon (logs are in STATE_DIR/logs)")
	task, err := parseInterspersed(fs, args)
	if err != nil {
		return parseFailed(err, exitUsage)
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
// a log driver. Such a call never gets here: the init function of
// pkg/runtime/logdriver runs the driver and exits before main starts.
func isLogDriverCall(args []string) bool { return logdriver.IsCall(args) }

// cmdLogDriver is the hidden log-driver mode (`reconciler log-driver --dir
// DIR --max-size N --max-files N`); see pkg/runtime/logdriver.
func cmdLogDriver(args []string, stderr io.Writer) int { return logdriver.Main(args, stderr) }
