package desired

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestKubernetesPodField(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{
		// Fields, at every depth.
		{"apiVersion", true},
		{"kind", true},
		{"metadata", true},
		{"metadata.name", true},
		{"metadata.creationTimestamp", true}, // metav1.Time: a leaf
		{"spec", true},
		{"spec.affinity", true},
		{"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[1].key", true},
		{"spec.nodeName", true},
		{"spec.hostNetwork", true},
		{"spec.containers[0].imagePullPolicy", true},
		{"spec.containers[3].lifecycle.postStart.exec.command", true},
		{"spec.containers[3].lifecycle.postStart.exec.command[2]", true},
		{"spec.containers[0].lifecycle.stopSignal", true},
		{"spec.containers[0].livenessProbe.httpGet.port", true}, // intstr.IntOrString: a leaf
		{"spec.containers[0].resources.limits.cpu", true},       // a map key, resource.Quantity
		{"spec.initContainers[12].env[0].valueFrom.secretKeyRef.name", true},
		{"spec.ephemeralContainers[0].targetContainerName", true}, // EphemeralContainerCommon is inlined
		{"spec.ephemeralContainers[0].image", true},
		{"spec.volumes[0].emptyDir.medium", true},
		{"spec.volumes[0].emptyDir.sizeLimit", true},

		// Lists and maps, named with or without their items.
		{"spec.containers", true},
		{"spec.containers[0]", true},
		{"spec.containers[0].args", true},
		{"spec.containers[0].args[10]", true},
		{"metadata.labels", true},
		{"metadata.labels.app", true},
		{"metadata.labels.app.kubernetes.io/name", true},
		{"metadata.annotations.example.com/a[0]", true},
		{"spec.nodeSelector.kubernetes.io/os", true},
		{"spec.volumes[0].csi.volumeAttributes.x", true},

		// status is a part of a v1 Pod; KubernetesPodField says so.
		{"status", true},
		{"status.phase", true},
		{"status.containerStatuses[0].state.running.startedAt", true},

		// Not fields.
		{"", false},
		{"spec.affinitty", false},
		{"spec.containers[0].imag", false},
		{"spec.containers[0].image.name", false}, // below a leaf
		{"spec.containers.name", false},          // a list item without its index
		{"spec.NodeName", false},                 // case-sensitive
		{"spec.nodeName[0]", false},              // not a list
		{"spec.nodeSelector{}", false},           // the list's notation is not a field name
		{"metadata.labels{}", false},
		{"spec.containers[].name", true}, // but "[]" is what an index normalizes to
		{"metadata.labels.", true},       // an empty key: YAML allows it
		{"metadata.label.app", false},
		{"spec.affinity\nspec.nodeName", false},
		{"nodeName", false},
		{"spec.containers[x].name", false},
		{"spec.containers[0.name", false},
		{"replicas", false},
		{"spec.template", false}, // a Deployment's, not a Pod's
	} {
		if got := KubernetesPodField(tc.path); got != tc.want {
			t.Errorf("KubernetesPodField(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
}

func TestNormalizeIndices(t *testing.T) {
	for in, want := range map[string]string{
		"spec":                          "spec",
		"spec.containers[0].args[12]":   "spec.containers[].args[]",
		"spec.containers[].args[12]":    "spec.containers[].args[]",
		"spec.containers[x]":            "spec.containers[x]",
		"spec.containers[0":             "spec.containers[0",
		"a[0][1]":                       "a[][]",
		"metadata.labels.a[1]b[2].c[3]": "metadata.labels.a[]b[].c[]",
	} {
		if got := normalizeIndices(in); got != want {
			t.Errorf("normalizeIndices(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPodFieldsList checks the form of the generated list: sorted, no
// duplicates, framed by line breaks, every parent of a path present.
func TestPodFieldsList(t *testing.T) {
	if !strings.HasPrefix(podFields, "\n") || !strings.HasSuffix(podFields, "\n") {
		t.Fatal("podFields must start and end with a line break")
	}
	lines := strings.Split(strings.Trim(podFields, "\n"), "\n")
	if len(lines) < 1000 {
		t.Fatalf("podFields has %d paths, want the whole of a v1 Pod", len(lines))
	}
	if !slices.IsSorted(lines) {
		t.Error("podFields is not sorted")
	}
	if len(slices.Compact(slices.Clone(lines))) != len(lines) {
		t.Error("podFields has duplicates")
	}
	for _, l := range lines {
		if !KubernetesPodField(l) && !strings.Contains(l, "{}") {
			t.Errorf("KubernetesPodField(%q) = false for a line of the list", l)
		}
		if i := strings.LastIndexByte(l, '.'); i > 0 {
			if p := l[:i]; !slices.Contains(lines, p) {
				t.Errorf("%q has no line for its parent %q", l, p)
			}
		}
	}
}

// TestPodFieldsVersion fails when tools/podfields moved to another
// k8s.io/api without podfields_gen.go being generated again.
func TestPodFieldsVersion(t *testing.T) {
	mod, err := os.ReadFile("../../tools/podfields/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?k8s\.io/api\s+(\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("tools/podfields/go.mod does not require k8s.io/api")
	}
	if got := string(m[1]); got != podFieldsVersion {
		t.Errorf("tools/podfields requires k8s.io/api %s, podfields_gen.go is of %s: run go generate -run podfields ./pkg/desired", got, podFieldsVersion)
	}
}
