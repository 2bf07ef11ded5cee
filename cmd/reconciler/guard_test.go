package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInsecureManifestsDir: plan (as run) refuses a manifests directory
// others can write, naming it and the fix, and deletes nothing;
// --insecure-manifests-dir relaxes that; validate checks content only.
func TestInsecureManifestsDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	plan := []string{"plan", "--manifests", dir, "--address", filepath.Join(dir, "none.sock"), "--containerd", "external"}
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"plan refuses", plan, exitOK, "nothing to do", "writable by group or others (mode drwxrwxrwx): run chmod go-w " + dir},
		{"plan relaxed", append(plan, "--insecure-manifests-dir"), exitPending, "create  web", ""},
		{"validate is about content", []string{"validate", dir}, exitOK, "ok: 1 task(s)", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := runMain(tc.args, &out, &errb); code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tc.stdout) || !strings.Contains(errb.String(), tc.stderr) {
				t.Errorf("stdout %q, stderr %q; want %q and %q", out.String(), errb.String(), tc.stdout, tc.stderr)
			}
		})
	}
}
