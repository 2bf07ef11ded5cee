package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/warren/reconciler/pkg/reconcile"
	"github.com/warren/reconciler/pkg/runtime/logdriver"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// logsCommand prints a task's stdout and stderr from the rotated files
// under the state directory. It needs neither containerd nor the daemon
// for a task; a pod's containers are found through the daemon's status
// (see logsTask).
func (a *cli) logsCommand() *cobra.Command {
	var follow bool
	var tail int
	var container string
	var cf clientFlags
	cmd := a.command("logs TASK|POD [-c CONTAINER] [-f] [--tail N] [--state-dir DIR]", "print a task's stdout and stderr",
		"Prints the task's stdout and stderr (of its newest container), oldest line first.\n"+
			"For a Kubernetes Pod, -c CONTAINER prints task POD-CONTAINER's; without -c, a pod of one container (init containers aside) prints that one's.",
		oneArg("TASK|POD"), func(cmd *cobra.Command, args []string) int { return a.logs(cmd, args[0], container, follow, tail, &cf) })
	fs := cmd.Flags()
	fs.BoolVarP(&follow, "follow", "f", false, "follow: keep printing new lines (across rotations and container replacements) until interrupted")
	fs.IntVar(&tail, "tail", -1, "print only the last N lines (-1: all)")
	fs.StringVar(&cf.stateDir, "state-dir", "/var/lib/reconciler", "state directory of the daemon (logs are in STATE_DIR/logs, its API socket is STATE_DIR/reconciler.sock)")
	fs.StringVarP(&container, "container", "c", "", "a container of the pod POD: print the logs of task POD-CONTAINER")
	fs.StringVar(&cf.api, "api", "", "the daemon's TCP API address (host:port), instead of the unix socket; asked only to find a pod's containers")
	registerTokenFile(fs, &cf.tokenFile)
	cmd.ValidArgsFunction = completeTasks(&cf, 1)
	return cmd
}

// logs is `logs NAME` once its flags are parsed.
func (a *cli) logs(cmd *cobra.Command, name, container string, follow bool, tail int, cf *clientFlags) int {
	stdout, stderr := a.stdout, a.stderr
	client, err := cf.client(cmd)
	if err != nil {
		return a.usageError(cmd, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dir := filepath.Join(cf.stateDir, "logs")
	task, id, code := logsTask(ctx, client, dir, name, container, stderr)
	if code != exitOK {
		return code
	}
	if !follow {
		if err := logfile.Read(dir, id, tail, stdout); err != nil {
			fmt.Fprintln(stderr, "reconciler logs:", err)
			return exitFailure
		}
		return exitOK
	}
	if err := logfile.Follow(ctx, dir, task, id, tail, stdout, 200*time.Millisecond); err != nil {
		fmt.Fprintln(stderr, "reconciler logs:", err)
		return exitFailure
	}
	return exitOK
}

// logsTask finds the task whose logs `logs NAME [-c CONTAINER]` prints,
// and the container of it whose log file was written last.
//
// Without -c, a task NAME with log files is read at once, with no daemon
// asked: logs keeps working for tasks when the daemon is down. Otherwise
// pod membership comes from the daemon's status (TaskStatus.Pod and
// InitContainer), which alone knows it: a log file's name says the task
// (POD-CONTAINER) but not whether that is a pod's container, nor whether
// an init container. When the daemon does not answer, -c CONTAINER still
// reads task NAME-CONTAINER's files, by name, and NAME alone is only a
// task.
func logsTask(ctx context.Context, client *apiClient, dir, name, container string, stderr io.Writer) (task, id string, code int) {
	fail := func(code int, format string, args ...any) (string, string, int) {
		fmt.Fprintf(stderr, "reconciler logs: "+format+"\n", args...)
		return "", "", code
	}
	if container == "" {
		if id, err := logfile.ContainerForTask(dir, name); err == nil && id != "" {
			return name, id, exitOK
		} else if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(exitFailure, "%v", err)
		}
	}
	var resp statusResponse
	derr := client.get(ctx, "/status", &resp)
	p, isPod := podOf(resp.Tasks, name)
	isTask := slices.ContainsFunc(resp.Tasks, func(st reconcile.TaskStatus) bool { return st.Name == name })
	switch {
	case derr != nil && container == "":
		return fail(exitFailure, "no logs for task %q in %s (whether %s is a pod is known to the daemon only, which does not answer: %v)", name, dir, name, derr)
	case derr != nil:
		task = name + "-" + container // by name: the daemon cannot say whether it is a pod's
	case container == "" && isTask:
		return fail(exitFailure, "no logs for task %q in %s", name, dir)
	case container == "" && !isPod:
		return fail(exitFailure, "no logs for task %q in %s, and the daemon knows no task or pod of that name", name, dir)
	case container == "":
		if len(p.containers) != 1 {
			return fail(exitUsage, "a container name must be specified for pod %s, choose one of: %s", name, p.choices())
		}
		task = p.containers[0].Name
	case isPod:
		st, ok := p.task(container)
		if !ok {
			return fail(exitFailure, "container %q is not valid for pod %s, choose one of: %s", container, name, p.choices())
		}
		task = st.Name
	case isTask:
		return fail(exitUsage, "%s is a task, not a pod: -c names a container of a pod (reconciler logs %s)", name, name)
	default:
		return fail(exitFailure, "no pod %q: the daemon knows no task or pod of that name", name)
	}
	id, err := logfile.ContainerForTask(dir, task)
	switch {
	case (errors.Is(err, os.ErrNotExist) || (err == nil && id == "")) && derr != nil:
		return fail(exitFailure, "no logs for task %q (container %s of pod %s) in %s (the daemon does not answer: %v)", task, container, name, dir, derr)
	case errors.Is(err, os.ErrNotExist) || (err == nil && id == ""):
		return fail(exitFailure, "no logs for task %q (container %s of pod %s) in %s", task, containerName(name, task), name, dir)
	case err != nil:
		return fail(exitFailure, "%v", err)
	}
	return task, id, exitOK
}

// isLogDriverCall reports whether a containerd shim started this binary as
// a log driver. Such a call never gets here: the init function of
// pkg/runtime/logdriver runs the driver and exits before main starts.
func isLogDriverCall(args []string) bool { return logdriver.IsCall(args) }

// cmdLogDriver is the hidden log-driver mode (`reconciler log-driver --dir
// DIR --max-size N --max-files N`); see pkg/runtime/logdriver.
func cmdLogDriver(args []string, stderr io.Writer) int { return logdriver.Main(args, stderr) }
