package desired

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// Diff lists the fields in which two specs differ, one line each, sorted by
// path: `spec.env[MODE]: "dev" -> "prod"`. Lists of named things are keyed
// by name (env, secrets) and mounts by target, so that an insertion shows as
// one added entry, not as every later entry changed.
func Diff(old, new Spec) []string {
	a, b := flatSpec(old), flatSpec(new)
	var out []string
	for path, va := range a {
		vb, ok := b[path]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: %s -> (none)", path, va))
		case va != vb:
			out = append(out, fmt.Sprintf("%s: %s -> %s", path, va, vb))
		}
	}
	for path, vb := range b {
		if _, ok := a[path]; !ok {
			out = append(out, fmt.Sprintf("%s: (none) -> %s", path, vb))
		}
	}
	sort.Strings(out)
	return out
}

// DiffJSON is Diff with the old spec given as the JSON a container recorded.
func DiffJSON(old []byte, new Spec) ([]string, error) {
	var s Spec
	if err := json.Unmarshal(old, &s); err != nil {
		return nil, fmt.Errorf("read recorded spec: %w", err)
	}
	return Diff(s, new), nil
}

func flatSpec(s Spec) map[string]string {
	b, err := json.Marshal(s)
	if err != nil {
		return map[string]string{"spec": err.Error()}
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return map[string]string{"spec": err.Error()}
	}
	out := map[string]string{}
	flatten("spec", v, out)
	return out
}

func flatten(path string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			flatten(path+"."+k, e, out)
		}
	case []any:
		for i, e := range x {
			key := strconv.Itoa(i)
			if m, ok := e.(map[string]any); ok {
				for _, k := range []string{"name", "target"} {
					if s, ok := m[k].(string); ok {
						key = s
						break
					}
				}
			}
			flatten(path+"["+key+"]", e, out)
		}
	default:
		b, _ := json.Marshal(x)
		out[path] = string(b)
	}
}
