// Package pkg_test holds the test of the layering that docs/layout.md
// promises: imports point one way, containerd only in pkg/runtime.
package pkg_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/warren/reconciler/"

// pkgInfo is one package of the module: its direct imports and all its
// dependencies (transitive), without tests.
type pkgInfo struct {
	path    string // relative to the module, e.g. pkg/reconcile
	imports []string
	deps    []string
}

func under(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }

func isContainerd(path string) bool { return strings.HasPrefix(path, "github.com/containerd/") }

// layeringViolations checks the rules:
//   - only pkg/runtime (and below) imports containerd;
//   - pkg/desired, pkg/observed, pkg/health and pkg/reconcile do not
//     depend on containerd, even through another package;
//   - pkg/clock depends on no other package of the module, and every
//     package may use it; besides it, pkg/desired depends on no other
//     package of the module, pkg/observed, pkg/health and pkg/source only
//     on pkg/desired, and pkg/reconcile on neither pkg/runtime nor cmd;
//   - nothing under pkg/ depends on cmd/.
func layeringViolations(pkgs []pkgInfo) []string {
	var out []string
	for _, p := range pkgs {
		for _, imp := range p.imports {
			if isContainerd(imp) && !under(p.path, "pkg/runtime") {
				out = append(out, fmt.Sprintf("%s imports %s: only pkg/runtime may import containerd", p.path, imp))
			}
		}
		for _, dep := range p.deps {
			local, ok := strings.CutPrefix(dep, module)
			switch {
			case isContainerd(dep) && (under(p.path, "pkg/desired") || under(p.path, "pkg/observed") || under(p.path, "pkg/health") || under(p.path, "pkg/reconcile") || under(p.path, "pkg/source")):
				out = append(out, fmt.Sprintf("%s depends on %s: it must know nothing of containerd", p.path, dep))
			case !ok:
			case under(local, "pkg/clock") && !under(p.path, "pkg/clock"):
			case under(p.path, "pkg/clock"):
				out = append(out, fmt.Sprintf("%s depends on %s: pkg/clock depends on no other package of the module", p.path, local))
			case under(p.path, "pkg/desired") && !under(local, "pkg/desired"):
				out = append(out, fmt.Sprintf("%s depends on %s: pkg/desired depends on no other package of the module", p.path, local))
			case under(p.path, "pkg/source") && !under(local, "pkg/desired") && !under(local, "pkg/source"):
				out = append(out, fmt.Sprintf("%s depends on %s: pkg/source depends only on pkg/desired", p.path, local))
			case under(p.path, "pkg/observed") && !under(local, "pkg/desired") && !under(local, "pkg/observed"):
				out = append(out, fmt.Sprintf("%s depends on %s: pkg/observed depends only on pkg/desired", p.path, local))
			case under(p.path, "pkg/health") && !under(local, "pkg/desired") && !under(local, "pkg/health"):
				out = append(out, fmt.Sprintf("%s depends on %s: pkg/health depends only on pkg/desired", p.path, local))
			case under(p.path, "pkg/reconcile") && under(local, "pkg/runtime"):
				out = append(out, fmt.Sprintf("%s depends on %s: the controller reaches the runtime through its own interfaces", p.path, local))
			case under(p.path, "pkg") && under(local, "cmd"):
				out = append(out, fmt.Sprintf("%s depends on %s: nothing under pkg/ depends on cmd/", p.path, local))
			}
		}
	}
	return out
}

func TestLayeringRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		pkg  pkgInfo
		want string // "" for none
	}{
		{"runtime imports containerd", pkgInfo{path: "pkg/runtime", imports: []string{"github.com/containerd/containerd/v2/client"}}, ""},
		{"runtime subpackage", pkgInfo{path: "pkg/runtime/logfile", imports: []string{"github.com/containerd/fifo"}}, ""},
		{"cmd imports containerd", pkgInfo{path: "cmd/reconciler", imports: []string{"github.com/containerd/errdefs"}}, "only pkg/runtime may import containerd"},
		{"cmd depends on containerd through runtime", pkgInfo{path: "cmd/reconciler", deps: []string{"github.com/containerd/errdefs", module + "pkg/runtime"}}, ""},
		{"reconcile through another package", pkgInfo{path: "pkg/reconcile", deps: []string{"github.com/containerd/errdefs"}}, "must know nothing of containerd"},
		{"reconcile on runtime", pkgInfo{path: "pkg/reconcile", deps: []string{module + "pkg/runtime"}}, "through its own interfaces"},
		{"reconcile on desired and observed", pkgInfo{path: "pkg/reconcile", deps: []string{module + "pkg/desired", module + "pkg/observed"}}, ""},
		{"desired on clock", pkgInfo{path: "pkg/desired", deps: []string{module + "pkg/clock"}}, ""},
		{"clock on desired", pkgInfo{path: "pkg/clock", deps: []string{module + "pkg/desired"}}, "pkg/clock depends on no other package"},
		{"desired on observed", pkgInfo{path: "pkg/desired", deps: []string{module + "pkg/observed"}}, "pkg/desired depends on no other package"},
		{"observed on desired", pkgInfo{path: "pkg/observed", deps: []string{module + "pkg/desired"}}, ""},
		{"observed on reconcile", pkgInfo{path: "pkg/observed", deps: []string{module + "pkg/reconcile"}}, "pkg/observed depends only on pkg/desired"},
		{"runtime on cmd", pkgInfo{path: "pkg/runtime", deps: []string{module + "cmd/reconciler"}}, "nothing under pkg/ depends on cmd/"},
		{"health on desired and clock", pkgInfo{path: "pkg/health", deps: []string{module + "pkg/desired", module + "pkg/clock"}}, ""},
		{"health on runtime", pkgInfo{path: "pkg/health", deps: []string{module + "pkg/runtime"}}, "pkg/health depends only on pkg/desired"},
		{"health through containerd", pkgInfo{path: "pkg/health", deps: []string{"github.com/containerd/errdefs"}}, "must know nothing of containerd"},
		{"reconcile on health", pkgInfo{path: "pkg/reconcile", deps: []string{module + "pkg/health"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := layeringViolations([]pkgInfo{tc.pkg})
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("violations %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("violations %q, want one with %q", got, tc.want)
			}
		})
	}
}

// TestLayering runs the rules on the module as it is.
func TestLayering(t *testing.T) {
	goBin := filepath.Join(goruntime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", "../pkg/...", "../cmd/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []pkgInfo
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) != 3 || !strings.HasPrefix(f[0], module) {
			t.Fatalf("go list: unexpected line %q", sc.Text())
		}
		pkgs = append(pkgs, pkgInfo{path: strings.TrimPrefix(f[0], module), imports: strings.Fields(f[1]), deps: strings.Fields(f[2])})
	}
	if !slices.ContainsFunc(pkgs, func(p pkgInfo) bool { return p.path == "pkg/runtime" }) || !slices.ContainsFunc(pkgs, func(p pkgInfo) bool { return p.path == "pkg/reconcile" }) {
		t.Fatalf("go list found %d packages, without pkg/runtime or pkg/reconcile", len(pkgs))
	}
	for _, v := range layeringViolations(pkgs) {
		t.Error(v)
	}
}
