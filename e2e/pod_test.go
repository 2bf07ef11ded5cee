package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
)

// podEnv is the one daemon the cases of TestPods share, each with pods
// and files of its own names.
type podEnv struct {
	d       *testenv.TestDaemon
	dir     string // the manifests directory
	hostDir string // the only bind source the node allows (hostPath volumes)
	runDir  string // --network-run-dir
	subnet  string // the bridge's
}

// podCase is a subtest of TestPods: the manifest files it starts from,
// written with every other case's before any is checked, so that all the
// pods converge at once, and what it checks then (in parallel with the
// others, n failing the subtest).
type podCase struct {
	name  string
	files map[string]string
	check func(t *testing.T, n *node)
}

// TestPods: Kubernetes Pods (docs/pods.md) on a real containerd, each
// checked through containerd: a hostNetwork pod of two containers that
// reach each other over the loopback; a bridge pod with a hostPort on
// 127.0.0.1; an init container that completes before the container
// starts, through a hostPath volume; a memory emptyDir that is a tmpfs in
// the container; a liveness probe that restarts its container; a field
// the node refuses (file:line, field, "valid in Kubernetes, not supported
// on this node") with nothing that runs touched; a pod's container and a
// Task of one name, both files broken, each naming the other, the Task's
// container untouched. One daemon runs them all.
func TestPods(t *testing.T) {
	n := newNode(t, "e2e-pods")
	dir := t.TempDir()
	hostDir := t.TempDir()
	runDir := t.TempDir()
	bridge, subnet := bridgeOf(t.Name())
	// Once the daemon has stopped (it restarts a failing container, and
	// pins its namespace again), before the directories go, whatever
	// failed: the pins, the bridge pods' rules, the bridge.
	t.Cleanup(func() { _ = exec.Command("ip", "link", "delete", bridge).Run() })
	t.Cleanup(func() { _ = testenv.DropNATRules("reconciler-" + n.ns) })
	t.Cleanup(func() { testenv.UnpinAll(runDir); unpinPods(stateDir(n.ns)) })
	d := startReconciler(t, n.ns, dir, "-v", "1", // -v 1 logs each resync
		"--bridge", bridge, "--bridge-subnet", subnet, "--network-run-dir", runDir,
		"--allowed-bind-sources", hostDir)
	p := &podEnv{d: d, dir: dir, hostDir: hostDir, runDir: runDir, subnet: subnet}
	cases := []podCase{
		podHostNetwork(t), podBridgeHostPort(t, p), podInitContainer(t, p), podMemoryEmptyDir(),
		podLivenessRestarts(p), podRefusedField(p), podNameClash(p),
	}
	for _, c := range cases {
		for name, content := range c.files {
			testenv.WriteFile(t, dir, name, content)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.check(t, &node{t: t, ns: n.ns, client: n.client})
		})
	}
}

