package e2e

import (
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"strings"
	"testing"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
)

// bridgeOf is a bridge and a subnet of this run's own: never the
// defaults, never another run's (two runs on one machine).
func bridgeOf(test string) (bridge, subnet string) {
	h := fnv.New32a()
	h.Write([]byte(test + env.run))
	n := h.Sum32()
	return fmt.Sprintf("rct%05d", n%100000), fmt.Sprintf("10.%d.%d.0/24", 200+n%50, (n/50)%256)
}

// get fetches url, "" on any error.
func get(url string) string {
	s, _ := httpGet(url)
	return s
}

// TestBridgeNetwork: bridge tasks get an address of the bridge's subnet,
// their ports published on the host (127.0.0.1 included: the host's
// loopback reaches the task), two tasks with one containerPort on two
// hostPorts, a task that reaches another by name, a restart that keeps the
// address, and a delete that leaves no namespace pin, no lease and no
// iptables rule of the container.
func TestBridgeNetwork(t *testing.T) {
	n := newNode(t, "e2e-bridge")
	dir := t.TempDir()
	runDir := t.TempDir()
	bridge, subnet := bridgeOf(t.Name())
	d := startReconciler(t, n.ns, dir, "--bridge", bridge, "--bridge-subnet", subnet, "--network-run-dir", runDir)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "delete", bridge).Run() })
	t.Cleanup(func() { testenv.UnpinAll(runDir) }) // before the directory goes, whatever failed
	p1, p2 := freePort(t), freePort(t)
	web := func(name string, port int) string {
		return testenv.Manifest(name, "network: bridge", "stopGracePeriod: 1s",
			"args: [-listen, ':8080', -message, "+name+"]",
			fmt.Sprintf("ports: [{containerPort: 8080, hostPort: %d, hostIP: 127.0.0.1}]", port),
			"healthCheck: {tcp: {port: 8080}, interval: 300ms}")
	}
	testenv.WriteFile(t, dir, "web.yaml", web("web", p1))
	testenv.WriteFile(t, dir, "web2.yaml", web("web2", p2))
	testenv.WriteFile(t, dir, "app.yaml", testenv.Manifest("app", "network: bridge", "stopGracePeriod: 1s",
		"args: [-connect, 'web:8080']", "dependsOn: [{task: web, condition: healthy}]"))

	var w ctr
	testenv.WaitFor(t, converge, "web running", func() (ok bool) { w, ok = n.running("web"); return ok })
	ip := w.Labels[observed.LabelIP]
	if !strings.HasPrefix(ip, strings.TrimSuffix(subnet, "0/24")) {
		t.Fatalf("web's address %q is not of the subnet %s", ip, subnet)
	}
	for name, port := range map[string]int{"web": p1, "web2": p2} {
		testenv.WaitFor(t, converge, name+" answers on its published port", func() bool {
			return strings.Contains(get(fmt.Sprintf("http://127.0.0.1:%d/", port)), name)
		})
	}
	// By name, from another bridge task.
	testenv.WaitFor(t, converge, "app reached web by name", func() bool {
		out, _ := exec.Command(env.bin, "logs", "app", "--state-dir", stateDir(n.ns)).CombinedOutput()
		return strings.Contains(string(out), "connect web:8080: ok")
	})
	// The status says where it is; its health check reaches it there.
	testenv.WaitFor(t, converge, "web healthy", func() bool { return taskStatus(t, n.ns, "web").Health.State == "healthy" })
	if st := taskStatus(t, n.ns, "web"); st.IP != ip || st.Ports != fmt.Sprintf("127.0.0.1:%d->8080/TCP", p1) {
		t.Errorf("web's status: ip %q ports %q", st.IP, st.Ports)
	}
	hosts, err := os.ReadFile(filepath.Join(stateDir(n.ns), "network", w.ID, "hosts"))
	if err != nil || !strings.Contains(string(hosts), ip+"\tweb\n") {
		t.Errorf("web's /etc/hosts: %v\n%s", err, hosts)
	}

	// A restart under the restart policy keeps the namespace and the
	// address.
	if out, err := exec.Command("ctr", "--address", env.address, "-n", n.ns, "tasks", "kill", "-s", "SIGKILL", w.ID).CombinedOutput(); err != nil {
		t.Fatalf("kill web: %v %s", err, out)
	}
	testenv.WaitFor(t, converge, "web restarted", func() bool {
		x, ok := n.running("web")
		return ok && x.Pid != w.Pid
	})
	if x, _ := n.running("web"); x.Labels[observed.LabelIP] != ip {
		t.Errorf("address after a restart %q, want %q", x.Labels[observed.LabelIP], ip)
	}
	testenv.WaitFor(t, converge, "web answers after its restart", func() bool {
		return strings.Contains(get(fmt.Sprintf("http://127.0.0.1:%d/", p1)), "web")
	})

	// A delete leaves nothing of the container's network (which is
	// there while it runs: else the check proves nothing).
	if pins, leases, rules := networkOf(t, n.ns, runDir, "web2"); pins == 0 || leases == 0 || rules == 0 {
		t.Errorf("web2 runs with %d pins, %d leases, %d iptables rules naming it", pins, leases, rules)
	}
	if err := os.Remove(filepath.Join(dir, "web2.yaml")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, converge, "web2 gone", func() bool { return len(n.containers("web2")) == 0 })
	noNetworkLeft(t, n.ns, runDir, "web2")
	if get(fmt.Sprintf("http://127.0.0.1:%d/", p2)) != "" {
		t.Errorf("web2's port %d still answers after its delete", p2)
	}
	// A reboot, emulated: the reconciler gone, every task killed, /run
	// cleared (pins, leases) and the network's iptables rules gone. A new
	// reconciler brings the tasks back with their ports.
	d.Stop()
	for _, c := range n.containers("") {
		_ = exec.Command("ctr", "--address", env.address, "-n", n.ns, "tasks", "kill", "-s", "SIGKILL", c.ID).Run()
	}
	testenv.WaitFor(t, converge, "every task killed", func() bool {
		for _, c := range n.containers("") {
			if c.Status == "running" {
				return false
			}
		}
		return true
	})
	testenv.UnpinAll(runDir)
	if err := os.RemoveAll(filepath.Join(runDir, "netns")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(runDir, "ipam")); err != nil {
		t.Fatal(err)
	}
	if err := testenv.DropNATRules("reconciler-" + n.ns); err != nil {
		t.Fatal(err)
	}
	d = startReconciler(t, n.ns, dir, "--bridge", bridge, "--bridge-subnet", subnet, "--network-run-dir", runDir)
	testenv.WaitFor(t, converge, "web answers again after the reboot", func() bool {
		return strings.Contains(get(fmt.Sprintf("http://127.0.0.1:%d/", p1)), "web")
	})
	if pins, leases, rules := networkOf(t, n.ns, runDir, "web"); pins == 0 || leases == 0 || rules == 0 {
		t.Errorf("web after the reboot: %d pins, %d leases, %d rules", pins, leases, rules)
	}

	for _, f := range []string{"web.yaml", "app.yaml"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, converge, "every task gone", func() bool { return len(n.containers("")) == 0 })
	for _, task := range []string{"web", "app"} {
		noNetworkLeft(t, n.ns, runDir, task)
	}
	d.Stop()
}

