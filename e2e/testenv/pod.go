package testenv

import (
	"fmt"
	"strings"

	"github.com/warren/reconciler/e2e/imagebuild"
)

// Pod is the manifest of a Kubernetes Pod (apiVersion v1, kind Pod) named
// name, with the spec lines given under spec: (indented by two spaces, as
// Manifest's; a line's own further lines, such as PodContainer's, carry
// their whole indentation). Empty lines are left out.
func Pod(name string, spec ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n", name)
	for _, l := range spec {
		if l != "" {
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

// PodContainer is an item of a Pod's containers: or initContainers: list
// (a spec line of Pod, after the list's own line): a container named name
// of the test image (imagebuild.DefaultRef) with the fields given, one a
// line, each a line of YAML (flow style for anything nested).
func PodContainer(name string, fields ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n      image: %s", name, imagebuild.DefaultRef)
	for _, f := range fields {
		if f != "" {
			b.WriteString("\n      " + f)
		}
	}
	return b.String()
}

// LineOf is the 1-based number of the first line of content that contains
// s, 0 if none does: where a manifest error about that line points.
func LineOf(content, s string) int {
	for i, l := range strings.Split(content, "\n") {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	return 0
}
