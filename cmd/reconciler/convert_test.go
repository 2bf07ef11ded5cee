package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/warren/reconciler/pkg/desired"
)

// kubeDoc is what the tests read of a converted object.
type kubeDoc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec map[string]any `json:"spec"`
}

func TestConvertExamples(t *testing.T) {
	examples := filepath.Join("..", "..", "manifests", "examples")
	s := desired.NewLoader(examples, desired.InsecureDir()).Load()
	if s.Err != nil || len(s.Broken) > 0 {
		t.Fatalf("examples: %v %v", s.Err, s.Broken)
	}
	var names, pods []string // the Tasks, sorted; the Pods (not converted)
	for _, n := range slices.Sorted(maps.Keys(s.Tasks)) {
		if pod := s.Tasks[n].Spec.Pod; pod != "" {
			if !slices.Contains(pods, pod) {
				pods = append(pods, pod)
			}
			continue
		}
		names = append(names, n)
	}
	if len(pods) == 0 {
		t.Fatal("no Pod among the examples")
	}
	for _, n := range []string{"app", "migrate", "nginx", "web", "worker"} {
		if !slices.Contains(names, n) {
			t.Fatalf("no example task %s: %v", n, names)
		}
	}

	for _, kind := range []string{"Pod", "Deployment"} {
		t.Run(kind, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := runMain([]string{"convert", examples, "--kind", kind}, &out, &errb); code != exitOK {
				t.Fatalf("exit code %d, want 0\nstderr: %s", code, errb.String())
			}
			docs := strings.Split(out.String(), "\n---\n")
			if len(docs) != len(names) {
				t.Fatalf("%d documents, want %d:\n%s", len(docs), len(names), out.String())
			}
			for i, d := range docs {
				var obj kubeDoc
				if err := yaml.Unmarshal([]byte(d), &obj); err != nil {
					t.Fatalf("document %d is not YAML: %v\n%s", i, err, d)
				}
				wantAPI := map[string]string{"Pod": "v1", "Deployment": "apps/v1"}[kind]
				if obj.APIVersion != wantAPI || obj.Kind != kind || obj.Metadata.Name != names[i] || obj.Spec == nil {
					t.Errorf("document %d: %s %s %q, want %s %s %q", i, obj.APIVersion, obj.Kind, obj.Metadata.Name, wantAPI, kind, names[i])
				}
			}
			// Warnings: one per line, each naming its task and field.
			for _, want := range []string{
				"web: spec.mounts[0]: named volume web-data at /data has no Pod equivalent",
				"web: spec.resources.pids: no per-pod field in Kubernetes",
				"migrate: spec.restartBackoff: no Kubernetes equivalent",
				"worker: spec.secrets[0]: the node's file /etc/reconciler/secrets/api-token",
				"app: spec.dependsOn: no Kubernetes equivalent",
			} {
				if !strings.Contains(errb.String(), "\n"+want) && !strings.HasPrefix(errb.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, errb.String())
				}
			}
			for _, pod := range pods {
				if !strings.Contains(errb.String(), pod+": the Pod of ") {
					t.Errorf("stderr does not say Pod %s is not converted:\n%s", pod, errb.String())
				}
			}
			for _, l := range strings.Split(strings.TrimSpace(errb.String()), "\n") {
				task, _, _ := strings.Cut(l, ": ")
				if !slices.Contains(names, task) && !slices.Contains(pods, task) {
					t.Errorf("warning %q does not start with a task or Pod name", l)
				}
			}
		})
	}

	t.Run("deterministic", func(t *testing.T) {
		var a, b, errb bytes.Buffer
		runMain([]string{"convert", examples, "--kind", "Deployment"}, &a, &errb)
		runMain([]string{"convert", "--kind", "Deployment", examples}, &b, &errb)
		if a.String() != b.String() || a.Len() == 0 {
			t.Errorf("two runs differ")
		}
	})

	t.Run("json is a List", func(t *testing.T) {
		var out, errb bytes.Buffer
		if code := runMain([]string{"convert", examples, "-o", "json", "--kind", "deployment"}, &out, &errb); code != exitOK {
			t.Fatalf("exit code %d\n%s", code, errb.String())
		}
		var list struct {
			APIVersion string    `json:"apiVersion"`
			Kind       string    `json:"kind"`
			Items      []kubeDoc `json:"items"`
		}
		if err := json.Unmarshal(out.Bytes(), &list); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		if list.APIVersion != "v1" || list.Kind != "List" || len(list.Items) != len(names) {
			t.Fatalf("%s %s with %d items", list.APIVersion, list.Kind, len(list.Items))
		}
		for i, it := range list.Items {
			if it.Kind != "Deployment" || it.Metadata.Name != names[i] {
				t.Errorf("item %d: %s %s", i, it.Kind, it.Metadata.Name)
			}
		}
	})
}

