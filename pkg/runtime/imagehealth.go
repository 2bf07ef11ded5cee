package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/content"

	"github.com/warren/reconciler/pkg/desired"
)

// Docker's defaults for the fields of a HEALTHCHECK left out.
const (
	dockerHealthInterval = 30 * time.Second
	dockerHealthTimeout  = 30 * time.Second
	dockerHealthRetries  = 3
)

// dockerHealth is the Healthcheck of a Docker image config: the OCI config
// has no such field, so it is read from the config's JSON itself.
type dockerHealth struct {
	Test        []string      `json:"Test"`
	Interval    time.Duration `json:"Interval"` // nanoseconds
	Timeout     time.Duration `json:"Timeout"`
	StartPeriod time.Duration `json:"StartPeriod"`
	Retries     int           `json:"Retries"`
}

// imageHealthCheck returns the HEALTHCHECK of img as a manifest's health
// check would say it (Docker's defaults filled in), nil when the image has
// none or says NONE.
func imageHealthCheck(ctx context.Context, img containerd.Image) (*desired.HealthCheck, error) {
	desc, err := img.Config(ctx)
	if err != nil {
		return nil, err
	}
	b, err := content.ReadBlob(ctx, img.ContentStore(), desc)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Config struct {
			Healthcheck *dockerHealth `json:"Healthcheck"`
		} `json:"config"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	return fromDockerHealth(cfg.Config.Healthcheck)
}

// fromDockerHealth translates a Docker HEALTHCHECK: CMD runs its arguments,
// CMD-SHELL its string through /bin/sh -c, NONE (and an empty test, which
// inherits nothing here) is no check.
func fromDockerHealth(h *dockerHealth) (*desired.HealthCheck, error) {
	if h == nil || len(h.Test) == 0 {
		return nil, nil
	}
	var cmd []string
	switch h.Test[0] {
	case "NONE":
		return nil, nil
	case "CMD":
		cmd = h.Test[1:]
	case "CMD-SHELL":
		if len(h.Test) != 2 {
			return nil, fmt.Errorf("image HEALTHCHECK CMD-SHELL takes one string, has %d", len(h.Test)-1)
		}
		cmd = []string{"/bin/sh", "-c", h.Test[1]}
	default:
		return nil, fmt.Errorf("image HEALTHCHECK test %q: want CMD, CMD-SHELL or NONE", h.Test[0])
	}
	if len(cmd) == 0 || cmd[0] == "" {
		return nil, fmt.Errorf("image HEALTHCHECK %s has no command", h.Test[0])
	}
	or := func(d, def time.Duration) *desired.Duration {
		if d <= 0 {
			d = def
		}
		return &desired.Duration{Duration: d}
	}
	hc := &desired.HealthCheck{
		Exec:     &desired.ExecProbe{Command: cmd},
		Interval: or(h.Interval, dockerHealthInterval),
		Timeout:  or(h.Timeout, dockerHealthTimeout),
		Retries:  h.Retries,
	}
	if hc.Retries <= 0 {
		hc.Retries = dockerHealthRetries
	}
	if h.StartPeriod > 0 {
		hc.StartPeriod = &desired.Duration{Duration: h.StartPeriod}
	}
	return hc, nil
}
