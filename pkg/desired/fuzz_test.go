package desired

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// FuzzParse checks that Parse never panics, that a file it accepts holds
// only valid tasks with defaults applied, and that a file it rejects is
// rejected with *Error values that point into the file.
func FuzzParse(f *testing.F) {
	f.Add([]byte(baseManifest))
	f.Add([]byte(manifest("a", "busybox") + "---\n" + manifest("b", "busybox")))
	f.Add([]byte("spec:\n  <<: &c {image: busybox}\n  args: *c\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("--- {a: b}\n...\n%YAML 1.2\n---\n"))
	f.Add([]byte("\ufeffapiVersion: warren/v1\r\nkind: Task\r\n"))
	f.Add([]byte(basePod))
	f.Add([]byte(specDoc("  resources: {cpu: 0.5, memory: 1Gi}\n  mounts: [{type: tmpfs, target: /t, size: 1Mi}]\n  healthCheck: {tcp: {port: 1}}\n")))
	files, _ := filepath.Glob(filepath.Join("testdata", "parse", "*.yaml"))
	pods, _ := filepath.Glob(filepath.Join("testdata", "pod", "*.yaml"))
	files = append(files, pods...)
	examples, _ := filepath.Glob(filepath.Join("..", "..", "manifests", "examples", "*.yaml"))
	files = append(files, examples...)
	if files != nil {
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	hashRE := regexp.MustCompile(`^[0-9a-f]{12}$`)
	f.Fuzz(func(t *testing.T, data []byte) {
		tasks, err := Parse("f.yaml", data)
		if err != nil {
			if tasks != nil {
				t.Fatalf("tasks %v returned with error %v", tasks, err)
			}
			es := Errors(err)
			if len(es) == 0 {
				t.Fatalf("error holds no *Error: %v", err)
			}
			lines := 1
			for range yamlLines(data) {
				lines++
			}
			for _, e := range es {
				if e.File != "f.yaml" || e.Line < 0 || e.Line > lines || e.Msg == "" {
					t.Fatalf("bad *Error %+v for a file of %d lines", e, lines)
				}
			}
			return
		}
		names := map[string]bool{}
		for _, task := range tasks {
			if fes := validateTask(&task); len(fes) > 0 {
				t.Fatalf("accepted an invalid task %+v: %v", task, fes)
			}
			if names[task.Metadata.Name] {
				t.Fatalf("accepted a duplicate name %q", task.Metadata.Name)
			}
			names[task.Metadata.Name] = true
			if task.Source != "f.yaml" {
				t.Fatalf("Source = %q", task.Source)
			}
			s := task.Spec
			if s.StopGracePeriod == nil || s.StopSignal != s.StopSig() || !signals[s.StopSignal] ||
				s.ImagePullPolicy == "" || s.Network == "" || s.RestartPolicy == "" || s.UpdateStrategy == "" {
				t.Fatalf("defaults not applied: %+v", s)
			}
			if h := s.HealthCheck; h != nil && !h.Disabled && (h.Interval == nil || h.Timeout == nil || h.StartPeriod == nil || h.Retries < 1 ||
				(h.HTTP != nil && h.HTTP.Path == "")) {
				t.Fatalf("health check defaults not applied: %+v", h)
			}
			if again := (Task{Spec: s.withDefaults()}); again.Hash() != task.Hash() {
				t.Fatalf("defaults applied twice change the hash")
			}
			if h := task.Hash(); !hashRE.MatchString(h) {
				t.Fatalf("Hash() = %q", h)
			}
		}
	})
}