func TestConvert(t *testing.T) {
	dir := t.TempDir()
	write := func(sub, name, content string) string {
		t.Helper()
		d := filepath.Join(dir, sub)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("broken", "good.yaml", "apiVersion: warren/v1\nkind: Task\nmetadata: {name: good}\nspec: {image: nginx:1.27}\n")
	write("broken", "bad.yaml", "apiVersion: warren/v1\nkind: Task\nmetadata: {name: bad}\nspec:\n  image: nginx\n  restartBackoff: {initial: soon}\n")
	mixed := write("mixed", "mixed.yaml", "apiVersion: warren/v1\nkind: Task\nmetadata: {name: task}\nspec: {image: nginx:1.27}\n---\n"+
		"apiVersion: v1\nkind: Pod\nmetadata: {name: pod}\nspec:\n  hostNetwork: true\n  containers:\n    - {name: a, image: nginx:1.27}\n    - {name: b, image: nginx:1.27}\n")
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string // substrings; stdout nil: must be empty
	}{
		{name: "a broken file converts nothing", args: []string{"convert", filepath.Join(dir, "broken")}, code: exitFailure, stderr: []string{
			filepath.Join(dir, "broken", "bad.yaml") + `:6: spec.restartBackoff.initial: must be a duration`,
			"reconciler convert: 1 error(s) in 1 file(s): nothing converted",
		}},
		{name: "one file", args: []string{"convert", good}, code: exitOK, stdout: []string{"kind: Pod\n", "name: good\n", "image: nginx:1.27\n"}, stderr: []string{"good: spec.network: host (the default) is hostNetwork: true"}},
		{name: "a Pod is not converted", args: []string{"convert", mixed}, code: exitOK, stdout: []string{"name: task\n"}, stderr: []string{"pod: the Pod of mixed.yaml is Kubernetes already; not converted"}},
		{name: "missing path", args: []string{"convert", filepath.Join(dir, "nope")}, code: exitFailure, stderr: []string{"nope: no such file or directory"}},
		{name: "no tasks", args: []string{"convert", empty}, code: exitOK},
		{name: "no tasks, json", args: []string{"convert", empty, "-o", "json"}, code: exitOK, stdout: []string{`"items": []`}},
		{name: "bad output format", args: []string{"convert", good, "-o", "xml"}, code: exitUsage, stderr: []string{`-o must be yaml or json, got "xml"`}},
		{name: "bad kind", args: []string{"convert", "--kind", "Job", good}, code: exitUsage, stderr: []string{`--kind must be Pod or Deployment, got "Job"`}},
		{name: "unknown flag", args: []string{"convert", good, "--replicas", "3"}, code: exitUsage, stderr: []string{"unknown flag: --replicas"}},
		{name: "no path", args: []string{"convert"}, code: exitUsage, stderr: []string{"Usage: reconciler convert PATH"}},
		{name: "two paths", args: []string{"convert", good, empty}, code: exitUsage, stderr: []string{"Usage: reconciler convert PATH"}},
		{name: "help", args: []string{"convert", "-h"}, code: exitOK, stdout: []string{"Usage: reconciler convert PATH", "--kind Deployment"}},
		{name: "listed in the usage", args: []string{"help"}, code: exitOK, stdout: []string{"reconciler convert  PATH"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(tc.args, &out, &errb)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
			if tc.stdout == nil && out.Len() > 0 {
				t.Errorf("stdout not empty: %s", out.String())
			}
			for _, s := range tc.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout %q lacks %q", out.String(), s)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(errb.String(), s) {
					t.Errorf("stderr %q lacks %q", errb.String(), s)
				}
			}
		})
	}
}
