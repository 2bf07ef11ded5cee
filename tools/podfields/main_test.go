package main

import (
	"bytes"
	"os"
	"reflect"
	"slices"
	"testing"
)

// TestCommitted fails when pkg/desired/podfields_gen.go is not what the
// generator writes now: run `go generate -run podfields ./pkg/desired`.
func TestCommitted(t *testing.T) {
	var out bytes.Buffer
	if err := run("", &out); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../pkg/desired/podfields_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), committed) {
		t.Error("pkg/desired/podfields_gen.go is stale: run go generate -run podfields ./pkg/desired")
	}
}

func TestPodPaths(t *testing.T) {
	paths, err := podPaths()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"apiVersion", // TypeMeta, inlined
		"metadata.labels{}",
		"metadata.creationTimestamp",
		"spec.containers[]",
		"spec.containers[].lifecycle.postStart.exec.command[]",
		"spec.containers[].livenessProbe.httpGet.port",
		"spec.containers[].resources.limits{}",
		"spec.ephemeralContainers[].image", // EphemeralContainerCommon, inlined
		"status.phase",
	} {
		if !slices.Contains(paths, p) {
			t.Errorf("missing %q", p)
		}
	}
	for _, p := range []string{
		"metadata.creationTimestamp.Time",                     // custom JSON: a leaf
		"spec.containers[].livenessProbe.httpGet.port.intVal", // custom JSON: a leaf
		"spec.ephemeralContainers[].EphemeralContainerCommon",
		"TypeMeta",
	} {
		if slices.Contains(paths, p) {
			t.Errorf("unexpected %q", p)
		}
	}
}

type cycle struct {
	Name string  `json:"name,omitempty"`
	Next *cycle  `json:"next,omitempty"`
	Skip string  `json:"-"`
	Kids []cycle `json:"kids"`
	embedded
	Named embedded `json:"named"`
	Tags  map[string]string
	Bytes []byte `json:"bytes"`
}

type embedded struct {
	Inner string `json:"inner"`
	Name  string `json:"name"` // shadowed by cycle.Name
}

func TestWalk(t *testing.T) {
	w := &walker{visiting: map[reflect.Type]bool{}}
	w.walk(reflect.TypeFor[cycle](), "")
	slices.Sort(w.paths)
	want := []string{"Tags{}", "bytes", "inner", "kids[]", "name", "named", "named.inner", "named.name", "next"}
	if !slices.Equal(w.paths, want) || len(w.errs) > 0 {
		t.Errorf("paths = %q, errs = %v; want %q", w.paths, w.errs, want)
	}
}

func TestWalkMapOfStructs(t *testing.T) {
	type s struct {
		M map[string]embedded `json:"m"`
	}
	w := &walker{visiting: map[reflect.Type]bool{}}
	w.walk(reflect.TypeFor[s](), "")
	if len(w.errs) == 0 {
		t.Error("a map of structs: no error")
	}
}
