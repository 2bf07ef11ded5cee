package source

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// TreeCommit returns the commit a generated tree was written from, read
// from the tree's own metadata file, or "" when dir is not such a tree.
// The loader calls it with the tree it reads, so that a task names the
// commit of the very files it was read from, even while a swap is under
// way.
func TreeCommit(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return ""
	}
	var m meta
	if json.Unmarshal(b, &m) != nil {
		return ""
	}
	return m.Commit
}
