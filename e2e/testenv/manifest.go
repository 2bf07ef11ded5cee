package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren/reconciler/e2e/imagebuild"
)

// Manifest is the manifest of a Task of the test image
// (imagebuild.DefaultRef) with the spec lines given, each under spec:
// (indented by two spaces; a line's own further lines, such as EnvSpec's,
// carry their whole indentation). Empty lines are left out.
func Manifest(name string, spec ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: warren/v1\nkind: Task\nmetadata:\n  name: %s\nspec:\n  image: %s\n", name, imagebuild.DefaultRef)
	for _, l := range spec {
		if l != "" {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

// EnvSpec is an env: spec line for Manifest setting the variables in
// order: EnvSpec("K1", "v1", "K2", "v2"). Without any, it is "".
func EnvSpec(kv ...string) string {
	if len(kv) < 2 {
		return ""
	}
	var b strings.Builder
	b.WriteString("env:")
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, "\n    - {name: %s, value: %q}", kv[i], kv[i+1])
	}
	return b.String()
}

// WithImage is a Manifest with ref as its image instead of the test image's.
func WithImage(manifest, ref string) string {
	return strings.Replace(manifest, "image: "+imagebuild.DefaultRef, "image: "+ref, 1)
}

// WriteFile writes content to dir/name the way docs/writing-manifests.md
// recommends: a temporary file renamed into place, mode 0644.
func WriteFile(t testing.TB, dir, name, content string) {
	t.Helper()
	WriteFileMode(t, dir, name, content, 0o644)
}

// WriteFileMode is WriteFile with the file's final mode (the umask does
// not apply) set before the rename: a watching daemon never sees the file
// with another mode or content.
func WriteFileMode(t testing.TB, dir, name, content string, mode os.FileMode) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}
