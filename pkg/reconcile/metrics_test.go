package reconcile

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetricsMove(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	rt := newFakeRuntime()
	clk := newFakeClock()
	web := taskWith(t, "web", "")
	c, _ := startController(t, rt, Config{Workers: 2, Clock: clk, Metrics: m}, stateOf(web))
	waitPhase(t, c, "web", PhaseRunning)

	if got := testutil.ToFloat64(m.actions.WithLabelValues("create", "success")); got != 1 {
		t.Errorf("create actions %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.actions.WithLabelValues("start", "success")); got != 1 {
		t.Errorf("start actions %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.eventToAction); n != 1 {
		t.Errorf("event-to-action series %d", n)
	}

	rt.exit(idOf(web), 1, clk.Now())
	c.Exited(idOf(web))
	waitBackOff(t, c, clk, "web")
	clk.Step(time.Second)
	waitPhase(t, c, "web", PhaseRunning)
	if got := testutil.ToFloat64(m.restarts); got != 1 {
		t.Errorf("restarts %v, want 1", got)
	}

	s := stateOf(web)
	s.Broken = map[string]error{"bad.yaml": errors.Join(errors.New("a"), errors.New("b"))}
	c.SetDesired(s)
	want := `
# HELP reconciler_manifest_errors Errors in each manifest file that currently fails to read, parse or validate (0 rows are removed).
# TYPE reconciler_manifest_errors gauge
reconciler_manifest_errors{file="bad.yaml"} 1
`
	if err := testutil.CollectAndCompare(m.manifestErrors, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP reconciler_tasks Tasks by phase.
# TYPE reconciler_tasks gauge
reconciler_tasks{phase="Blocked"} 0
reconciler_tasks{phase="Completed"} 0
reconciler_tasks{phase="CrashLoopBackOff"} 0
reconciler_tasks{phase="Creating"} 0
reconciler_tasks{phase="Error"} 0
reconciler_tasks{phase="Failed"} 0
reconciler_tasks{phase="Invalid"} 0
reconciler_tasks{phase="Pending"} 0
reconciler_tasks{phase="Pulling"} 0
reconciler_tasks{phase="Restarting"} 0
reconciler_tasks{phase="Running"} 1
reconciler_tasks{phase="Stopping"} 0
reconciler_tasks{phase="Waiting"} 0
`), "reconciler_tasks"); err != nil {
		t.Error(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("pedantic gather: %v", err)
	}
}
