package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/reconcile"
)

// Exit code of `plan` when changes are pending (terraform's -detailed-exitcode).
const exitPending = 2

// planOutput is `plan -o json`.
type planOutput struct {
	InSync    bool                 `json:"inSync"`
	Actions   []planAction         `json:"actions"`
	Unmanaged []observed.Unmanaged `json:"unmanaged"`
	Warnings  []string             `json:"warnings"`
}

type planAction struct {
	Op          reconcile.Op `json:"op"`
	Task        string       `json:"task"`
	ContainerID string       `json:"containerID"`
	Reason      string       `json:"reason"`
	NotBefore   time.Time    `json:"notBefore,omitzero"`
	Diff        []string     `json:"diff,omitempty"`
	HealthCheck string       `json:"healthCheck,omitempty"` // create: which check the new container gets
}

// planCommand prints what `run` would do now. Exit 0: in sync; 2: changes
// pending; 1: error (bad flags included, so that 2 means one thing).
func (a *cli) planCommand() *cobra.Command {
	var c common
	var output string
	cmd := a.command("plan [flags] [-o text|json]", "print what run would do now, without doing it",
		"Prints what run would do now, without doing it. Exit 0: in sync; 2: changes pending; 1: error, bad flags or arguments included.\n"+
			"It takes the flags of run that say where things are, and never starts a containerd.",
		noArgs, func(cmd *cobra.Command, _ []string) int { return a.plan(cmd, &c, output) })
	cmd.Annotations = map[string]string{usageExit: "1"} // 2 means "changes pending"
	c.register(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	completeWords(cmd, "output", "text", "json")
	completeWords(cmd, "containerd", "auto", "external", "managed")
	completeWords(cmd, "log-format", "text", "json")
	return cmd
}

// plan is `plan` once its flags are parsed.
func (a *cli) plan(cmd *cobra.Command, c *common, output string) int {
	stdout, stderr := a.stdout, a.stderr
	if err := c.check(); err != nil {
		return a.usageError(cmd, err)
	}
	if err := oneOf("-o", output, "text", "json"); err != nil {
		return a.usageError(cmd, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	out := planOutput{Actions: []planAction{}, Unmanaged: []observed.Unmanaged{}, Warnings: []string{}}
	want := desired.NewLoader(c.manifests, c.loaderOptions()...).Load()
	if want.Err != nil {
		out.Warnings = append(out.Warnings, want.Err.Error()+" (nothing would be deleted)")
	}
	for _, err := range sortedErrors(want.Broken) {
		out.Warnings = append(out.Warnings, err.Error())
	}
	var have observed.State
	rt, _, err := c.connect(ctx, logr.Discard(), false)
	if err != nil {
		out.Warnings = append(out.Warnings, fmt.Sprintf("containerd not reachable (%v): planning against an empty node", err))
	} else {
		defer rt.Close()
		have, err = observed.Observe(ctx, rt, "")
		if err != nil {
			fmt.Fprintln(stderr, "reconciler plan:", err)
			return exitFailure
		}
	}
	// What the tasks others depend on are doing: the daemon knows their
	// health; without it, only what containerd shows.
	var daemon statusResponse
	if err := newAPIClient(c.stateDir, "").get(ctx, "/status", &daemon); err == nil {
		have.Peers = map[string]observed.Peer{}
		for _, st := range daemon.Tasks {
			have.Peers[st.Name] = reconcile.PeerOf(st)
		}
	} else {
		have.Peers = reconcile.PeersOf(want, have)
		if dependsOnAny(want) {
			out.Warnings = append(out.Warnings, "the daemon does not answer: a task with a health check is not taken as healthy by the tasks that depend on it")
		}
	}
	actions := reconcile.Plan(want, have, time.Now())
	out.InSync = !reconcile.Changes(actions)
	for _, a := range actions {
		pa := planAction{Op: a.Op, Task: a.Task, ContainerID: a.ContainerID, Reason: a.Reason, NotBefore: a.NotBefore, Diff: a.Diff}
		if a.Op == reconcile.OpCreate && a.Desired != nil {
			pa.HealthCheck = reconcile.HealthPlan(a.Desired)
		}
		out.Actions = append(out.Actions, pa)
	}
	out.Unmanaged = append(out.Unmanaged, have.Unmanaged...)

	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return exitFailure
		}
	} else {
		for _, w := range out.Warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
		fmt.Fprint(stdout, reconcile.Describe(actions))
		for _, u := range have.Unmanaged {
			fmt.Fprintf(stdout, "# unmanaged, left alone: %s (%s)\n", u.ID, u.Reason)
		}
	}
	if !out.InSync {
		return exitPending
	}
	return exitOK
}

func dependsOnAny(want desired.State) bool {
	for _, t := range want.Tasks {
		if len(t.Spec.DependsOn) > 0 {
			return true
		}
	}
	return false
}