// podHostNetwork: a hostNetwork pod of two containers. The server listens
// on the host's 127.0.0.1:PORT; the client connects to it there, at its
// start and in its exec liveness probe (which runs inside the client's
// container). Both run in the host's network namespace, and the test
// reaches the server too.
func podHostNetwork(t *testing.T) podCase {
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	pod := testenv.Pod("duo", "hostNetwork: true", "terminationGracePeriodSeconds: 1", "containers:",
		testenv.PodContainer("server",
			"args: [-listen, '"+addr+"', -message, duo-server]",
			fmt.Sprintf("ports: [{name: http, containerPort: %d}]", port),
			"livenessProbe: {httpGet: {port: http, path: /}, periodSeconds: 1, timeoutSeconds: 3}"),
		testenv.PodContainer("client",
			"args: [-connect, '"+addr+"', -connect-retry, 20s, -message, duo-client]",
			"livenessProbe: {exec: {command: [/testapp, -connect, '"+addr+"', -exit-after, 1ms]}, periodSeconds: 1, timeoutSeconds: 3}"))
	return podCase{"HostNetworkLoopback", map[string]string{"duo.yaml": pod}, func(t *testing.T, n *node) {
		var server, client ctr
		testenv.WaitFor(t, converge, "duo-server and duo-client running", func() bool {
			var ok1, ok2 bool
			server, ok1 = n.running("duo-server")
			client, ok2 = n.running("duo-client")
			return ok1 && ok2
		})
		for _, c := range []ctr{server, client} {
			if ns := netnsOf(t, n, c.ID); ns != nil {
				t.Errorf("%s has a network namespace of its own (%+v), want the host's", c.ID, *ns)
			}
		}
		testenv.WaitFor(t, converge, "duo-server answers the test on "+addr, func() bool { return get("http://"+addr+"/") == "duo-server" })
		// From the other container of the pod, over the loopback they
		// share: its command, and its probe, which runs inside it.
		testenv.WaitFor(t, converge, "duo-client reached duo-server", func() bool {
			return strings.Contains(podLogs(n.ns, "duo-client"), "testapp: connect "+addr+": ok")
		})
		testenv.WaitFor(t, converge, "duo-client's probe reached duo-server", func() bool {
			return strings.Contains(taskStatus(t, n.ns, "duo-client").Health.Output, "connect "+addr+": ok")
		})
		testenv.WaitFor(t, converge, "duo-server healthy (httpGet by the port's name)", func() bool {
			return taskStatus(t, n.ns, "duo-server").Health.State == "healthy"
		})
		for _, was := range []ctr{server, client} {
			if now, ok := n.running(was.Labels[observed.LabelTask]); !ok || now.ID != was.ID || now.Pid != was.Pid {
				t.Errorf("%s did not keep running: %+v, was %+v", was.Labels[observed.LabelTask], now, was)
			}
		}
	}}
}

// podBridgeHostPort: a pod of one container without hostNetwork is a
// bridge task: an address of the bridge's subnet, in a network namespace
// of its own (its sandbox's), its hostPort published on 127.0.0.1. Its
// file removed, nothing of its network is left.
func podBridgeHostPort(t *testing.T, p *podEnv) podCase {
	hostPort := freePort(t)
	pod := testenv.Pod("solo", "terminationGracePeriodSeconds: 1", "containers:",
		testenv.PodContainer("web",
			"args: [-listen, ':8080', -message, solo-web]",
			fmt.Sprintf("ports: [{name: http, containerPort: 8080, hostPort: %d, hostIP: 127.0.0.1}]", hostPort),
			"livenessProbe: {httpGet: {port: http, path: /}, periodSeconds: 1, timeoutSeconds: 3}"))
	return podCase{"BridgeHostPort", map[string]string{"solo.yaml": pod}, func(t *testing.T, n *node) {
		var w ctr
		testenv.WaitFor(t, converge, "solo-web running", func() (ok bool) { w, ok = n.running("solo-web"); return ok })
		ip := w.Labels[observed.LabelIP]
		if !strings.HasPrefix(ip, strings.TrimSuffix(p.subnet, "0/24")) {
			t.Errorf("solo-web's address %q is not of the subnet %s", ip, p.subnet)
		}
		if ns := netnsOf(t, n, w.ID); ns == nil || ns.Path == "" {
			t.Errorf("solo-web's network namespace: %+v, want one of its own, pinned", ns)
		}
		url := fmt.Sprintf("http://127.0.0.1:%d/", hostPort)
		testenv.WaitFor(t, converge, "solo-web answers on "+url, func() bool { return get(url) == "solo-web" })
		// The probe dials the task's address, as the kubelet dials the pod's.
		testenv.WaitFor(t, converge, "solo-web healthy", func() bool { return taskStatus(t, n.ns, "solo-web").Health.State == "healthy" })
		if st := taskStatus(t, n.ns, "solo-web"); st.IP != ip || st.Ports != fmt.Sprintf("127.0.0.1:%d->8080/TCP", hostPort) {
			t.Errorf("solo-web's status: ip %q ports %q, want %q 127.0.0.1:%d->8080/TCP", st.IP, st.Ports, ip, hostPort)
		}

		// The pod's network is its sandbox's (pod_solo_...): a directory
		// in the state directory, a namespace pin, a lease, iptables rules.
		sandboxes := func() []string {
			dirs, _ := filepath.Glob(filepath.Join(stateDir(n.ns), "pods", "pod_solo_*"))
			return dirs
		}
		if pins, leases, rules := networkByPrefix(t, n.ns, p.runDir, "pod_solo_"); len(sandboxes()) != 1 || pins == 0 || leases == 0 || rules == 0 {
			t.Errorf("solo runs with sandbox directories %v, %d pins, %d leases, %d iptables rules of its sandbox", sandboxes(), pins, leases, rules)
		}
		if err := os.Remove(filepath.Join(p.dir, "solo.yaml")); err != nil {
			t.Fatal(err)
		}
		// The sandbox's directory goes last, after its network and pins.
		testenv.WaitFor(t, converge, "solo-web and its sandbox gone", func() bool {
			return len(n.containers("solo-web")) == 0 && len(sandboxes()) == 0
		})
		if pins, leases, rules := networkByPrefix(t, n.ns, p.runDir, "pod_solo_"); pins+leases+rules > 0 {
			t.Errorf("left of solo's sandbox: %d pins, %d leases, %d iptables rules", pins, leases, rules)
		}
		noNetworkLeft(t, n.ns, p.runDir, "solo-web")
		if get(url) != "" {
			t.Errorf("port %d still answers after the pod's file is removed", hostPort)
		}
	}}
}

