package desired

import (
	"fmt"
	"testing"
)

// benchManifest is a realistic task: env, limits, mounts, a secret and a
// health check, about 40 lines.
func benchManifest(i int) string {
	return fmt.Sprintf(`# task %[1]d
apiVersion: warren/v1
kind: Task
metadata:
  name: task-%[1]d
  labels: {tier: backend, index: "%[1]d"}
spec:
  image: registry.example.com/team/app-%[1]d:1.%[1]d
  command: [/app]
  args: [--port, "%[2]d", --verbose]
  env:
    - {name: MODE, value: production}
    - {name: PORT, value: "%[2]d"}
    - {name: INDEX, value: "%[1]d"}
  user: "1000:1000"
  resources: {cpu: 250m, memory: 128Mi, pids: 128}
  mounts:
    - {type: volume, source: data-%[1]d, target: /data}
    - {type: tmpfs, target: /tmp, size: 16Mi}
  secrets: [{name: token, file: /etc/reconciler/secrets/token-%[1]d}]
  securityContext:
    readOnlyRootFilesystem: true
    capabilities: {drop: [ALL]}
  restartPolicy: OnFailure
  restartBackoff: {initial: 2s, max: 1m}
  stopGracePeriod: 10s
  healthCheck:
    http: {port: %[2]d, path: /healthz}
    interval: 5s
`, i, 10000+i)
}

// BenchmarkLoad1000 loads a directory of 1,000 manifest files: list, read,
// parse, validate, default, check names across files.
func BenchmarkLoad1000(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		writeFile(b, dir, fmt.Sprintf("task-%04d.yaml", i), benchManifest(i))
	}
	l := NewLoader(dir)
	if st := l.Load(); len(st.Tasks) != 1000 || len(st.Broken) != 0 {
		b.Fatalf("tasks %d, broken %v", len(st.Tasks), st.Broken)
	}
	b.ReportAllocs()
	for b.Loop() {
		l.Load()
	}
}

// BenchmarkParse parses one such manifest.
func BenchmarkParse(b *testing.B) {
	data := []byte(benchManifest(1))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("t.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHash hashes one such task.
func BenchmarkHash(b *testing.B) {
	tasks, err := Parse("t.yaml", []byte(benchManifest(1)))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		tasks[0].Hash()
	}
}
