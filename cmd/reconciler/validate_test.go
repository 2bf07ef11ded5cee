package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren/reconciler/pkg/desired"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.yaml", "apiVersion: warren/v1\nkind: Task\nmetadata: {name: Bad}\nspec:\n  image: nginx\n  resources: {memory: -1Gi}\n")
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.yaml", "b.yaml"} {
		if err := os.WriteFile(filepath.Join(sub, f), []byte("apiVersion: warren/v1\nkind: Task\nmetadata: {name: web}\nspec: {image: nginx}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cycle := filepath.Join(dir, "cycle")
	if err := os.Mkdir(cycle, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, dep := range map[string]string{"db": "app", "app": "db"} {
		m := "apiVersion: warren/v1\nkind: Task\nmetadata: {name: " + name + "}\nspec:\n  image: nginx\n  dependsOn:\n    - task: " + dep + "\n"
		if err := os.WriteFile(filepath.Join(cycle, name+".yaml"), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	examples := filepath.Join("..", "..", "manifests", "examples")
	// A Kubernetes Pod with a field that has no effect here: a warning.
	pod := write("pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: c\n      image: nginx:1.27\n      resources: {requests: {cpu: 100m}}\n")
	badPod := write("badpod.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  affinity: {}\n  containers: [{name: c, image: nginx:1.27}]\n")

	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string // substrings
	}{
		{name: "examples", args: []string{"validate", examples}, code: exitOK, stdout: []string{"ok: ", "task(s) in 8 file(s)"}},
		{name: "shipped manifests", args: []string{"validate", filepath.Join("..", "..", "manifests")}, code: exitOK, stdout: []string{"ok: 1 task(s) in 1 file(s)"}},
		{name: "errors with path, line and field", args: []string{"validate", bad}, code: exitFailure, stderr: []string{
			bad + ":3: metadata.name: must be a DNS-1123 label",
			bad + `:6: spec.resources.memory: quantities must be positive, got "-1Gi"`,
			"invalid: 2 error(s) in 1 of 1 file(s)",
		}},
		{name: "duplicate names across files", args: []string{"validate", sub}, code: exitFailure, stderr: []string{
			filepath.Join(sub, "a.yaml") + `:3: metadata.name: task "web" is also defined in b.yaml:3`,
			filepath.Join(sub, "b.yaml") + `:3: metadata.name: task "web" is also defined in a.yaml:3`,
		}},
		{name: "a dependency cycle across files", args: []string{"validate", cycle}, code: exitFailure, stderr: []string{
			filepath.Join(cycle, "app.yaml") + ":7: spec.dependsOn[0].task: dependency cycle: app (app.yaml) -> db (db.yaml) -> app",
			filepath.Join(cycle, "db.yaml") + ":7: spec.dependsOn[0].task: dependency cycle: app (app.yaml) -> db (db.yaml) -> app",
		}},
		{name: "a pod's warning changes no exit code", args: []string{"validate", pod}, code: exitOK,
			stdout: []string{"ok: 1 task(s) in 1 file(s)"},
			stderr: []string{pod + ":8: warning: spec.containers[0].resources.requests: ignored on this node"}},
		{name: "a Kubernetes field not supported here", args: []string{"validate", badPod}, code: exitFailure, stderr: []string{
			badPod + ":5: spec.affinity: valid in Kubernetes, not supported on this node",
		}},
		{name: "missing path", args: []string{"validate", filepath.Join(dir, "nope.yaml")}, code: exitFailure, stderr: []string{"nope.yaml: no such file or directory"}},
		{name: "flag after paths", args: []string{"validate", examples, "-o", "text"}, code: exitOK, stdout: []string{"ok: "}},
		{name: "bad output format", args: []string{"validate", "-o", "xml", examples}, code: exitUsage, stderr: []string{"-o must be text or json"}},
		{name: "no paths", args: []string{"validate", "-o", "json"}, code: exitUsage, stderr: []string{"Usage: reconciler validate"}},
		{name: "schema", args: []string{"schema"}, code: exitOK, stdout: []string{`"$schema": "https://json-schema.org/draft/2020-12/schema"`}},
		{name: "schema takes no arguments", args: []string{"schema", "x"}, code: exitUsage, stderr: []string{"Usage: reconciler schema"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(tc.args, &out, &errb)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
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

func TestValidateJSON(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: warren/v1\nkind: Task\nmetadata: {name: ok}\nspec: {image: nginx}\n---\napiVersion: warren/v1\nkind: Task\nmetadata: {name: b}\nspec: {image: nginx, network: overlay}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cycle := filepath.Join(dir, "cycle")
	if err := os.Mkdir(cycle, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, dep := range map[string]string{"db": "app", "app": "db"} {
		m := "apiVersion: warren/v1\nkind: Task\nmetadata: {name: " + name + "}\nspec:\n  image: nginx\n  dependsOn:\n    - task: " + dep + "\n"
		if err := os.WriteFile(filepath.Join(cycle, name+".yaml"), []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	examples := filepath.Join("..", "..", "manifests", "examples")
	var out, errb bytes.Buffer
	if code := runMain([]string{"validate", examples, bad, "-o", "json"}, &out, &errb); code != exitFailure {
		t.Fatalf("exit code %d, want %d; stderr %s", code, exitFailure, errb.String())
	}
	if errb.Len() != 0 {
		t.Errorf("stderr not empty with -o json: %s", errb.String())
	}
	var r validateReport
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("output is not the report: %v\n%s", err, out.String())
	}
	want := []validateError{{File: bad, Line: 9, Doc: 1, Field: "spec.network", Message: `must be one of host, none, bridge, got "overlay"`}}
	if len(r.Errors) != 1 || r.Errors[0] != want[0] {
		t.Errorf("errors = %+v, want %+v", r.Errors, want)
	}
	if s := r.Summary; s.Files != 9 || s.Invalid != 1 || s.Errors != 1 || s.Valid || s.Tasks < 5 {
		t.Errorf("summary = %+v", s)
	}

	// Valid: errors is an empty list, not null.
	out.Reset()
	if code := runMain([]string{"validate", "-o", "json", examples}, &out, &errb); code != exitOK {
		t.Fatalf("exit code %d; %s", code, errb.String())
	}
	if !strings.Contains(out.String(), `"errors": []`) || !strings.Contains(out.String(), `"valid": true`) {
		t.Errorf("output: %s", out.String())
	}

	// Warnings of a directory, with their positions.
	pods := filepath.Join(dir, "pods")
	if err := os.Mkdir(pods, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pods, "p.yaml"), []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - name: c\n      image: nginx:1.27\n      resources: {requests: {cpu: 100m}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := runMain([]string{"validate", "-o", "json", pods}, &out, &errb); code != exitOK {
		t.Fatalf("exit code %d; %s", code, errb.String())
	}
	r = validateReport{}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	w := validateError{File: filepath.Join(pods, "p.yaml"), Line: 8, Field: "spec.containers[0].resources.requests",
		Message: "ignored on this node: requests reserve capacity for a cluster's scheduler, and there is none here; the limits are applied"}
	if len(r.Warnings) != 1 || r.Warnings[0] != w || r.Summary.Warnings != 1 || !r.Summary.Valid {
		t.Errorf("warnings = %+v, summary %+v, want [%+v]", r.Warnings, r.Summary, w)
	}
}

func TestSchemaCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runMain([]string{"schema"}, &out, &errb); code != exitOK {
		t.Fatalf("exit code %d: %s", code, errb.String())
	}
	if !bytes.Equal(out.Bytes(), desired.JSONSchema()) {
		t.Errorf("schema output differs from desired.JSONSchema()")
	}
	committed, err := os.ReadFile(filepath.Join("..", "..", "manifests", "task.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), committed) {
		t.Errorf("manifests/task.schema.json is stale: run `make schema`")
	}
}
