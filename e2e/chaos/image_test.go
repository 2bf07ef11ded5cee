package chaos

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/e2e/testenv"
)

// TestChaosImageUnavailable (fault 4): a task's image cannot be had (the
// registry on 127.0.0.1 stopped, or the credentials wrong), then can. The
// reconciler does not crash, says why on the status, retries with backoff
// (a handful of attempts, not a storm), leaves the other tasks alone, and
// runs the task once the image is there.
func TestChaosImageUnavailable(t *testing.T) {
	requireEnv(t)
	reg := testenv.StartRegistry(t, "chaos", "monkey")
	reg.Push(env.archive, "chaos/app:v1")
	cfg := filepath.Join(env.dir, "registry-config.json")
	testenv.WriteDockerConfig(t, cfg, reg.Host, "chaos", "monkey")
	w := newWorld(t, "image", "", "", "--registry-config", cfg)
	w.addStable("stable-a", "stable-b")
	w.addBystander("bystander")
	w.start()
	w.ready("set-up")
	ref := reg.Host + "/chaos/app:v1"
	iterations(t, func(i int) {
		b := w.baseline()
		if i > 0 {
			w.removeTask(fmt.Sprintf("pulled-%d", i-1))
		}
		name := fmt.Sprintf("pulled-%d", i)
		var want, fault string
		if i%2 == 0 {
			reg.Stop()
			want, fault = "connection refused", "registry stopped"
		} else {
			testenv.WriteDockerConfig(t, cfg, reg.Host, "chaos", "wrong")
			want, fault = "401 Unauthorized", "wrong credentials"
		}
		before := reg.Manifests.Load()
		w.write(name+".yaml", testenv.WithImage(taskYAML(name, 1, "imagePullPolicy: Always"), ref))
		w.versions[name] = 1
		var msg string
		waitFor(t, 30*time.Second, name+"'s pull error on the status", func() bool {
			var phase string
			phase, msg = w.taskStatus(name)
			return phase == "Error" && strings.Contains(msg, "pull image "+ref) && strings.Contains(msg, want)
		})
		// Backoff: over a few seconds, a handful of attempts.
		const window = 5 * time.Second
		since := time.Now()
		out := len(w.d.Output())
		time.Sleep(window)
		w.noCrash()
		attempts := strings.Count(w.d.Output()[out:], `msg="pulling image"`)
		// 500ms growing by 1.5 with jitter: at most 8 attempts in 5s.
		if attempts > 8 {
			t.Errorf("image %d: %d pull attempts (%d manifest requests) in %s: no backoff", i, attempts, reg.Manifests.Load()-before, window)
		}
		if _, ok := w.running()[name]; ok {
			t.Errorf("image %d: %s runs without its image", i, name)
		}
		if i%2 == 0 {
			reg.Start()
		} else {
			testenv.WriteDockerConfig(t, cfg, reg.Host, "chaos", "monkey")
		}
		since = time.Now()
		w.converge(fmt.Sprintf("image %d (%s; status said %q)", i, fault, msg), since, b)
	})
}
