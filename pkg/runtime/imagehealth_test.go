package runtime

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/desired"
)

func TestFromDockerHealth(t *testing.T) {
	d := func(x time.Duration) *desired.Duration { return &desired.Duration{Duration: x} }
	for _, c := range []struct {
		name string
		in   *dockerHealth
		want *desired.HealthCheck
		err  string
	}{
		{"none at all", nil, nil, ""},
		{"empty test", &dockerHealth{}, nil, ""},
		{"NONE", &dockerHealth{Test: []string{"NONE"}}, nil, ""},
		{"CMD with Docker's defaults", &dockerHealth{Test: []string{"CMD", "/check", "-q"}},
			&desired.HealthCheck{Exec: &desired.ExecProbe{Command: []string{"/check", "-q"}}, Interval: d(30 * time.Second), Timeout: d(30 * time.Second), Retries: 3}, ""},
		{"CMD-SHELL with every field", &dockerHealth{Test: []string{"CMD-SHELL", "curl -f localhost"}, Interval: 5 * time.Second, Timeout: time.Second, StartPeriod: time.Minute, Retries: 5},
			&desired.HealthCheck{Exec: &desired.ExecProbe{Command: []string{"/bin/sh", "-c", "curl -f localhost"}}, Interval: d(5 * time.Second), Timeout: d(time.Second), StartPeriod: d(time.Minute), Retries: 5}, ""},
		{"CMD without a command", &dockerHealth{Test: []string{"CMD"}}, nil, "has no command"},
		{"CMD-SHELL of two strings", &dockerHealth{Test: []string{"CMD-SHELL", "a", "b"}}, nil, "takes one string"},
		{"unknown test", &dockerHealth{Test: []string{"/check"}}, nil, `test "/check"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := fromDockerHealth(c.in)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("= %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}