// podInitContainer: the init container writes a file into a hostPath
// volume and exits 0 a second later; the container starts only then (its
// container is created after the init task exited, by containerd's
// clock) and reads what the init container wrote.
func podInitContainer(t *testing.T, p *podEnv) podCase {
	shared := filepath.Join(p.hostDir, "seq")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	mount := "volumeMounts: [{name: shared, mountPath: /shared}]"
	pod := testenv.Pod("seq", "terminationGracePeriodSeconds: 1",
		"volumes: [{name: shared, hostPath: {path: '"+shared+"'}}]",
		"initContainers:",
		testenv.PodContainer("setup", "args: [-write-file, /shared/ready, -write-content, 'written by setup', -exit-after, 1s]", mount),
		"containers:",
		testenv.PodContainer("main", "args: [-inspect, /shared/ready]", mount))
	return podCase{"InitContainerFirst", map[string]string{"seq.yaml": pod}, func(t *testing.T, n *node) {
		// While the init container runs, the container does not exist
		// (listed first: once it exists, the init task has exited).
		testenv.WaitFor(t, converge, "seq-main running", func() bool {
			mains := n.containers("seq-main")
			if setups := n.containers("seq-setup"); len(mains) > 0 && len(setups) == 1 && setups[0].Status == containerd.Running {
				t.Fatalf("seq-main %+v exists while seq-setup runs", mains)
			}
			return len(mains) == 1 && mains[0].Status == containerd.Running
		})
		main, _ := n.running("seq-main")
		setups := n.containers("seq-setup")
		if len(setups) != 1 {
			t.Fatalf("containers of seq-setup: %+v, want one", setups)
		}
		setup := setups[0]
		st := taskState(t, n, setup.ID)
		created := createdAt(t, n, main.ID)
		if st.Status != containerd.Stopped || st.ExitStatus != 0 {
			t.Errorf("seq-setup's task: %s, exit %d; want stopped, exit 0", st.Status, st.ExitStatus)
		}
		if !created.After(st.ExitTime) {
			t.Errorf("seq-main's container was created at %s, not after seq-setup's task exited at %s",
				created.Format(time.RFC3339Nano), st.ExitTime.Format(time.RFC3339Nano))
		}
		if r := setup.Labels[observed.LabelRestarts]; r != "0" {
			t.Errorf("seq-setup restarted %s times, want 0", r)
		}
		if b := fileBytes(t, filepath.Join(shared, "ready")); string(b) != "written by setup" {
			t.Errorf("the host's file: %q", b)
		}
		testenv.WaitFor(t, converge, "seq-main read seq-setup's file", func() bool {
			return strings.Contains(podLogs(n.ns, "seq-main"), `inspect /shared/ready: mode=0644 uid=0 gid=0 content="written by setup"`)
		})
		if ph := taskStatus(t, n.ns, "seq-setup").Phase; ph != "Completed" {
			t.Errorf("seq-setup's phase %q, want Completed", ph)
		}
	}}
}

