package source

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

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
// each path, as the loader reads a directory, and the age-encrypted secret
// files ("*.age", [ageFile]) beside them, which tasks name by their file
// name (spec.secrets[].file) and the node decrypts only when it stages
// them: the tree holds the ciphertext. No other file comes along. list
// returns the entries of a directory of the commit, or an error wrapping
// errNoPath. Two files with one name across the paths, a missing path and
// more than maxSize bytes in all (manifests and age files) are errors:
// nothing of the commit is then applied.
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
			kind := "manifests"
			switch {
			case !e.Regular:
				continue
			case ageFile(e.Name):
				kind = "age files"
			case desired.Ignored(e.Name):
				continue
			}
			from := path.Join(dir, e.Name)
			if prev, ok := byName[e.Name]; ok {
				errs = append(errs, fmt.Errorf("two %s named %s: %s and %s (the selected paths are flattened into one directory)", kind, e.Name, prev.From, from))
				continue
			}
			total += e.Size
			byName[e.Name] = selected{Name: e.Name, From: from, Size: e.Size}
		}
	}
	if total > maxSize {
		errs = append(errs, fmt.Errorf("the selected manifests and age files are %d bytes, more than the size limit of %d (--git-max-size)", total, maxSize))
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

// ageFile reports whether a directory entry is an age-encrypted secret file
// that the generated tree holds: a name that ends in ".age" and that a
// task may name as a secret's file ([desired.SecretFileName]: no dotfile).
func ageFile(name string) bool {
	return strings.HasSuffix(name, desired.AgeSuffix) && desired.SecretFileName(name)
}
