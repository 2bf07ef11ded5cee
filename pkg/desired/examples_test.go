package desired

import (
	"path/filepath"
	"testing"
)

// TestExampleManifests loads manifests/ (what `make run` starts) and
// manifests/examples/ as the daemon would: every file must be valid.
func TestExampleManifests(t *testing.T) {
	for dir, min := range map[string]int{"manifests": 1, "manifests/examples": 5} {
		st := NewLoader(filepath.Join("..", "..", filepath.FromSlash(dir))).Load()
		if st.Err != nil {
			t.Fatalf("%s: %v", dir, st.Err)
		}
		for f, err := range st.Broken {
			t.Errorf("%s/%s: %v", dir, f, err)
		}
		if len(st.Tasks) < min {
			t.Errorf("%s: %d tasks, want at least %d", dir, len(st.Tasks), min)
		}
	}
}
