package kubecompat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/warren/reconciler/pkg/desired"
)

// repo is the root of the repository, from this package's directory.
const repo = "../.."

// manifestFile is one manifest file the node reads.
type manifestFile struct {
	path string // relative to the repository
	data []byte
}

// manifestFiles returns every manifest file under dir (relative to the
// repository), recursively, as the loader names them (desired.Ignored).
func manifestFiles(t *testing.T, dir string) []manifestFile {
	t.Helper()
	var files []manifestFile
	root := filepath.Join(repo, dir)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || desired.Ignored(d.Name()) {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repo, p)
		if err != nil {
			return err
		}
		files = append(files, manifestFile{path: rel, data: data})
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifest file under %s", dir)
	}
	return files
}

// document is one YAML document of a file.
type document struct {
	index      int // 0-based, empty documents not counted
	apiVersion string
	kind       string
	name       string
	data       []byte
}

// documents splits a file into its YAML documents as the Kubernetes
// readers do, leaving out the empty ones.
func documents(data []byte) ([]document, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []document
	for {
		b, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(b, &head); err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		if head.APIVersion == "" && head.Kind == "" && len(bytes.TrimSpace(stripComments(b))) == 0 {
			continue
		}
		docs = append(docs, document{index: len(docs), apiVersion: head.APIVersion, kind: head.Kind, name: head.Metadata.Name, data: b})
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for l := range bytes.Lines(b) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
		}
	}
	return out
}

func isPod(d document) bool { return d.apiVersion == "v1" && d.kind == "Pod" }

// edit changes a Pod document decoded as JSON values (map[string]any,
// []any, string, float64, bool).
type edit func(doc map[string]any) error

// set sets the field at path (`spec.containers[0].ports[1].name`) to the
// value written in YAML, creating the maps on the way; an index one past
// the end of a list appends.
func set(path, value string) edit {
	return func(doc map[string]any) error {
		var v any
		if err := yaml.Unmarshal([]byte(value), &v); err != nil {
			return fmt.Errorf("value of %s: %w", path, err)
		}
		return walk(doc, path, v)
	}
}

// del removes the field at path (the last step must be a map key).
func del(path string) edit {
	return func(doc map[string]any) error {
		return walk(doc, path, deleted{})
	}
}

type deleted struct{}

// walk follows path in doc and replaces its last step by v (removes it
// when v is deleted{}).
func walk(doc map[string]any, path string, v any) error {
	type step struct {
		key string
		idx int // -1 for a map key
	}
	var steps []step
	for part := range strings.SplitSeq(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		steps = append(steps, step{key: key, idx: -1})
		for rest != "" {
			n, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(n)
			if !ok || err != nil {
				return fmt.Errorf("bad path %q", path)
			}
			steps = append(steps, step{idx: i})
			rest = strings.TrimPrefix(after, "[")
		}
	}
	var cur any = doc
	var setCur func(any)
	for i, s := range steps {
		last := i == len(steps)-1
		switch c := cur.(type) {
		case map[string]any:
			if s.idx >= 0 {
				return fmt.Errorf("%s: step %d is a map", path, i)
			}
			if last {
				if _, ok := v.(deleted); ok {
					delete(c, s.key)
				} else {
					c[s.key] = v
				}
				return nil
			}
			next, ok := c[s.key]
			if !ok || next == nil {
				if steps[i+1].idx >= 0 {
					next = []any{}
				} else {
					next = map[string]any{}
				}
				c[s.key] = next
			}
			key := s.key
			setCur = func(v any) { c[key] = v }
			cur = next
		case []any:
			if s.idx < 0 || s.idx > len(c) {
				return fmt.Errorf("%s: step %d: index out of range", path, i)
			}
			if s.idx == len(c) {
				if last || steps[i+1].idx >= 0 {
					c = append(c, nil)
				} else {
					c = append(c, map[string]any{})
				}
				setCur(c)
			}
			if last {
				c[s.idx] = v
				return nil
			}
			idx := s.idx
			setCur = func(v any) { c[idx] = v }
			cur = c[s.idx]
		default:
			return fmt.Errorf("%s: step %d is neither a map nor a list", path, i)
		}
	}
	return nil
}

// apply decodes a document, applies the edits and encodes it again.
func apply(data []byte, edits ...edit) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	for _, e := range edits {
		if err := e(doc); err != nil {
			return nil, err
		}
	}
	return yaml.Marshal(doc)
}
