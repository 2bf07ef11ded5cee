package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
)

// TestPodSandbox: the containers of a pod on the bridge share one network,
// UTS and IPC namespace (seen by the kernel: the same /proc/PID/ns links),
// so one reaches the other on localhost, both have the pod's host name and
// one address, the pod's hostPort answers on 127.0.0.1, and an emptyDir on
// disk is one directory for both. A change of one container replaces it
// alone, in the same sandbox. The pod's removal leaves no pin, lease,
// iptables rule or directory of its sandbox.
func TestPodSandbox(t *testing.T) {
	n := newNode(t, "e2e-podsandbox")
	dir := t.TempDir()
	runDir := t.TempDir()
	bridge, subnet := bridgeOf(t.Name())
	secrets := t.TempDir()
	if err := os.Mkdir(filepath.Join(secrets, "db.creds"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secrets, "db.creds", "user"), []byte("app-user"), 0o600); err != nil {
		t.Fatal(err)
	}
	startReconciler(t, n.ns, dir, "--bridge", bridge, "--bridge-subnet", subnet, "--network-run-dir", runDir,
		"--allowed-secret-sources", secrets)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "delete", bridge).Run() })
	t.Cleanup(func() { testenv.UnpinAll(runDir); unpinPods(stateDir(n.ns)) })
	port := freePort(t)
	pod := func(sideMessage string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: duo}
spec:
  hostname: box
  terminationGracePeriodSeconds: 1
  containers:
    - name: web
      image: %[1]s
      args: [-listen, ":8080", -message, duo-web, -write-file, /data/from-web]
      ports: [{containerPort: 8080, hostPort: %[2]d, hostIP: 127.0.0.1}]
      volumeMounts: [{name: data, mountPath: /data}]
    - name: side
      image: %[1]s
      args: [-connect, "localhost:8080", -connect-retry, 20s, -print-hostname, -message, %[3]s]
      volumeMounts: [{name: data, mountPath: /shared, readOnly: true}, {name: creds, mountPath: /etc/creds}]
  volumes:
    - {name: data, emptyDir: {}}
    - {name: creds, secret: {secretName: db.creds}}
`, imagebuild.DefaultRef, port, sideMessage)
	}
	testenv.WriteFile(t, dir, "duo.yaml", pod("side-v1"))

	var web, side ctr
	testenv.WaitFor(t, converge, "both containers of the pod running", func() bool {
		var ok1, ok2 bool
		web, ok1 = n.running("duo-web")
		side, ok2 = n.running("duo-side")
		return ok1 && ok2
	})
	// One sandbox: the kernel's namespaces, not the reconciler's labels.
	for _, ns := range []string{"net", "uts", "ipc"} {
		a, errA := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", web.Pid, ns))
		b, errB := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", side.Pid, ns))
		if errA != nil || errB != nil || a != b {
			t.Errorf("%s namespace: web %s (%v), side %s (%v): want one", ns, a, errA, b, errB)
		}
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		if a == host {
			t.Errorf("%s namespace is the host's", ns)
		}
	}
	ip := web.Labels[observed.LabelIP]
	if ip == "" || side.Labels[observed.LabelIP] != ip {
		t.Errorf("addresses: web %q, side %q: want one", ip, side.Labels[observed.LabelIP])
	}
	testenv.WaitFor(t, converge, "the pod's hostPort answers on 127.0.0.1", func() bool {
		return strings.Contains(get(fmt.Sprintf("http://127.0.0.1:%d/", port)), "duo-web")
	})
	testenv.WaitFor(t, converge, "side reached web on localhost, with the pod's host name", func() bool {
		out, _ := exec.Command(env.bin, "logs", "duo-side", "--state-dir", stateDir(n.ns)).CombinedOutput()
		return strings.Contains(string(out), "connect localhost:8080: ok") && strings.Contains(string(out), "box")
	})
	// The emptyDir: what web wrote, side reads, through containerd.
	out, err := exec.Command("ctr", "--address", env.address, "-n", n.ns, "tasks", "exec", "--exec-id", "check-shared",
		side.ID, "/testapp", "-inspect", "/shared/from-web,/etc/creds/user", "-exit-after", "1ms").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "written by testapp") {
		t.Errorf("side does not see web's file in the shared emptyDir: %v\n%s", err, out)
	}
	// The secret volume: the secret directory's file, 0400.
	if !strings.Contains(string(out), "app-user") || !strings.Contains(string(out), "/etc/creds/user: mode=0400") {
		t.Errorf("side's secret volume: %v\n%s", err, out)
	}
	sandboxes, _ := filepath.Glob(filepath.Join(stateDir(n.ns), "pods", "pod_duo_*"))
	if len(sandboxes) != 1 {
		t.Fatalf("sandbox directories %v, want one", sandboxes)
	}

	// A change of one container replaces it alone, in the same sandbox.
	testenv.WriteFile(t, dir, "duo.yaml", pod("side-v2"))
	var side2 ctr
	testenv.WaitFor(t, converge, "side replaced", func() (ok bool) {
		side2, ok = n.running("duo-side")
		return ok && side2.ID != side.ID
	})
	if w, ok := n.running("duo-web"); !ok || w.Pid != web.Pid {
		t.Errorf("web was touched by a change of side: %+v", w)
	}
	a, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", web.Pid))
	if b, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", side2.Pid)); a != b {
		t.Errorf("the new side is in network namespace %s, web in %s", b, a)
	}
	if side2.Labels[observed.LabelIP] != ip {
		t.Errorf("the new side's address %q, want the pod's %q", side2.Labels[observed.LabelIP], ip)
	}

	// The pod's removal releases its sandbox, which was there.
	if pins, leases, rules := networkByPrefix(t, n.ns, runDir, "pod_duo_"); pins == 0 || leases == 0 || rules == 0 {
		t.Errorf("the pod runs with %d pins, %d leases, %d iptables rules of its sandbox", pins, leases, rules)
	}
	if err := os.Remove(filepath.Join(dir, "duo.yaml")); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, converge, "the pod gone", func() bool {
		return len(n.containers("duo-web"))+len(n.containers("duo-side")) == 0
	})
	// The sandbox goes after the last container (a CNI DEL of its own).
	testenv.WaitFor(t, converge, "the pod's sandbox released", func() bool {
		pins, leases, rules := networkByPrefix(t, n.ns, runDir, "pod_duo_")
		left, _ := filepath.Glob(filepath.Join(stateDir(n.ns), "pods", "*"))
		return pins+leases+rules+len(left) == 0
	})
	if get(fmt.Sprintf("http://127.0.0.1:%d/", port)) != "" {
		t.Errorf("the pod's port %d still answers after its removal", port)
	}
}

// unpinPods unmounts the sandboxes' namespace pins under a state
// directory, whatever a failed test left.
func unpinPods(state string) {
	pins, _ := filepath.Glob(filepath.Join(state, "pods", "*", "*"))
	for _, p := range pins {
		_ = exec.Command("umount", "-l", p).Run()
	}
}
