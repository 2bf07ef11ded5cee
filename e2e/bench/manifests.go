package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// names returns n task names prefix-000, prefix-001, ...
func names(prefix string, from, to int) []string {
	out := make([]string, 0, max(to-from, 0))
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%03d", prefix, i))
	}
	return out
}

// drop writes every manifest under a hidden temporary name first (the
// reconciler ignores dotfiles), then renames them all into place as fast as
// it can: an atomic drop of the whole set. It returns the time just before
// the first rename.
func drop(dir string, tasks []string, content func(name string) string) (time.Time, error) {
	for _, n := range tasks {
		if err := os.WriteFile(filepath.Join(dir, "."+n+".yaml.tmp"), []byte(content(n)), 0o644); err != nil {
			return time.Time{}, err
		}
	}
	began := time.Now()
	for _, n := range tasks {
		if err := os.Rename(filepath.Join(dir, "."+n+".yaml.tmp"), filepath.Join(dir, n+".yaml")); err != nil {
			return time.Time{}, err
		}
	}
	return began, nil
}

// remove deletes the tasks' manifests and returns the time just before the
// first removal.
func remove(dir string, tasks []string) (time.Time, error) {
	began := time.Now()
	for _, n := range tasks {
		if err := os.Remove(filepath.Join(dir, n+".yaml")); err != nil {
			return time.Time{}, err
		}
	}
	return began, nil
}

// prefixes are the container ID prefixes of tasks (a container ID is TASK-HASH).
func prefixes(tasks []string) []string {
	out := make([]string, len(tasks))
	for i, n := range tasks {
		out[i] = n + "-"
	}
	return out
}