// noNetworkLeft checks that nothing of the network of the containers of
// task is left: no namespace pin or port file under runDir/netns, no lease
// under runDir/ipam, no iptables rule naming it.
func noNetworkLeft(t *testing.T, ns, runDir, task string) {
	t.Helper()
	if pins, leases, rules := networkOf(t, ns, runDir, task); pins+leases+rules > 0 {
		t.Errorf("left of %s's network: %d pins or port files, %d leases, %d iptables rules", task, pins, leases, rules)
	}
}

// networkOf counts what the network holds for the containers of task (IDs
// that start with task-; a container ID instead of a task name: that
// container alone): namespace pins and port files, leases, and iptables
// rules whose comment names the container.
func networkOf(t *testing.T, ns, runDir, task string) (pins, leases, rules int) {
	t.Helper()
	prefix := task + "-"
	if strings.Count(task, "-") > 0 && len(task) > 13 && task[len(task)-13] == '-' {
		prefix = task // a container ID: that container alone
	}
	return networkByPrefix(t, ns, runDir, prefix)
}

// networkByPrefix counts what the network holds for the IDs that start
// with prefix (containers, or a pod's sandboxes: pod_POD_).
func networkByPrefix(t *testing.T, ns, runDir, prefix string) (pins, leases, rules int) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(runDir, "netns"))
	for _, p := range entries {
		if strings.HasPrefix(p.Name(), prefix) {
			pins++
		}
	}
	files, _ := filepath.Glob(filepath.Join(runDir, "ipam", "*", "*"))
	for _, l := range files {
		if b, err := os.ReadFile(l); err == nil && strings.HasPrefix(string(b), prefix) {
			leases++
		}
	}
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, `name: \"reconciler-`+ns+`\" id: \"`+prefix) {
			t.Logf("iptables: %s", line)
			rules++
		}
	}
	return pins, leases, rules
}

