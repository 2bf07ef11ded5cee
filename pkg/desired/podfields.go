package desired

import "strings"

// podfields_gen.go is written by tools/podfields, a module of its own that
// reads the field paths of a v1 Pod from k8s.io/api by reflection, so that the
// daemon need not link k8s.io/api (about 6 MB of binary and 2 MiB of RSS).
//go:generate go run -C ../../tools/podfields . -o ../../pkg/desired/podfields_gen.go

// KubernetesPodField reports whether path names a field of a Kubernetes v1
// Pod (k8s.io/api at podFieldsVersion), as the strict parser names fields:
// "spec.affinity", "spec.containers[0].lifecycle.postStart",
// "metadata.labels.app". It tells a field that is valid Kubernetes but not
// supported on the node from a field that does not exist at all.
//
// List indices are any number; a map field takes any key, dots included
// ("metadata.labels.app.kubernetes.io/name"). A list or a map is named with
// or without its items ("spec.containers", "spec.containers[2]"). Names are
// case-sensitive, as in Kubernetes' strict decoding. status.* paths are
// valid Pod fields and are reported so: a manifest should not carry status,
// and what to say about one is the caller's decision.
func KubernetesPodField(path string) bool {
	if path == "" || strings.Contains(path, "\n") {
		return false
	}
	p := normalizeIndices(path)
	// A field named whole, or a list or a map named without its items.
	if !strings.Contains(p, "{}") && (strings.Contains(podFields, "\n"+p+"\n") ||
		strings.Contains(podFields, "\n"+p+"[]") ||
		strings.Contains(podFields, "\n"+p+"{}")) {
		return true
	}
	// A map key: head is a map field and the rest is its key, whatever
	// it holds (map values have no fields in a v1 Pod).
	for i := 0; i < len(p); i++ {
		if p[i] != '.' {
			continue
		}
		head := p[:i]
		if strings.Contains(head, "{}") || !strings.Contains(podFields, "\n"+head) {
			return false // no longer head is a field either
		}
		if strings.Contains(podFields, "\n"+head+"{}\n") {
			return true
		}
	}
	return false
}

// normalizeIndices writes every list index ("[3]") as "[]".
func normalizeIndices(path string) string {
	if !strings.Contains(path, "[") {
		return path
	}
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		b.WriteByte(path[i])
		if path[i] != '[' {
			continue
		}
		j := i + 1
		for j < len(path) && path[j] >= '0' && path[j] <= '9' {
			j++
		}
		if j > i+1 && j < len(path) && path[j] == ']' {
			i = j - 1 // the digits are dropped, ']' is written next
		}
	}
	return b.String()
}
