package desired

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
)

// The only apiVersion and kind a manifest document may have.
const (
	APIVersion = "warren/v1"
	KindTask   = "Task"
)

// Defaults for fields the manifest leaves out.
const (
	DefaultStopGracePeriod = 30 * time.Second
	DefaultStopSignal      = "SIGTERM"
)

// Task is one manifest document.
type Task struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
	// Source is the base name of the file the task came from; set by the
	// loader and Parse, not part of YAML.
	Source string `json:"-"`
}

// Metadata names a task.
type Metadata struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Spec is what to run. Every field takes part in [Task.Hash]; a new field must
// be `omitempty` so that manifests that do not use it keep their hash.
type Spec struct {
	Image           string    `json:"image"`
	Command         []string  `json:"command,omitempty"`
	Args            []string  `json:"args,omitempty"`
	Env             []EnvVar  `json:"env,omitempty"`
	WorkingDir      string    `json:"workingDir,omitempty"`
	StopSignal      string    `json:"stopSignal,omitempty"`      // by name, default "SIGTERM"
	StopGracePeriod *Duration `json:"stopGracePeriod,omitempty"` // default 30s
}

// EnvVar is one environment variable of the task's process.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Duration is a time.Duration written as a Go duration string ("30s",
// "1m30s") in YAML.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.Duration.String())
}

// UnmarshalJSON reads a Go duration string such as "30s" or "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("must be a duration such as \"30s\" or \"1m30s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("must be a duration such as \"30s\" or \"1m30s\", got %q", s)
	}
	d.Duration = v
	return nil
}

// StopGrace returns the effective stop grace period: the manifest's, or
// [DefaultStopGracePeriod].
func (s Spec) StopGrace() time.Duration {
	if s.StopGracePeriod == nil {
		return DefaultStopGracePeriod
	}
	return s.StopGracePeriod.Duration
}

// StopSig returns the effective stop signal name, normalized to "SIGxxx":
// the manifest's, or [DefaultStopSignal].
func (s Spec) StopSig() string {
	if s.StopSignal == "" {
		return DefaultStopSignal
	}
	if n, ok := normalizeSignal(s.StopSignal); ok {
		return n
	}
	return s.StopSignal
}

// withDefaults returns a copy of s with every default filled in and every
// value in its normalized form.
func (s Spec) withDefaults() Spec {
	s.StopSignal = s.StopSig()
	g := s.StopGrace()
	s.StopGracePeriod = &Duration{g}
	return s
}

// clone returns a deep copy of t, so a State never shares slices or maps with
// the Loader's memory.
func (t Task) clone() Task {
	t.Metadata.Labels = maps.Clone(t.Metadata.Labels)
	t.Spec.Command = slices.Clone(t.Spec.Command)
	t.Spec.Args = slices.Clone(t.Spec.Args)
	t.Spec.Env = slices.Clone(t.Spec.Env)
	if t.Spec.StopGracePeriod != nil {
		d := *t.Spec.StopGracePeriod
		t.Spec.StopGracePeriod = &d
	}
	return t
}
