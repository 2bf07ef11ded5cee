package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/observed"
)

// TestChaosUnhealthy (fault 7): random tasks turn unhealthy: the marker
// file their health check looks for (in a volume of their own) is removed
// from the host. Each victim is stopped, restarted by its policy after its
// back-off (the task writes its marker again at start), and healthy again;
// every other task is left as it was.
func TestChaosUnhealthy(t *testing.T) {
	w := newWorld(t, "health", "", "")
	w.addStable("stable-a", "stable-b")
	w.addBystander("bystander")
	const pool = 6
	var names []string
	for j := range pool {
		name := fmt.Sprintf("h-%d", j)
		w.setTask(name, 1,
			"args: [-marker, /health/ok]",
			fmt.Sprintf("mounts: [{type: volume, source: %s, target: /health}]", name),
			"healthCheck: {exec: {command: [/testapp, probe, -file, /health/ok]}, interval: 500ms, timeout: 5s, retries: 2}",
			"restartBackoff: {initial: 500ms, max: 2s, resetAfter: 5s}")
		names = append(names, name)
	}
	w.start()
	w.ready("set-up")
	healthy := func(name string) bool {
		for _, st := range w.status().Tasks {
			if st.Name == name {
				return st.Phase == "Running" && st.Health.State == "healthy"
			}
		}
		return false
	}
	waitFor(t, time.Minute, "every task healthy", func() bool {
		for _, n := range append(slices.Clone(names), w.stable...) {
			if !healthy(n) {
				return false
			}
		}
		return true
	})
	iterations(t, func(i int) {
		victims, b := w.victims(names)
		running := w.running()
		restarts := map[string]int{}
		for _, v := range victims {
			c, ok := running[v]
			if !ok {
				t.Fatalf("victim %s not running", v)
			}
			restarts[v] = c.Restarts
			if err := os.Remove(filepath.Join(w.state, "volumes", v, "ok")); err != nil {
				t.Fatalf("remove the health marker of %s: %v", v, err)
			}
		}
		since := time.Now()
		// Back once restarted and healthy; then every invariant.
		waitFor(t, *flagConverge, "the victims restarted and healthy", func() bool {
			now := w.running()
			for _, v := range victims {
				if c, ok := now[v]; !ok || c.Restarts <= restarts[v] || !healthy(v) {
					return false
				}
			}
			return true
		})
		took := w.converge(fmt.Sprintf("health %d (%s unhealthy)", i, strings.Join(victims, ", ")), since, b)
		if took >= 0 {
			for _, v := range victims {
				if c := w.running()[v]; c.Labels[observed.LabelUnhealthy] != "" {
					t.Errorf("%s restarted still marked unhealthy: %s", v, c.Labels[observed.LabelUnhealthy])
				}
			}
		}
	})
}
