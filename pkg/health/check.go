package health

import (
	"fmt"
	"strings"
	"time"

	"github.com/warren/reconciler/pkg/desired"
)

// Kind is what a probe does.
type Kind string

// Kinds of probe.
const (
	KindExec Kind = "exec" // a command in the task's container; exit 0 is healthy
	KindHTTP Kind = "http" // GET on the task's port; 2xx and 3xx are healthy
	KindTCP  Kind = "tcp"  // a connection to the task's port is healthy
)

// Sources of a check.
const (
	SourceManifest = "manifest" // spec.healthCheck
	SourceImage    = "image"    // the image's HEALTHCHECK
)

// Check is a health check as probed.
type Check struct {
	Kind        Kind
	Command     []string // exec
	Port        int      // http, tcp
	Path        string   // http
	Interval    time.Duration
	Timeout     time.Duration
	Retries     int
	StartPeriod time.Duration
	Source      string // SourceManifest or SourceImage
}

// FromSpec returns the check a health check of a manifest or of an image
// (as the runtime translates it) describes, with the defaults filled in;
// false when there is none or it is disabled.
func FromSpec(h *desired.HealthCheck, source string) (Check, bool) {
	if h == nil || h.Disabled {
		return Check{}, false
	}
	c := Check{
		Interval:    durOr(h.Interval, desired.DefaultHealthInterval),
		Timeout:     durOr(h.Timeout, desired.DefaultHealthTimeout),
		StartPeriod: durOr(h.StartPeriod, 0),
		Retries:     h.Retries,
		Source:      source,
	}
	if c.Retries <= 0 {
		c.Retries = desired.DefaultHealthRetries
	}
	switch {
	case h.Exec != nil:
		c.Kind, c.Command = KindExec, append([]string(nil), h.Exec.Command...)
	case h.HTTP != nil:
		c.Kind, c.Port, c.Path = KindHTTP, h.HTTP.Port, h.HTTP.Path
		if c.Path == "" {
			c.Path = desired.DefaultHTTPPath
		}
	case h.TCP != nil:
		c.Kind, c.Port = KindTCP, h.TCP.Port
	default:
		return Check{}, false
	}
	return c, true
}

func durOr(d *desired.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

// String describes the check for the plan and the status, e.g.
// `http :8080/healthz every 10s (timeout 2s, 3 retries; from the manifest)`.
func (c Check) String() string {
	var what string
	switch c.Kind {
	case KindExec:
		what = "exec " + strings.Join(c.Command, " ")
	case KindHTTP:
		what = fmt.Sprintf("http :%d%s", c.Port, c.Path)
	case KindTCP:
		what = fmt.Sprintf("tcp :%d", c.Port)
	}
	s := fmt.Sprintf("%s every %s (timeout %s, %d retries", what, c.Interval, c.Timeout, c.Retries)
	if c.StartPeriod > 0 {
		s += ", start period " + c.StartPeriod.String()
	}
	return s + "; from the " + c.Source + ")"
}

func (c Check) equal(o Check) bool {
	return c.String() == o.String() && strings.Join(c.Command, "\x00") == strings.Join(o.Command, "\x00")
}