// podMemoryEmptyDir: an emptyDir of medium Memory is a tmpfs of the size
// asked for, in containerd's spec of the container and in the container's
// own /proc/self/mounts, and writable.
func podMemoryEmptyDir() podCase {
	pod := testenv.Pod("mem", "terminationGracePeriodSeconds: 1",
		"volumes: [{name: scratch, emptyDir: {medium: Memory, sizeLimit: 8Mi}}]",
		"containers:",
		testenv.PodContainer("app", "args: [-write-file, /scratch/note, -inspect, /proc/self/mounts]",
			"volumeMounts: [{name: scratch, mountPath: /scratch}]"))
	return podCase{"MemoryEmptyDir", map[string]string{"mem.yaml": pod}, func(t *testing.T, n *node) {
		var c ctr
		testenv.WaitFor(t, converge, "mem-app running", func() (ok bool) { c, ok = n.running("mem-app"); return ok })
		spec := specOf(t, n, c.ID)
		i := slices.IndexFunc(spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/scratch" })
		if i < 0 || spec.Mounts[i].Type != "tmpfs" || !slices.Contains(spec.Mounts[i].Options, "size=8388608") {
			t.Fatalf("mounts of mem-app's container: %+v, want a tmpfs of 8Mi at /scratch", spec.Mounts)
		}
		var logs string
		testenv.WaitFor(t, converge, "mem-app printed its mounts", func() bool {
			logs = podLogs(n.ns, "mem-app")
			return strings.Contains(logs, "inspect /proc/self/mounts:")
		})
		if !strings.Contains(logs, "testapp: write /scratch/note: ok") {
			t.Errorf("mem-app could not write into its emptyDir:\n%s", logs)
		}
		// 8Mi is size=8192k as the kernel prints it.
		if !regexp.MustCompile(`tmpfs /scratch tmpfs [^ ]*size=8192k`).MatchString(logs) {
			t.Errorf("no tmpfs of 8Mi at /scratch in mem-app's /proc/self/mounts:\n%s", logs)
		}
	}}
}

// podLivenessRestarts: a liveness probe that starts failing (the
// container removes the file it checks) restarts the container: the same
// containerd container, a new task, counted.
func podLivenessRestarts(p *podEnv) podCase {
	pod := testenv.Pod("flaky", "terminationGracePeriodSeconds: 1", "containers:",
		testenv.PodContainer("app", "args: [-marker, /tmp/ok, -marker-gone-after, 2s]",
			"livenessProbe: {exec: {command: [/testapp, probe, -file, /tmp/ok]}, periodSeconds: 1, failureThreshold: 2}"))
	return podCase{"LivenessRestarts", map[string]string{"flaky.yaml": pod}, func(t *testing.T, n *node) {
		var first ctr
		testenv.WaitFor(t, converge, "flaky-app running", func() (ok bool) { first, ok = n.running("flaky-app"); return ok })
		var again ctr
		testenv.WaitFor(t, 30*time.Second, "flaky-app restarted for its liveness probe", func() bool {
			var ok bool
			again, ok = n.running("flaky-app")
			restarts, _ := strconv.Atoi(again.Labels[observed.LabelRestarts])
			return ok && again.Pid != first.Pid && restarts >= 1
		})
		if again.ID != first.ID {
			t.Errorf("restarted as container %s, want the same container %s with a new task", again.ID, first.ID)
		}
		if st := taskStatus(t, n.ns, "flaky-app"); st.Restarts < 1 {
			t.Errorf("flaky-app's restarts on the status: %d, want at least 1", st.Restarts)
		}
		if err := p.d.AwaitLog(t.Context(), "unhealthy: 2 probes failed: exec exit 1", converge); err != nil {
			t.Error(err)
		}
	}}
}

// podRefusedField: a field Kubernetes has and this node does not
// (spec.affinity) is refused with file:line and the field, by `reconciler
// validate` and on the daemon's status; the pod's running container (its
// file's last valid version) and a Task of another file are untouched.
func podRefusedField(p *podEnv) podCase {
	good := testenv.Pod("strict", "terminationGracePeriodSeconds: 1", "containers:", testenv.PodContainer("app"))
	bad := testenv.Pod("strict", "terminationGracePeriodSeconds: 1", "affinity: {}", "containers:", testenv.PodContainer("app"))
	line := testenv.LineOf(bad, "affinity:")
	const refusal = "spec.affinity: valid in Kubernetes, not supported on this node"
	files := map[string]string{"keeper.yaml": testenv.Manifest("keeper", "stopGracePeriod: 1s"), "strict.yaml": good}
	return podCase{"RefusedField", files, func(t *testing.T, n *node) {
		// reconciler validate, on the file alone.
		path := filepath.Join(t.TempDir(), "strict.yaml")
		if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := cli(t, "validate", path)
		want := fmt.Sprintf("%s:%d: %s", path, line, refusal)
		if code != 1 || !slices.Contains(strings.Split(stdout+stderr, "\n"), want) {
			t.Errorf("validate: exit %d, want 1 and the line %q in:\n%s%s", code, want, stdout, stderr)
		}

		var keeper, strict ctr
		testenv.WaitFor(t, converge, "keeper and strict-app running", func() bool {
			var ok1, ok2 bool
			keeper, ok1 = n.running("keeper")
			strict, ok2 = n.running("strict-app")
			return ok1 && ok2
		})
		// The daemon: the file broken, in the same words.
		testenv.WriteFile(t, p.dir, "strict.yaml", bad)
		want = fmt.Sprintf("strict.yaml:%d: %s", line, refusal)
		var broken string
		testenv.WaitFor(t, converge, "strict.yaml broken on the status", func() bool {
			broken = guardStatus(t, n.ns).Manifests.Broken["strict.yaml"]
			return broken != ""
		})
		if !slices.Contains(strings.Split(broken, "\n"), want) {
			t.Errorf("strict.yaml's errors on the status:\n%s\nwant the line %q", broken, want)
		}
		if err := p.d.AwaitLog(t.Context(), want, converge); err != nil {
			t.Error(err)
		}
		podResyncs(t, p.d, 3)
		for _, was := range []ctr{keeper, strict} {
			task := was.Labels[observed.LabelTask]
			if cs := n.containers(task); len(cs) != 1 || cs[0].ID != was.ID || cs[0].Pid != was.Pid || cs[0].Status != containerd.Running {
				t.Errorf("%s after the refused file: %+v, want only %s with pid %d running", task, cs, was.ID, was.Pid)
			}
		}
	}}
}

// podNameClash: a Task web-app runs; a pod web with a container app (task
// web-app) in another file breaks both files, each error naming the other
// file and line, and the Task's container runs on, the same process. The
// pod's file removed, the Task's file is valid again, still the same
// process.
func podNameClash(p *podEnv) podCase {
	task := testenv.Manifest("web-app", "stopGracePeriod: 1s")
	pod := testenv.Pod("web", "terminationGracePeriodSeconds: 1", "containers:", testenv.PodContainer("app"))
	taskLine, podLine := testenv.LineOf(task, "name: web-app"), testenv.LineOf(pod, "- name: app")
	wantTask := fmt.Sprintf(`clash-task.yaml:%d: metadata.name: task "web-app" is also defined in clash-pod.yaml:%d;`, taskLine, podLine)
	wantPod := fmt.Sprintf(`clash-pod.yaml:%d: spec.containers[0].name: task "web-app" is also defined in clash-task.yaml:%d;`, podLine, taskLine)
	return podCase{"NameClashWithTask", map[string]string{"clash-task.yaml": task}, func(t *testing.T, n *node) {
		// reconciler validate, on a directory of the two files.
		vdir := t.TempDir()
		testenv.WriteFile(t, vdir, "clash-task.yaml", task)
		testenv.WriteFile(t, vdir, "clash-pod.yaml", pod)
		stdout, stderr, code := cli(t, "validate", vdir)
		if out := stdout + stderr; code != 1 || !strings.Contains(out, filepath.Join(vdir, wantTask)) || !strings.Contains(out, filepath.Join(vdir, wantPod)) {
			t.Errorf("validate: exit %d, want 1 and\n%s\n%s\nin:\n%s", code, filepath.Join(vdir, wantTask), filepath.Join(vdir, wantPod), out)
		}

		var before ctr
		testenv.WaitFor(t, converge, "web-app running", func() (ok bool) { before, ok = n.running("web-app"); return ok })
		testenv.WriteFile(t, p.dir, "clash-pod.yaml", pod)
		var broken map[string]string
		testenv.WaitFor(t, converge, "both files broken on the status", func() bool {
			broken = guardStatus(t, n.ns).Manifests.Broken
			return broken["clash-task.yaml"] != "" && broken["clash-pod.yaml"] != ""
		})
		if !strings.HasPrefix(broken["clash-task.yaml"], wantTask) {
			t.Errorf("clash-task.yaml's error: %q, want it to start %q", broken["clash-task.yaml"], wantTask)
		}
		if !strings.HasPrefix(broken["clash-pod.yaml"], wantPod) {
			t.Errorf("clash-pod.yaml's error: %q, want it to start %q", broken["clash-pod.yaml"], wantPod)
		}
		unchanged := func(when string) {
			t.Helper()
			if cs := n.containers("web-app"); len(cs) != 1 || cs[0].ID != before.ID || cs[0].Pid != before.Pid || cs[0].Status != containerd.Running {
				t.Errorf("%s: containers of web-app %+v, want only %s with pid %d running", when, cs, before.ID, before.Pid)
			}
		}
		podResyncs(t, p.d, 3)
		unchanged("with the clash")

		if err := os.Remove(filepath.Join(p.dir, "clash-pod.yaml")); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, converge, "clash-task.yaml valid again", func() bool {
			broken = guardStatus(t, n.ns).Manifests.Broken
			return broken["clash-task.yaml"] == "" && broken["clash-pod.yaml"] == ""
		})
		podResyncs(t, p.d, 3)
		unchanged("after the pod's file is removed")
		if st := taskStatus(t, n.ns, "web-app"); st.Source != "clash-task.yaml" {
			t.Errorf("web-app's source on the status: %q, want clash-task.yaml", st.Source)
		}
	}}
}

