package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warren/reconciler/pkg/desired"
)

const convertUsage = `Prints the Kubernetes equivalent of every task of PATH (a manifests
directory, read as the daemon reads it, or one file), sorted by name: a v1
Pod by default, or an apps/v1 Deployment of one replica wrapping it. Each
field with no Kubernetes equivalent, or whose equivalent needs something
of the cluster, is a warning on stderr, "TASK: FIELD: what became of it
and what to use instead". Needs no containerd.

The containers of a kind: Pod manifest are not converted: that document
is Kubernetes already (one line on stderr says so).

A broken file converts nothing: its errors are printed as validate prints
them and the command exits 1. Exits 0 when the conversion was printed
(with warnings or not), 2 on bad arguments.

  -o yaml      one YAML document per task, separated by "---" (default)
  -o json      a v1 List of them
  --kind Pod   a Pod per task (default)
  --kind Deployment
               a Deployment per task: stop-first is the Recreate strategy,
               start-first a RollingUpdate; minReady and progressDeadline
               are minReadySeconds and progressDeadlineSeconds
`

// kubeList is what -o json prints.
type kubeList struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Items      []any  `json:"items"`
}

func (a *cli) convertCommand() *cobra.Command {
	var output, kind string
	cmd := a.command("convert PATH [-o yaml|json] [--kind Pod|Deployment]", "print the tasks as Kubernetes Pods or Deployments", convertUsage,
		oneArg("PATH"), func(cmd *cobra.Command, args []string) int { return a.convert(cmd, args[0], output, kind) })
	cmd.ValidArgsFunction = nil // files and directories
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	cmd.Flags().StringVar(&kind, "kind", desired.KubeKindPod, "what each task becomes: Pod or Deployment")
	completeWords(cmd, "output", "yaml", "json")
	completeWords(cmd, "kind", desired.KubeKindPod, desired.KubeKindDeployment)
	return cmd
}

// convert is `convert PATH` once its flags are parsed.
func (a *cli) convert(cmd *cobra.Command, path, output, kind string) int {
	stdout, stderr := a.stdout, a.stderr
	if err := oneOf("-o", output, "yaml", "json"); err != nil {
		return a.usageError(cmd, err)
	}
	if !strings.EqualFold(kind, desired.KubeKindPod) && !strings.EqualFold(kind, desired.KubeKindDeployment) {
		return a.usageError(cmd, fmt.Errorf("--kind must be Pod or Deployment, got %q", kind))
	}

	tasks, ok := convertLoad(path, stderr)
	if !ok {
		return exitFailure
	}
	var objs []any
	pods := map[string]bool{}
	for _, t := range tasks {
		if pod := t.Spec.Pod; pod != "" { // a container of a kind: Pod manifest
			if !pods[pod] {
				pods[pod] = true
				fmt.Fprintf(stderr, "%s: the Pod of %s is Kubernetes already; not converted: use that document as it is\n", pod, t.Source)
			}
			continue
		}
		obj, warnings, err := desired.ToKubernetes(t, kind)
		if err != nil { // the kind was checked above
			fmt.Fprintln(stderr, "reconciler convert:", err)
			return exitFailure
		}
		for _, w := range warnings {
			fmt.Fprintln(stderr, w.String())
		}
		objs = append(objs, obj)
	}

	if output == "json" {
		if objs == nil {
			objs = []any{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(kubeList{APIVersion: "v1", Kind: "List", Items: objs}); err != nil {
			fmt.Fprintln(stderr, "reconciler convert:", err)
			return exitFailure
		}
		return exitOK
	}
	for i, obj := range objs {
		b, err := desired.KubeYAML(obj)
		if err != nil {
			fmt.Fprintln(stderr, "reconciler convert:", err)
			return exitFailure
		}
		if i > 0 {
			fmt.Fprintln(stdout, "---")
		}
		if _, err := stdout.Write(b); err != nil {
			fmt.Fprintln(stderr, "reconciler convert:", err)
			return exitFailure
		}
	}
	return exitOK
}

// convertLoad reads the tasks of p, a directory or a file, sorted by name.
// Any broken file fails the whole conversion (a cluster given part of a
// directory would silently lack the rest): its errors go to stderr as
// validate prints them, and ok is false.
func convertLoad(p string, stderr io.Writer) (tasks []desired.Task, ok bool) {
	var r validateReport
	fi, err := os.Stat(p)
	switch {
	case err != nil:
		r.fail(p, err)
	case !fi.IsDir():
		data, err := readManifest(p)
		if err == nil {
			tasks, err = desired.Parse(p, data)
		}
		if err != nil {
			r.fail(p, err)
		}
	default:
		// Content only, as validate reads it: who may write the
		// directory is the daemon's concern.
		s := desired.NewLoader(p, desired.InsecureDir()).Load()
		if s.Err != nil {
			r.fail(p, s.Err)
			break
		}
		for _, name := range s.Files {
			if err := s.Broken[name]; err != nil {
				r.fail(filepath.Join(p, name), err)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(s.Tasks)) {
			tasks = append(tasks, s.Tasks[name])
		}
	}
	if len(r.Errors) > 0 {
		for _, e := range r.Errors {
			fmt.Fprintln(stderr, (&desired.Error{File: e.File, Line: e.Line, Doc: e.Doc, Field: e.Field, Msg: e.Message}).Error())
		}
		fmt.Fprintf(stderr, "reconciler convert: %d error(s) in %d file(s): nothing converted\n", len(r.Errors), r.Summary.Invalid)
		return nil, false
	}
	slices.SortFunc(tasks, func(a, b desired.Task) int { return strings.Compare(a.Metadata.Name, b.Metadata.Name) })
	return tasks, true
}
