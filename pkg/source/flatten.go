package source

import (
	"errors"
	"fmt"
	"path"
	"sort"

	"github.com/warren/reconciler/pkg/desired"
)

// entry is one entry at the top level of a directory of the commit.
type entry struct {
	Name    string
	Regular bool // a file (executable or not); not a directory, symlink or submodule
	Size    int64
}

// errNoPath is the error of a selected path that the commit lacks.
var errNoPath = errors.New("no such directory in the commit")

// selected is one file of the generated tree and where it comes from.
type selected struct {
	Name string // its name in the generated tree
	From string // its path in the repository
	Size int64
}

// selectFiles decides what the generated tree of a commit holds: the
// manifests ([desired.Ignored] false) that are files at the top level of
// each path, as the loader reads a directory. list returns the entries of
// a directory of the commit, or an error wrapping errNoPath. Two manifests
// with one name across the paths, a missing path and more than maxSize
// bytes in all are errors: nothing of the commit is then applied.
func selectFiles(paths []string, maxSize int64, list func(dir string) ([]entry, error)) ([]selected, error) {
	byName := map[string]selected{}
	var total int64
	var errs []error
	for _, dir := range paths {
		entries, err := list(dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("path %s: %w", dir, err))
			continue
		}
		for _, e := range entries {
			if !e.Regular || desired.Ignored(e.Name) {
				continue
			}
			from := path.Join(dir, e.Name)
			if prev, ok := byName[e.Name]; ok {
				errs = append(errs, fmt.Errorf("two manifests named %s: %s and %s (the selected paths are flattened into one directory)", e.Name, prev.From, from))
				continue
			}
			total += e.Size
			byName[e.Name] = selected{Name: e.Name, From: from, Size: e.Size}
		}
	}
	if total > maxSize {
		errs = append(errs, fmt.Errorf("the selected manifests are %d bytes, more than the size limit of %d (--git-max-size)", total, maxSize))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := make([]selected, 0, len(byName))
	for _, s := range byName {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