// podResyncs is TestDaemon.WaitResyncs for a subtest (the daemon's own
// waits fail the test that started it).
func podResyncs(t *testing.T, d *testenv.TestDaemon, k int) {
	t.Helper()
	from := strings.Count(d.Output(), testenv.Resynced)
	if err := d.Await(t.Context(), converge, fmt.Sprintf("%d resyncs logged", k), func() bool {
		return strings.Count(d.Output(), testenv.Resynced) >= from+k
	}); err != nil {
		t.Fatal(err)
	}
}

// podLogs is what `reconciler logs TASK` prints, "" while it has nothing.
func podLogs(ns, task string) string {
	out, _ := exec.Command(env.bin, "logs", task, "--state-dir", stateDir(ns)).Output()
	return string(out)
}

// specOf is containerd's OCI spec of container id.
func specOf(t *testing.T, n *node, id string) *specs.Spec {
	t.Helper()
	c, err := n.client.LoadContainer(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.Spec(t.Context())
	if err != nil {
		t.Fatalf("spec of %s: %v", id, err)
	}
	return spec
}

// netnsOf is the network namespace container id's spec asks for, nil for
// the host's.
func netnsOf(t *testing.T, n *node, id string) *specs.LinuxNamespace {
	t.Helper()
	spec := specOf(t, n, id)
	if spec.Linux == nil {
		return nil
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			return &ns
		}
	}
	return nil
}

// taskState is containerd's status of the task of container id: its
// state, exit code and exit time.
func taskState(t *testing.T, n *node, id string) containerd.Status {
	t.Helper()
	ctx := t.Context()
	c, err := n.client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatalf("task of %s: %v", id, err)
	}
	st, err := tk.Status(ctx)
	if err != nil {
		t.Fatalf("status of %s: %v", id, err)
	}
	return st
}

// createdAt is when containerd created container id.
func createdAt(t *testing.T, n *node, id string) time.Time {
	t.Helper()
	c, err := n.client.LoadContainer(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatalf("info of %s: %v", id, err)
	}
	return info.CreatedAt
}
