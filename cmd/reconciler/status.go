package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os/signal"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"

	"github.com/warren/reconciler/pkg/health"
	"github.com/warren/reconciler/pkg/reconcile"
	"github.com/warren/reconciler/pkg/source"
)

// clientFlags are the flags of the commands that talk to a running daemon.
type clientFlags struct {
	stateDir  string
	api       string
	tokenFile string
}

func (c *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.stateDir, "state-dir", "/var/lib/reconciler", "the daemon's state directory (its API socket is STATE_DIR/reconciler.sock)")
	fs.StringVar(&c.api, "api", "", "the daemon's TCP API address (host:port), instead of the unix socket")
	registerTokenFile(fs, &c.tokenFile)
}

// client returns the client of the daemon's API these flags name.
func (c *clientFlags) client(cmd *cobra.Command) (*apiClient, error) {
	return newClient(cmd, c.stateDir, c.api, c.tokenFile)
}

func (a *cli) statusCommand() *cobra.Command {
	var cf clientFlags
	var output string
	var watch bool
	cmd := a.command("status [TASK|POD] [-o table|wide|json|yaml] [--watch]", "show the tasks as the running daemon knows them",
		"Shows each task's phase, health, restarts, age, image and last message, as the running daemon knows them.\n"+
			"-o wide adds each task's address, published ports, container and the git commit its spec came from.\n"+
			"The tasks of a Kubernetes Pod (POD-CONTAINER) show their pod in the POD column; with POD, the pod's tasks.",
		maxOneArg, func(cmd *cobra.Command, args []string) int { return a.status(cmd, args, &cf, output, watch) })
	cf.register(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, wide (with the address, published ports, container and commit), json or yaml")
	cmd.Flags().BoolVar(&watch, "watch", false, "print again at every change until interrupted")
	completeWords(cmd, "output", "table", "wide", "json", "yaml")
	cmd.ValidArgsFunction = completeTasks(&cf, 1)
	return cmd
}

// status is `status` once its flags are parsed.
func (a *cli) status(cmd *cobra.Command, names []string, cf *clientFlags, output string, watch bool) int {
	stdout, stderr := a.stdout, a.stderr
	if err := oneOf("-o", output, "table", "wide", "json", "yaml"); err != nil {
		return a.usageError(cmd, err)
	}
	client, err := cf.client(cmd)
	if err != nil {
		return a.usageError(cmd, err)
	}
	task := ""
	if len(names) == 1 {
		task = names[0]
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var last any
	for {
		var v any
		var tasks []reconcile.TaskStatus
		if task != "" {
			var st reconcile.TaskStatus
			err := client.get(ctx, "/status/"+task, &st)
			switch {
			case err == nil:
				v, tasks = st, []reconcile.TaskStatus{st}
			case errors.Is(err, errNoTask):
				// No task of that name: a pod's, then.
				var resp statusResponse
				if err := client.get(ctx, "/status", &resp); err != nil {
					fmt.Fprintln(stderr, "reconciler status:", err)
					return exitFailure
				}
				p, ok := podOf(resp.Tasks, task)
				if !ok {
					fmt.Fprintf(stderr, "reconciler status: no task or pod %q\n", task)
					return exitFailure
				}
				tasks = p.tasks()
				v = podStatusOutput{Pod: task, Tasks: tasks}
			default:
				fmt.Fprintln(stderr, "reconciler status:", err)
				return exitFailure
			}
		} else {
			var resp statusResponse
			if err := client.get(ctx, "/status", &resp); err != nil {
				fmt.Fprintln(stderr, "reconciler status:", err)
				return exitFailure
			}
			v, tasks = resp, resp.Tasks
		}
		if !reflect.DeepEqual(v, last) {
			if last != nil {
				fmt.Fprintln(stdout)
			}
			if err := printStatus(stdout, output, v, tasks, time.Now()); err != nil {
				fmt.Fprintln(stderr, "reconciler status:", err)
				return exitFailure
			}
			last = v
		}
		if !watch {
			return exitOK
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printStatus(w io.Writer, format string, v any, tasks []reconcile.TaskStatus, now time.Time) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	wide := format == "wide"
	// The POD column: always in wide, in the table when a task is a pod's.
	pods := wide || anyPod(tasks)
	pod := func(st reconcile.TaskStatus) string {
		if pods {
			return podColumn(st) + "\t"
		}
		return ""
	}
	header := "NAME\t"
	if pods {
		header += "POD\t"
	}
	if wide {
		fmt.Fprintln(tw, header+"PHASE\tHEALTH\tRESTARTS\tAGE\tIP\tPORTS\tCONTAINER\tCOMMIT\tIMAGE\tMESSAGE")
	} else {
		fmt.Fprintln(tw, header+"PHASE\tHEALTH\tRESTARTS\tAGE\tIMAGE\tMESSAGE")
	}
	for _, st := range tasks {
		age := "-"
		if !st.StartedAt.IsZero() {
			age = humanAge(now.Sub(st.StartedAt))
		}
		if wide {
			fmt.Fprintf(tw, "%s\t%s%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", st.Name, pod(st), st.Phase, healthColumn(st.Health), st.Restarts, age,
				orDash(st.IP), orDash(st.Ports), st.ContainerID, orDash(shortHash(st.Revision)), st.Image, oneLine(st.Message))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s%s\t%s\t%d\t%s\t%s\t%s\n", st.Name, pod(st), st.Phase, healthColumn(st.Health), st.Restarts, age, st.Image, oneLine(st.Message))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if resp, ok := v.(statusResponse); ok {
		if src := resp.Source; src != nil {
			printSource(w, src, now)
		}
		// What keeps the directory from being applied, under the table.
		if m := resp.Manifests.Error; m != "" {
			fmt.Fprintf(w, "\nmanifests: %s\n", m)
		}
		files := slices.Sorted(maps.Keys(resp.Manifests.Broken))
		if len(files) > 0 {
			fmt.Fprintln(w, "\nbroken manifest files (their tasks keep their last valid spec):")
		}
		for _, f := range files {
			fmt.Fprintf(w, "  %s\n", strings.ReplaceAll(resp.Manifests.Broken[f], "\n", "\n  "))
		}
	}
	return nil
}

// printSource writes the git source's lines under the table.
func printSource(w io.Writer, src *source.Status, now time.Time) {
	ref := src.Ref
	if ref == "" {
		ref = "HEAD"
	}
	fmt.Fprintf(w, "\ngit: %s %s, paths %s\n", src.URL, ref, strings.Join(src.Paths, ","))
	if src.Commit == "" {
		fmt.Fprintln(w, "  applied: nothing yet")
	} else {
		fmt.Fprintf(w, "  applied: %s (%s), %s ago\n", src.Commit, src.RefName, humanAge(now.Sub(src.AppliedAt)))
		if !src.CommittedAt.IsZero() {
			fmt.Fprintf(w, "  committed: %s\n", src.CommittedAt.Local().Format(time.RFC3339))
		}
	}
	if src.Signer != "" {
		fmt.Fprintf(w, "  signed by: %s\n", src.Signer)
	}
	switch {
	case src.LastFetch.IsZero():
		fmt.Fprintln(w, "  last fetch: not yet")
	case src.LastError != "":
		fmt.Fprintf(w, "  last fetch: %s ago, failed (%d in a row; the applied tree stays): %s\n", humanAge(now.Sub(src.LastFetch)), src.Failures, strings.ReplaceAll(src.LastError, "\n", "; "))
	default:
		fmt.Fprintf(w, "  last fetch: %s ago, ok\n", humanAge(now.Sub(src.LastFetch)))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// healthColumn is the HEALTH of the table: the state, with the failing
// streak when there is one; "-" without a health check.
func healthColumn(h reconcile.HealthStatus) string {
	switch {
	case h.State == "":
		return "-"
	case h.Streak > 0 && h.State != "unhealthy":
		return fmt.Sprintf("%s (%d failing)", h.State, h.Streak)
	}
	return string(h.State)
}

// humanAge writes a duration the way kubectl does: 45s, 3m12s, 5h4m, 2d3h.
func humanAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

// waitCondition is what `wait --for` accepts.
// A task whose changed spec is rolling out is neither running nor healthy
// for wait until the new container has proved itself: the rollout may
// still roll back.
var waitConditions = map[string]func(st reconcile.TaskStatus, found bool) bool{
	"running": func(st reconcile.TaskStatus, found bool) bool {
		return found && st.Phase == reconcile.PhaseRunning && st.Rollout.From == ""
	},
	"completed": func(st reconcile.TaskStatus, found bool) bool { return found && st.Phase == reconcile.PhaseCompleted },
	"deleted":   func(_ reconcile.TaskStatus, found bool) bool { return !found },
	// A task without a health check is healthy once it runs, as its
	// dependents see it (spec.dependsOn condition healthy).
	"healthy": func(st reconcile.TaskStatus, found bool) bool {
		return found && st.Phase == reconcile.PhaseRunning && st.Rollout.From == "" && (st.Health.State == "" || st.Health.State == health.Healthy)
	},
}

func (a *cli) waitCommand() *cobra.Command {
	var cf clientFlags
	var forCond string
	var timeout time.Duration
	cmd := a.command("wait TASK|POD... --for=running|healthy|completed|deleted [--timeout 60s]", "wait until the daemon reports the tasks so",
		"Waits until every TASK reaches the condition. Exit 0 when they all did; 1 with their last status when the timeout passed.\n"+
			"A POD (a Kubernetes Pod's name) waits for each of its containers to reach it and for its init containers to complete.",
		someArgs("TASK|POD"), func(cmd *cobra.Command, args []string) int { return a.wait(cmd, args, &cf, forCond, timeout) })
	cf.register(cmd.Flags())
	cmd.Flags().StringVar(&forCond, "for", "running", "condition: running, healthy (running and its health check passed; running, without one), completed or deleted")
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "give up after this long")
	completeWords(cmd, "for", "running", "healthy", "completed", "deleted")
	cmd.ValidArgsFunction = completeTasks(&cf, -1)
	return cmd
}

// wait is `wait` once its flags are parsed.
func (a *cli) wait(cmd *cobra.Command, pending []string, cf *clientFlags, forCond string, timeout time.Duration) int {
	stdout, stderr := a.stdout, a.stderr
	cond, ok := waitConditions[forCond]
	if !ok {
		return a.usageError(cmd, oneOf("--for", forCond, "running", "healthy", "completed", "deleted"))
	}
	client, err := cf.client(cmd)
	if err != nil {
		return a.usageError(cmd, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	last := map[string]string{}
	for _, name := range pending {
		last[name] = name + ": no answer from the daemon"
	}
	for {
		var still []string
		var all *statusResponse // GET /status, once a round, for the pods
		for i, name := range pending {
			var st reconcile.TaskStatus
			err := client.get(ctx, "/status/"+name, &st)
			found := err == nil
			if errors.Is(err, errNoTask) {
				// No task of that name: a pod's, then.
				if all == nil {
					all = &statusResponse{}
					if lerr := client.get(ctx, "/status", all); lerr != nil {
						all, err = nil, lerr
					}
				}
				if all != nil {
					if p, ok := podOf(all.Tasks, name); ok {
						w := checkPod(p, forCond, cond)
						switch {
						case w.failed != "":
							fmt.Fprintln(stderr, w.failed)
							return exitFailure
						case w.met:
							fmt.Fprintf(stdout, "%s: %s (%s)\n", name, forCond, w.done)
						default:
							still = append(still, name)
							last[name] = "pod " + name + ": " + w.last
						}
						continue
					}
				}
			}
			if err != nil && !errors.Is(err, errNoTask) {
				if ctx.Err() != nil {
					// The timeout came during the request: this task and
					// those after it are still pending.
					still = append(still, pending[i:]...)
					break
				}
				fmt.Fprintln(stderr, "reconciler wait:", err)
				return exitFailure
			}
			if rb := st.RolledBack; found && rb.RefusedHash != "" && (forCond == "running" || forCond == "healthy") {
				// What the manifest asks for will not run: it was rolled back.
				fmt.Fprintln(stderr, rolledBackLine(st))
				return exitFailure
			}
			if cond(st, found) {
				fmt.Fprintf(stdout, "%s: %s\n", name, forCond)
				continue
			}
			still = append(still, name)
			if found {
				last[name] = fmt.Sprintf("%s: %s (%s)", name, st.Phase, oneLine(st.Message))
			} else {
				last[name] = name + ": not known to the daemon"
			}
		}
		pending = still
		if len(pending) == 0 {
			return exitOK
		}
		select {
		case <-ctx.Done():
			for _, name := range pending {
				fmt.Fprintf(stderr, "timed out waiting for %s to be %s; last status %s\n", name, forCond, last[name])
			}
			return exitFailure
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// rolledBackLine says why a task whose change was rolled back will not
// run what its manifest asks for.
func rolledBackLine(st reconcile.TaskStatus) string {
	rb := st.RolledBack
	return fmt.Sprintf("%s: the change to spec %s was rolled back at %s: %s; %s runs the last good spec",
		st.Name, rb.RefusedHash, rb.At.UTC().Format(time.RFC3339), rb.Reason, st.ContainerID)
}

// shortHash is the first 12 digits of a commit hash, as git shows it.
func shortHash(h string) string { return h[:min(12, len(h))] }
