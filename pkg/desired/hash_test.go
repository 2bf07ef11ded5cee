package desired

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// The hash of baseManifest is fixed: if this test fails, the hash scheme
// changed, and every running container would be replaced on upgrade. Change
// hashVersion and this value together, deliberately.
//
// History: "45f19a7de6cc" under scheme v1 (defaults hashed in). Changed
// deliberately to scheme v2 (defaults removed before hashing, so the schema
// can grow without changing hashes) when the full Task schema landed, before
// any release.
const baseHash = "1f8038698c0b"

// designHash is the hash of the DESIGN.md example (testdata/parse/full.yaml,
// task "web"), every field of the schema in use.
const designHash = "c0433023dce0"

func TestHashFixed(t *testing.T) {
	tasks, err := Parse("web.yaml", []byte(baseManifest))
	if err != nil {
		t.Fatal(err)
	}
	if got := tasks[0].Hash(); got != baseHash {
		t.Errorf("Hash() = %q, want %q", got, baseHash)
	}
	if got := baseTask().Hash(); got != baseHash {
		t.Errorf("Hash() of the hand-built task = %q, want %q", got, baseHash)
	}
	full, err := os.ReadFile(filepath.Join("testdata", "parse", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tasks, err = Parse("full.yaml", full)
	if err != nil {
		t.Fatal(err)
	}
	if got := tasks[0].Hash(); got != designHash {
		t.Errorf("Hash() of the DESIGN example = %q, want %q", got, designHash)
	}
	if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(baseHash) {
		t.Errorf("hash %q is not 12 lower-case hex characters", baseHash)
	}
}

func TestHashIgnoresMetadataAndSource(t *testing.T) {
	a := baseTask()
	b := baseTask()
	b.Metadata.Labels = map[string]string{"other": "x"}
	b.Metadata.Name = "other"
	b.Source = "other.yaml"
	if a.Hash() != b.Hash() {
		t.Errorf("labels, name or Source changed the hash")
	}
}

func TestHashDefaultsAreEqualToExplicit(t *testing.T) {
	implicit := Task{Spec: Spec{Image: "busybox:1"}}
	d := func(v time.Duration) *Duration { return &Duration{v} }
	explicit := []Spec{
		{Image: "busybox:1", StopSignal: "SIGTERM", StopGracePeriod: d(30 * time.Second)},
		{Image: "busybox:1", StopSignal: "term"},
		{Image: "busybox:1", ImagePullPolicy: PullIfNotPresent},
		{Image: "docker.io/library/busybox:1"},
		{Image: "busybox:1", Network: NetworkHost},
		{Image: "busybox:1", RestartPolicy: RestartAlways},
		{Image: "busybox:1", UpdateStrategy: UpdateStopFirst},
		{Image: "busybox:1", RestartBackoff: &RestartBackoff{}},
		{Image: "busybox:1", RestartBackoff: &RestartBackoff{Initial: d(time.Second), Max: d(5 * time.Minute), ResetAfter: d(10 * time.Minute)}},
		{Image: "busybox:1", Resources: &Resources{}},
		{Image: "busybox:1", SecurityContext: &SecurityContext{}},
		{Image: "busybox:1", SecurityContext: &SecurityContext{Capabilities: &Capabilities{Add: []string{}}}},
		{Image: "busybox:1", Command: []string{}, Env: []EnvVar{}, Mounts: []Mount{}, Secrets: []Secret{}},
	}
	for _, s := range explicit {
		if got, want := (Task{Spec: s}).Hash(), implicit.Hash(); got != want {
			t.Errorf("spec %+v: hash %s, want %s (defaults written out must not count)", s, got, want)
		}
	}
	// Pull policy: the default depends on the image.
	if (Task{Spec: Spec{Image: "busybox"}}).Hash() != (Task{Spec: Spec{Image: "busybox:latest", ImagePullPolicy: PullAlways}}).Hash() {
		t.Errorf("busybox and busybox:latest with Always differ")
	}
	// Health check defaults.
	short := Task{Spec: Spec{Image: "busybox:1", HealthCheck: &HealthCheck{HTTP: &HTTPProbe{Port: 80}}}}
	long := Task{Spec: Spec{Image: "busybox:1", HealthCheck: &HealthCheck{HTTP: &HTTPProbe{Port: 80, Path: "/"},
		Interval: d(10 * time.Second), Timeout: d(2 * time.Second), Retries: 3, StartPeriod: d(0)}}}
	if short.Hash() != long.Hash() {
		t.Errorf("health check defaults written out change the hash")
	}
}

func TestHashQuantitiesByValue(t *testing.T) {
	hash := func(cpu, mem, size string) string {
		q := func(s string) *resource.Quantity { v := resource.MustParse(s); return &v }
		return Task{Spec: Spec{Image: "busybox:1", Resources: &Resources{CPU: q(cpu), Memory: q(mem)},
			Mounts: []Mount{{Type: MountTmpfs, Target: "/t", Size: q(size)}}}}.Hash()
	}
	base := hash("500m", "1Gi", "64Mi")
	for _, v := range [][3]string{
		{"0.5", "1Gi", "64Mi"},
		{"500m", "1073741824", "64Mi"},
		{"500m", "1024Mi", "67108864"},
		{"0.50", "1Gi", "0.0625Gi"},
	} {
		if h := hash(v[0], v[1], v[2]); h != base {
			t.Errorf("quantities %v: hash %s, want %s", v, h, base)
		}
	}
	if hash("501m", "1Gi", "64Mi") == base || hash("500m", "1G", "64Mi") == base || hash("500m", "1Gi", "64M") == base {
		t.Errorf("a different quantity gave the same hash")
	}
}

// TestHashIgnoresFormatting writes one spec in several ways: block and flow
// style, comments, key order, quoting, anchors and merge keys, CRLF.
func TestHashIgnoresFormatting(t *testing.T) {
	forms := []string{
		`spec:
  image: busybox:1
  command: [sleep, "10"]
  env: [{name: A, value: x}]
  resources: {cpu: 500m, memory: 64Mi}
  mounts: [{type: tmpfs, target: /tmp}]
`,
		`spec:   # the same, otherwise written
  resources:
    memory: "64Mi"
    cpu: 0.5
  env:
    - value: 'x'
      name: "A"
  command:
    - sleep
    - '10'
  mounts:
    - target: /tmp
      type: tmpfs
      readOnly: false
  image: "busybox:1"
`,
		`spec:
  <<: {image: busybox:1, command: &c [sleep, "10"]}
  env: [{name: A, value: x}]
  resources: {cpu: 500m, memory: 67108864}
  mounts: [{type: tmpfs, target: /tmp}]
`,
	}
	var hashes []string
	for i, f := range forms {
		for _, crlf := range []bool{false, true} {
			doc := "apiVersion: warren/v1\nkind: Task\nmetadata: {name: t" + strings.Repeat("x", i) + "}\n" + f
			if crlf {
				doc = strings.ReplaceAll(doc, "\n", "\r\n")
			}
			tasks, err := Parse("t.yaml", []byte(doc))
			if err != nil {
				t.Fatalf("form %d: %v", i, err)
			}
			hashes = append(hashes, tasks[0].Hash())
		}
	}
	if len(slices.Compact(slices.Clone(hashes))) != 1 {
		t.Errorf("hashes differ: %v", hashes)
	}
}

// specMutations change one field of fullSpec each; TestHashChangesWithEverySpecField
// checks that each changes the hash, and that every field of the schema has one.
var specMutations = map[string]func(*Spec){
	"spec.image":             func(s *Spec) { s.Image = "docker.io/library/nginx:1.28" },
	"spec.imagePullPolicy":   func(s *Spec) { s.ImagePullPolicy = PullNever },
	"spec.command":           func(s *Spec) { s.Command = []string{"nginx", "-t"} },
	"spec.args":              func(s *Spec) { s.Args = nil },
	"spec.env":               func(s *Spec) { s.Env = s.Env[:0] },
	"spec.env[].name":        func(s *Spec) { s.Env[0].Name = "MODE2" },
	"spec.env[].value":       func(s *Spec) { s.Env[0].Value = "test" },
	"spec.workingDir":        func(s *Spec) { s.WorkingDir = "/srv" },
	"spec.user":              func(s *Spec) { s.User = "101" },
	"spec.resources":         func(s *Spec) { s.Resources = nil },
	"spec.resources.cpu":     func(s *Spec) { s.Resources.CPU = nil },
	"spec.resources.memory":  func(s *Spec) { *s.Resources.Memory = resource.MustParse("257Mi") },
	"spec.resources.pids":    func(s *Spec) { *s.Resources.Pids = 255 },
	"spec.mounts":            func(s *Spec) { s.Mounts[0], s.Mounts[1] = s.Mounts[1], s.Mounts[0] },
	"spec.mounts[].type":     func(s *Spec) { s.Mounts[0].Type = MountBind; s.Mounts[0].Source = "/web-cache" },
	"spec.mounts[].source":   func(s *Spec) { s.Mounts[0].Source = "other" },
	"spec.mounts[].target":   func(s *Spec) { s.Mounts[0].Target = "/cache" },
	"spec.mounts[].readOnly": func(s *Spec) { s.Mounts[0].ReadOnly = true },
	"spec.mounts[].size":     func(s *Spec) { s.Mounts[2].Size = nil },
	"spec.secrets":           func(s *Spec) { s.Secrets = nil },
	"spec.secrets[].name":    func(s *Spec) { s.Secrets[0].Name = "key" },
	"spec.secrets[].file":    func(s *Spec) { s.Secrets[0].File = "/etc/key" },
	"spec.network":           func(s *Spec) { s.Network = NetworkNone },
	"spec.ports": func(s *Spec) {
		s.Network, s.Ports = NetworkBridge, []Port{{ContainerPort: 8080, Protocol: ProtocolTCP}}
	},
	"spec.ports[].containerPort": func(s *Spec) {
		s.Network, s.Ports = NetworkBridge, []Port{{ContainerPort: 8081, Protocol: ProtocolTCP}}
	},
	"spec.ports[].protocol": func(s *Spec) {
		s.Network, s.Ports = NetworkBridge, []Port{{ContainerPort: 8080, Protocol: ProtocolUDP}}
	},
	"spec.ports[].hostPort": func(s *Spec) {
		s.Network, s.UpdateStrategy = NetworkBridge, UpdateStopFirst
		s.Ports = []Port{{ContainerPort: 8080, HostPort: 8080, Protocol: ProtocolTCP}}
	},
	"spec.ports[].hostIP": func(s *Spec) {
		s.Network, s.UpdateStrategy = NetworkBridge, UpdateStopFirst
		s.Ports = []Port{{ContainerPort: 8080, HostPort: 8080, Protocol: ProtocolTCP, HostIP: "127.0.0.1"}}
	},
	"spec.securityContext":                        func(s *Spec) { s.SecurityContext = nil },
	"spec.securityContext.readOnlyRootFilesystem": func(s *Spec) { s.SecurityContext.ReadOnlyRootFilesystem = false },
	"spec.securityContext.privileged":             func(s *Spec) { s.SecurityContext.Privileged = true },
	"spec.securityContext.capabilities":           func(s *Spec) { s.SecurityContext.Capabilities = nil },
	"spec.securityContext.capabilities.add": func(s *Spec) {
		s.SecurityContext.Capabilities.Add = append(s.SecurityContext.Capabilities.Add, "CAP_CHOWN")
	},
	"spec.securityContext.capabilities.drop": func(s *Spec) { s.SecurityContext.Capabilities.Drop = []string{"CAP_NET_RAW"} },
	"spec.restartPolicy":                     func(s *Spec) { s.RestartPolicy = RestartOnFailure },
	"spec.restartBackoff":                    func(s *Spec) { s.RestartBackoff = &RestartBackoff{Max: &Duration{time.Minute}} },
	"spec.restartBackoff.initial":            func(s *Spec) { s.RestartBackoff.Initial = &Duration{2 * time.Second} },
	"spec.restartBackoff.max":                func(s *Spec) { s.RestartBackoff.Max = &Duration{time.Hour} },
	"spec.restartBackoff.resetAfter":         func(s *Spec) { s.RestartBackoff.ResetAfter = &Duration{time.Hour} },
	"spec.updateStrategy":                    func(s *Spec) { s.UpdateStrategy = UpdateStartFirst },
	"spec.stopSignal":                        func(s *Spec) { s.StopSignal = "SIGQUIT" },
	"spec.stopGracePeriod":                   func(s *Spec) { s.StopGracePeriod = &Duration{11 * time.Second} },
	"spec.healthCheck":                       func(s *Spec) { s.HealthCheck = nil },
	"spec.healthCheck.disabled":              func(s *Spec) { s.HealthCheck = &HealthCheck{Disabled: true} },
	"spec.healthCheck.exec":                  func(s *Spec) { s.HealthCheck.HTTP = nil; s.HealthCheck.Exec = &ExecProbe{Command: []string{"check"}} },
	"spec.healthCheck.exec.command": func(s *Spec) {
		s.HealthCheck.HTTP = nil
		s.HealthCheck.Exec = &ExecProbe{Command: []string{"check", "-v"}}
	},
	"spec.healthCheck.http":        func(s *Spec) { s.HealthCheck.HTTP = &HTTPProbe{Port: 81} },
	"spec.healthCheck.http.port":   func(s *Spec) { s.HealthCheck.HTTP.Port = 8080 },
	"spec.healthCheck.http.path":   func(s *Spec) { s.HealthCheck.HTTP.Path = "/healthz" },
	"spec.healthCheck.tcp":         func(s *Spec) { s.HealthCheck.HTTP = nil; s.HealthCheck.TCP = &TCPProbe{Port: 80} },
	"spec.healthCheck.tcp.port":    func(s *Spec) { s.HealthCheck.HTTP = nil; s.HealthCheck.TCP = &TCPProbe{Port: 81} },
	"spec.healthCheck.interval":    func(s *Spec) { s.HealthCheck.Interval = &Duration{time.Minute} },
	"spec.healthCheck.timeout":     func(s *Spec) { s.HealthCheck.Timeout = &Duration{time.Second} },
	"spec.healthCheck.retries":     func(s *Spec) { s.HealthCheck.Retries = 4 },
	"spec.healthCheck.startPeriod": func(s *Spec) { s.HealthCheck.StartPeriod = &Duration{time.Second} },
	"spec.healthCheck.onUnhealthy": func(s *Spec) { s.HealthCheck.OnUnhealthy = OnUnhealthyNone },
	// Changes of form, not of a field.
	"command split": func(s *Spec) { s.Command = nil; s.Args = []string{"nginx", "-g", "daemon off;"} },
	"env order":     func(s *Spec) { s.Env = append(s.Env, EnvVar{"B", "b"}); s.Env[0], s.Env[1] = s.Env[1], s.Env[0] },
	"grace zero":    func(s *Spec) { s.StopGracePeriod = &Duration{0} },
}

// fullSpec is the spec of the DESIGN example.
func fullSpec(t *testing.T) Spec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "parse", "full.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := Parse("full.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return tasks[0].Spec
}

func TestHashChangesWithEverySpecField(t *testing.T) {
	base := Task{Spec: fullSpec(t)}
	seen := map[string]string{base.Hash(): "base"}
	for name, mutate := range specMutations {
		task := Task{Spec: fullSpec(t)}
		mutate(&task.Spec)
		h := task.Hash()
		if other, dup := seen[h]; dup {
			t.Errorf("%s: hash %s equals the hash of %s", name, h, other)
		}
		seen[h] = name
		if fes := validateTask(&Task{APIVersion: APIVersion, Kind: KindTask, Metadata: Metadata{Name: "t"}, Spec: task.Spec}); len(fes) > 0 {
			t.Errorf("%s: the mutated spec is invalid, so the case proves nothing: %v", name, fes)
		}
	}
	for _, f := range schemaFields() {
		if strings.HasPrefix(f[0], "spec.dependsOn") || f[0] == "spec.minReady" || f[0] == "spec.progressDeadline" {
			continue // the start order and the rollout, not the container: TestHashIgnoresDependsOn
		}
		if strings.HasPrefix(f[0], "spec.") && specMutations[f[0]] == nil {
			t.Errorf("no mutation of %s in specMutations: add one", f[0])
		}
	}
}

// TestHashOmitsZeroFields guards the hash's stability as the schema grows:
// every optional field must vanish from the hashed JSON when it holds its
// zero value, or adding a field would change every hash.
func TestHashOmitsZeroFields(t *testing.T) {
	required := map[string]bool{
		"Spec.image": true, "EnvVar.name": true, "EnvVar.value": true, "Mount.type": true, "Mount.target": true,
		"Secret.name": true, "Secret.file": true, "ExecProbe.command": true, "HTTPProbe.port": true, "TCPProbe.port": true,
		"Dependency.task": true, "Port.containerPort": true,
	}
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == durationType || typ == quantityType || seen[typ] {
			return
		}
		seen[typ] = true
		for _, f := range structFields(typ) {
			key := typ.Name() + "." + f.name
			if !f.omitEmpty && !required[key] {
				t.Errorf("%s has no omitempty: its zero value would be hashed", key)
			}
			if f.omitEmpty && f.typ.Kind() == reflect.Struct {
				t.Errorf("%s is a struct: omitempty does not omit it; make it a pointer", key)
			}
			walk(f.typ)
		}
	}
	walk(reflect.TypeFor[Spec]())
}

