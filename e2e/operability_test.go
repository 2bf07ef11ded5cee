package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/warren/reconciler/e2e/testenv"
)

// cli runs the reconciler binary with args and returns stdout, stderr and
// the exit code.
func cli(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(env.bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// scrape reads the Prometheus text exposition at url with the official parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// value is the value of the series of family name whose labels include all of want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	for _, m := range f.Metric {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestOperability drives the daemon through its CLI and its API: status as a
// table and JSON, wait, metrics, health and readiness, status files.
func TestOperability(t *testing.T) {
	n := newNode(t, "e2e-ops")
	dir := t.TempDir()
	statusDir := t.TempDir()
	port := freePort(t)
	state := stateDir(n.ns)
	startReconciler(t, n.ns, dir, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--status-dir", statusDir)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	if fi, err := os.Stat(filepath.Join(state, "reconciler.sock")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("API socket: %v %v, want mode 0600", fi, err)
	}

	testenv.WriteFile(t, dir, "web.yaml", testenv.Manifest("web"))
	out, errs, code := cli(t, "wait", "web", "--for=running", "--timeout", "20s", "--state-dir", state)
	if code != 0 || out != "web: running\n" {
		t.Fatalf("wait running: %d %q %q", code, out, errs)
	}
	_, ok := n.running("web")
	if !ok {
		t.Fatal("wait said running but containerd disagrees")
	}

	out, _, code = cli(t, "status", "--state-dir", state)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[0], "MESSAGE") ||
		!strings.HasPrefix(lines[1], "web") || !strings.Contains(lines[1], "Running") || !strings.Contains(lines[1], "localhost/reconciler/testapp:v1") {
		t.Fatalf("status table (exit %d):\n%s", code, out)
	}
	out, _, code = cli(t, "status", "web", "-o", "json", "--api", fmt.Sprintf("127.0.0.1:%d", port))
	var st testenv.TaskStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 || st.Phase != "Running" || st.Source != "web.yaml" {
		t.Fatalf("status -o json (exit %d, %v):\n%s", code, err, out)
	}
	if _, _, code := cli(t, "status", "nope", "--state-dir", state); code != 1 {
		t.Errorf("status of an unknown task: exit %d, want 1", code)
	}
	var fileStatus testenv.TaskStatus
	testenv.WaitFor(t, converge, "status file of web", func() bool {
		b, err := os.ReadFile(filepath.Join(statusDir, "web.json"))
		return err == nil && json.Unmarshal(b, &fileStatus) == nil && fileStatus.Phase == "Running"
	})

	fams := scrape(t, base+"/metrics")
	for _, c := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"reconciler_actions_total", map[string]string{"op": "create", "result": "success"}, 1},
		{"reconciler_actions_total", map[string]string{"op": "start", "result": "success"}, 1},
		{"reconciler_tasks", map[string]string{"phase": "Running"}, 1},
		{"reconciler_container_create_duration_seconds", nil, 1},
		{"reconciler_event_to_action_seconds", nil, 1},
		{"reconciler_reconcile_duration_seconds", nil, 1},
	} {
		if v := value(fams, c.name, c.labels); v < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min)
		}
	}

	if err := os.Remove(filepath.Join(dir, "web.yaml")); err != nil {
		t.Fatal(err)
	}
	out, errs, code = cli(t, "wait", "web", "--for=deleted", "--timeout", "20s", "--state-dir", state)
	if code != 0 {
		t.Fatalf("wait deleted: %d %q %q", code, out, errs)
	}
	if cs := n.containers("web"); len(cs) != 0 {
		t.Fatalf("wait said deleted but containerd has %+v", cs)
	}
	testenv.WaitFor(t, converge, "status file of web removed", func() bool {
		_, err := os.Stat(filepath.Join(statusDir, "web.json"))
		return os.IsNotExist(err)
	})
	fams = scrape(t, base+"/metrics")
	if v := value(fams, "reconciler_actions_total", map[string]string{"op": "delete", "result": "success"}); v < 1 {
		t.Errorf("delete actions %v after a removal", v)
	}

	start := time.Now()
	_, errs, code = cli(t, "wait", "ghost", "--for=running", "--timeout", "1s", "--state-dir", state)
	if code != 1 || !strings.Contains(errs, "timed out waiting for ghost to be running; last status ghost: not known to the daemon") {
		t.Errorf("wait for an unknown task: exit %d, %q", code, errs)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("wait --timeout 1s took %s", took)
	}
}
