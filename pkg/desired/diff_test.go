package desired

import (
	"reflect"
	"testing"
)

func TestDiff(t *testing.T) {
	base := func() Spec {
		return Spec{
			Image:  "nginx:1.27",
			Env:    []EnvVar{{Name: "MODE", Value: "dev"}, {Name: "PORT", Value: "80"}},
			Mounts: []Mount{{Type: MountTmpfs, Target: "/tmp"}},
			Args:   []string{"-g", "daemon off;"},
		}
	}
	tests := []struct {
		name   string
		mutate func(s *Spec)
		want   []string
	}{
		{"equal", func(s *Spec) {}, nil},
		{"env value", func(s *Spec) { s.Env[0].Value = "prod" }, []string{`spec.env[MODE].value: "dev" -> "prod"`}},
		{"env added in front", func(s *Spec) { s.Env = append([]EnvVar{{Name: "A", Value: "1"}}, s.Env...) }, []string{
			`spec.env[A].name: (none) -> "A"`, `spec.env[A].value: (none) -> "1"`}},
		{"image", func(s *Spec) { s.Image = "nginx:1.28" }, []string{`spec.image: "nginx:1.27" -> "nginx:1.28"`}},
		{"mount read-only", func(s *Spec) { s.Mounts[0].ReadOnly = true }, []string{`spec.mounts[/tmp].readOnly: (none) -> true`}},
		{"arg removed", func(s *Spec) { s.Args = s.Args[:1] }, []string{`spec.args[1]: "daemon off;" -> (none)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.mutate(&s)
			if got := Diff(base(), s); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Diff = %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := DiffJSON([]byte("{"), base()); err == nil {
		t.Error("DiffJSON accepted broken JSON")
	}
}
