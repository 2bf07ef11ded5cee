package desired

import (
	"regexp"
	"testing"
	"time"
)

// The hash of baseManifest is fixed: if this test fails, the hash scheme
// changed, and every running container would be replaced on upgrade. Change
// hashVersion and this value together, deliberately. (Checked by hand:
// sha256("v1\x00" + the spec's JSON) computed outside Go.)
const baseHash = "45f19a7de6cc"

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
	implicit := Task{Spec: Spec{Image: "busybox"}}
	explicit := Task{Spec: Spec{Image: "busybox", StopSignal: "SIGTERM", StopGracePeriod: &Duration{30 * time.Second}}}
	short := Task{Spec: Spec{Image: "busybox", StopSignal: "term"}}
	if implicit.Hash() != explicit.Hash() || implicit.Hash() != short.Hash() {
		t.Errorf("hashes differ: implicit %s, explicit %s, short signal name %s", implicit.Hash(), explicit.Hash(), short.Hash())
	}
}

func TestHashChangesWithEverySpecField(t *testing.T) {
	mutations := map[string]func(*Spec){
		"image":               func(s *Spec) { s.Image = "docker.io/library/nginx:1.28" },
		"command":             func(s *Spec) { s.Command = []string{"nginx", "-t"} },
		"command split":       func(s *Spec) { s.Command = nil; s.Args = []string{"nginx", "-g", "daemon off;"} },
		"args":                func(s *Spec) { s.Args = nil },
		"env value":           func(s *Spec) { s.Env[1].Value = "8081" },
		"env order":           func(s *Spec) { s.Env[0], s.Env[1] = s.Env[1], s.Env[0] },
		"env removed":         func(s *Spec) { s.Env = s.Env[:1] },
		"workingDir":          func(s *Spec) { s.WorkingDir = "/srv" },
		"stopSignal":          func(s *Spec) { s.StopSignal = "SIGTERM" },
		"stopGracePeriod":     func(s *Spec) { s.StopGracePeriod = &Duration{11 * time.Second} },
		"stopGracePeriod nil": func(s *Spec) { s.StopGracePeriod = nil },
	}
	seen := map[string]string{baseHash: "base"}
	for name, mutate := range mutations {
		task := baseTask()
		mutate(&task.Spec)
		h := task.Hash()
		if other, dup := seen[h]; dup {
			t.Errorf("%s: hash %s equals the hash of %s", name, h, other)
		}
		seen[h] = name
	}
}
