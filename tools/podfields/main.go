// Command podfields writes pkg/desired/podfields_gen.go: every field path of
// a Kubernetes v1 Pod, read by reflection from the k8s.io/api types, so that
// the reconciler can tell a field that is valid Kubernetes but not supported
// on the node from a field that does not exist, without linking k8s.io/api.
//
// It lives in its own module: the product's go.mod never requires
// k8s.io/api. Run it through `go generate ./pkg/desired` (see README.md).
//
// Notation, one path a line, sorted (byte order):
//
//	spec.nodeName                 a field
//	spec.containers[]             a list; its items' fields follow as
//	spec.containers[].name        ...
//	metadata.labels{}             a map; any key, written as metadata.labels.KEY
//
// A struct with custom JSON or text (un)marshalling (resource.Quantity,
// intstr.IntOrString, metav1.Time, FieldsV1) is one leaf; so is []byte, a
// base64 string. Embedded structs without a JSON name are flattened as
// encoding/json does, fields tagged "-" are skipped. status.* is included: it
// is part of a v1 Pod, and the consumer decides what to say about it.
package main

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"io"
	"os"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

const apiModule = "k8s.io/api"

func main() {
	out := flag.String("o", "", "file to write (default: standard output)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: podfields [-o FILE]")
		os.Exit(2)
	}
	if err := run(*out, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "podfields:", err)
		os.Exit(1)
	}
}

func run(out string, stdout io.Writer) error {
	version, err := apiVersion()
	if err != nil {
		return err
	}
	paths, err := podPaths()
	if err != nil {
		return err
	}
	src, err := generate(version, paths)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = stdout.Write(src)
		return err
	}
	return os.WriteFile(out, src, 0o644)
}

// apiVersion returns the version of k8s.io/api this binary was built with.
func apiVersion() (string, error) {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "", errors.New("no build information: build in module mode")
	}
	for _, d := range bi.Deps {
		if d.Path == apiModule {
			if d.Replace != nil {
				return "", fmt.Errorf("%s is replaced by %s: generate from a released version", apiModule, d.Replace.Path)
			}
			return d.Version, nil
		}
	}
	return "", fmt.Errorf("%s is not in the build information", apiModule)
}

// podPaths returns every field path of a v1 Pod, sorted.
func podPaths() ([]string, error) {
	w := &walker{visiting: map[reflect.Type]bool{}}
	w.walk(reflect.TypeFor[corev1.Pod](), "")
	slices.Sort(w.paths)
	return slices.Compact(w.paths), errors.Join(w.errs...)
}

type walker struct {
	paths    []string
	visiting map[reflect.Type]bool // types on the current path: a cycle stops there
	errs     []error
}

// walk adds the paths below a value of type t found at path (which is
// already added, or "" for the document).
func (w *walker) walk(t reflect.Type, path string) {
	t = deref(t)
	if isLeaf(t) {
		return
	}
	if w.visiting[t] {
		return
	}
	w.visiting[t] = true
	defer delete(w.visiting, t)
	switch t.Kind() {
	case reflect.Struct:
		for _, f := range jsonFields(t) {
			p := joinPath(path, f.name)
			p += containerSuffix(f.typ)
			w.paths = append(w.paths, p)
			w.walk(f.typ, p)
		}
	case reflect.Map:
		// Any key, and no paths below: a map whose values had fields
		// would make "a.KEY.b" ambiguous when keys hold dots, and
		// KubernetesPodField does not read "a{}.b". v1.Pod has none.
		if e := deref(t.Elem()); !isLeaf(e) {
			w.errs = append(w.errs, fmt.Errorf("%s: map values of type %s have fields: not supported", path, e))
		}
	case reflect.Slice, reflect.Array:
		// path ends in the suffixes of every list level
		// (containerSuffix): only the fields of the items remain.
		w.walk(t.Elem(), path)
	}
}

// containerSuffix returns "[]" for a list, "{}" for a map, repeated for a
// list of lists and so on, and "" for anything else.
func containerSuffix(t reflect.Type) string {
	var s strings.Builder
	for {
		t = deref(t)
		if isLeaf(t) {
			return s.String()
		}
		switch t.Kind() {
		case reflect.Slice, reflect.Array:
			s.WriteString("[]")
		case reflect.Map:
			s.WriteString("{}")
		default:
			return s.String()
		}
		t = t.Elem()
	}
}

var (
	jsonMarshaler   = reflect.TypeFor[json.Marshaler]()
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// isLeaf reports whether a value of type t (not a pointer) is written as one JSON value
// with no field paths below it.
func isLeaf(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	for _, i := range []reflect.Type{jsonMarshaler, jsonUnmarshaler, textMarshaler, textUnmarshaler} {
		if t.Implements(i) || pt.Implements(i) {
			return true
		}
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return false
	case reflect.Slice, reflect.Array:
		return t.Elem().Kind() == reflect.Uint8 // []byte: a base64 string
	}
	return true
}

type jsonField struct {
	name  string
	typ   reflect.Type
	depth int // of embedding
}

// jsonFields returns the JSON fields of struct type t as encoding/json sees
// them: embedded structs without a name flattened, fields tagged "-" and
// unexported fields skipped, and of two fields with one name the shallower
// kept (both dropped when equally deep, as encoding/json does).
func jsonFields(t reflect.Type) []jsonField {
	var all []jsonField
	var collect func(t reflect.Type, depth int, seen map[reflect.Type]bool)
	collect = func(t reflect.Type, depth int, seen map[reflect.Type]bool) {
		if seen[t] {
			return
		}
		seen[t] = true
		for f := range t.Fields() {
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			ft := deref(f.Type)
			if f.Anonymous && name == "" && ft.Kind() == reflect.Struct && !isLeaf(ft) {
				collect(ft, depth+1, seen)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			all = append(all, jsonField{name: name, typ: f.Type, depth: depth})
		}
	}
	collect(t, 0, map[reflect.Type]bool{})

	var out []jsonField
	for _, f := range all {
		shallowest, n := f.depth, 0
		for _, g := range all {
			if g.name == f.name {
				shallowest = min(shallowest, g.depth)
			}
		}
		for _, g := range all {
			if g.name == f.name && g.depth == shallowest {
				n++
			}
		}
		if f.depth == shallowest && n == 1 {
			out = append(out, f)
		}
	}
	return out
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// generate returns the Go source of podfields_gen.go.
func generate(version string, paths []string) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by tools/podfields; DO NOT EDIT.\n\n")
	fmt.Fprintf(&b, "// Generated from %s %s: %d field paths of a v1 Pod.\n\n", apiModule, version, len(paths))
	fmt.Fprintf(&b, "package desired\n\n")
	fmt.Fprintf(&b, "// podFieldsVersion is the version of %s that podFields was generated from.\n", apiModule)
	fmt.Fprintf(&b, "const podFieldsVersion = %q\n\n", version)
	fmt.Fprintf(&b, "// podFields is every field path of a v1 Pod, one a line, sorted, with a line\n")
	fmt.Fprintf(&b, "// break before the first and after the last. See [KubernetesPodField].\n")
	fmt.Fprintf(&b, "const podFields = `\n")
	for _, p := range paths {
		if strings.ContainsAny(p, "`\n") {
			return nil, fmt.Errorf("field path %q cannot be written in a raw string", p)
		}
		b.WriteString(p)
		b.WriteByte('\n')
	}
	b.WriteString("`\n")
	return format.Source(b.Bytes())
}