// TestHashIgnoresDependsOn: dependsOn orders starts; adding, changing or
// removing it replaces no container.
func TestHashIgnoresDependsOn(t *testing.T) {
	base := Task{Spec: fullSpec(t)}
	for _, deps := range [][]Dependency{
		{{Task: "db"}},
		{{Task: "db", Condition: DependHealthy}, {Task: "migrate", Condition: DependCompleted}},
		{{Task: "migrate", Condition: DependCompleted}, {Task: "db", Condition: DependHealthy}},
	} {
		task := Task{Spec: fullSpec(t)}
		task.Spec.DependsOn = deps
		if task.Hash() != base.Hash() {
			t.Errorf("dependsOn %v changed the hash", deps)
		}
	}
	for _, d := range []time.Duration{0, time.Second, time.Hour} {
		task := Task{Spec: fullSpec(t)}
		task.Spec.MinReady, task.Spec.ProgressDeadline = &Duration{d}, &Duration{d + time.Minute}
		if task.Hash() != base.Hash() {
			t.Errorf("minReady %s changed the hash", d)
		}
	}
}

// TestHashSecretInManifestsDir: a secret file of the manifests directory
// is hashed by its name as written. The git source writes each commit into
// a new directory: the same manifest read from two of them, beside two
// different ciphertexts, hashes the same (the content of a secret file is
// not hashed, as for a host path), and differently from an absolute path.
func TestHashSecretInManifestsDir(t *testing.T) {
	doc := specDoc("  secrets: [{name: db, file: db.age}]\n")
	var hashes []string
	for i, content := range []string{"ciphertext one", "ciphertext two"} {
		dir := filepath.Join(t.TempDir(), "trees", "c0ffee-"+string(rune('1'+i)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string]string{"t.yaml": doc, "db.age": content} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		st := NewLoader(dir).Load()
		task, ok := st.Tasks["t"]
		if !ok || st.Err != nil || len(st.Broken) != 0 {
			t.Fatalf("load %s: %+v", dir, st)
		}
		if f := task.Spec.Secrets[0].File; f != "db.age" {
			t.Fatalf("secret file %q: the loader must keep the name as written", f)
		}
		hashes = append(hashes, task.Hash())
	}
	if hashes[0] != hashes[1] {
		t.Errorf("hash changed with the tree directory or the ciphertext: %s, %s", hashes[0], hashes[1])
	}
	abs := Task{Spec: Spec{Image: "busybox:1", Secrets: []Secret{{Name: "db", File: "/etc/reconciler/secrets/db.age"}}}}
	if abs.Hash() == hashes[0] {
		t.Error("a file of the manifests directory hashes like an absolute path")
	}
}