// TestBridgeRollout: a stop-first rollout of a bridge task with a
// published port: the kept container lets go of its network, so the new
// one takes the port while it proves itself; a bad change rolls back and
// the old container, set up again, answers on the port.
func TestBridgeRollout(t *testing.T) {
	n := newNode(t, "e2e-bridge-ro")
	dir := t.TempDir()
	runDir := t.TempDir()
	bridge, subnet := bridgeOf(t.Name())
	startReconciler(t, n.ns, dir, "--bridge", bridge, "--bridge-subnet", subnet, "--network-run-dir", runDir)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "delete", bridge).Run() })
	t.Cleanup(func() { testenv.UnpinAll(runDir) })
	port := freePort(t)
	web := func(message string, extra ...string) string {
		return testenv.Manifest("web", append([]string{"network: bridge", "stopGracePeriod: 1s", "minReady: 3s",
			"restartBackoff: {initial: 200ms, max: 1s}",
			"args: [-listen, ':8080', -message, " + message + "]",
			fmt.Sprintf("ports: [{containerPort: 8080, hostPort: %d, hostIP: 127.0.0.1}]", port)}, extra...)...)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	testenv.WriteFile(t, dir, "web.yaml", web("one"))
	var first ctr
	testenv.WaitFor(t, converge, "one answers", func() (ok bool) {
		first, ok = n.running("web")
		return ok && strings.Contains(get(url), "one")
	})
	time.Sleep(3500 * time.Millisecond) // minReady: a rollback target

	// A good change: the new container answers on the port while it
	// proves itself, the old one kept (stopped, no namespace).
	testenv.WriteFile(t, dir, "web.yaml", web("two"))
	testenv.WaitFor(t, converge, "two answers during its rollout", func() bool { return strings.Contains(get(url), "two") })
	if cs := n.containers("web"); len(cs) == 2 {
		if pins, _, _ := networkOf(t, n.ns, runDir, first.ID); pins != 0 {
			t.Errorf("the kept container still holds its network during the rollout")
		}
	}
	var second ctr
	testenv.WaitFor(t, converge, "two proved, one gone", func() (ok bool) {
		second, ok = n.running("web")
		return ok && second.ID != first.ID && second.Labels[observed.LabelProven] != ""
	})
	noNetworkLeft(t, n.ns, runDir, first.ID)

	// A bad change: rolled back to two, which answers again.
	time.Sleep(500 * time.Millisecond)
	testenv.WriteFile(t, dir, "web.yaml", web("three", "command: [/testapp, -exit-after, 100ms, -exit-code, '1']"))
	testenv.WaitFor(t, 90*time.Second, "rolled back to two, answering", func() bool {
		x, ok := n.running("web")
		return ok && x.ID == second.ID && x.Labels[observed.LabelRolledBack] != "" && strings.Contains(get(url), "two")
	})
}
