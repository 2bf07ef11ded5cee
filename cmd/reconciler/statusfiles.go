package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"

	"github.com/warren/reconciler/pkg/reconcile"
)

// writeStatusFiles keeps dir holding one TASK.json per task, each written
// atomically (temporary file, then rename), until ctx is done. Files of tasks
// that are gone are removed; other files in dir are left alone.
func writeStatusFiles(ctx context.Context, dir string, ctrl *reconcile.Controller, log logr.Logger) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	written := map[string][]byte{}
	// Files from a previous process: known by their suffix.
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if name, ok := strings.CutSuffix(e.Name(), ".json"); ok && !e.IsDir() {
				written[name] = nil
			}
		}
	}
	for {
		changed := ctrl.StatusChanged()
		seen := map[string]bool{}
		for _, st := range ctrl.Status() {
			seen[st.Name] = true
			b, err := json.MarshalIndent(st, "", "  ")
			if err != nil {
				return err
			}
			if string(b) == string(written[st.Name]) {
				continue
			}
			if err := writeAtomic(filepath.Join(dir, st.Name+".json"), append(b, '\n')); err != nil {
				log.Error(err, "write status file", "task", st.Name)
				continue
			}
			written[st.Name] = b
		}
		for name := range written {
			if !seen[name] {
				if err := os.Remove(filepath.Join(dir, name+".json")); err != nil && !os.IsNotExist(err) {
					log.Error(err, "remove status file", "task", name)
					continue
				}
				delete(written, name)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
