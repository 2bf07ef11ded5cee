package runtime

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/warren/reconciler/pkg/desired"
)

// TestSandboxID: the containers of one pod and one PodShared share a
// sandbox; another pod, another network or anything shared that differs
// is another; a Task has none.
func TestSandboxID(t *testing.T) {
	base := desired.Spec{Pod: "web", Network: desired.NetworkBridge,
		PodShared: &desired.PodShared{Hostname: "web", Ports: []desired.Port{{ContainerPort: 80, HostPort: 8080}}}}
	id := sandboxID(base)
	if !isSandboxID(id) || len(id) != len("pod_web_")+8 {
		t.Fatalf("sandboxID = %q", id)
	}
	other := base
	other.Image = "another:1" // a container's own field: the same sandbox
	if sandboxID(other) != id {
		t.Error("a container's own field changes the sandbox")
	}
	for name, change := range map[string]func(s *desired.Spec){
		"pod":      func(s *desired.Spec) { s.Pod = "web2" },
		"network":  func(s *desired.Spec) { s.Network = desired.NetworkHost },
		"hostname": func(s *desired.Spec) { s.PodShared = &desired.PodShared{Hostname: "box", Ports: base.PodShared.Ports} },
		"ports":    func(s *desired.Spec) { s.PodShared = &desired.PodShared{Hostname: "web"} },
	} {
		s := base
		change(&s)
		if sandboxID(s) == id {
			t.Errorf("another %s, the same sandbox", name)
		}
	}
	if sandboxID(desired.Spec{Network: desired.NetworkBridge}) != "" {
		t.Error("a Task has a sandbox")
	}
}

// TestSandboxLifecycle: a sandbox is made once (a second ensure finds it,
// same address, no new ADD), made again where a reboot took its pins, kept
// by the sweep while a container uses it, and released whole when none
// does: no pin, lease, iptables rule or directory.
func TestSandboxLifecycle(t *testing.T) {
	r := testNetwork(t)
	ctx := context.Background()
	used := true
	r.net.testExists = func(string) bool { return used }
	spec := desired.Spec{Pod: "lc", Network: desired.NetworkBridge,
		PodShared: &desired.PodShared{Hostname: "lc", Ports: []desired.Port{{ContainerPort: 80, HostPort: 18500 + os.Getpid()%1000, HostIP: "127.0.0.1"}}}}
	id := sandboxID(spec)
	t.Cleanup(func() {
		for _, p := range []string{"ipc", "uts"} {
			_ = unpinNetNS(filepath.Join(r.sandboxDir(id), p))
		}
	})
	sb, err := r.ensureSandbox(ctx, id, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sb.ipc, sb.uts, r.net.nsPath(id)} {
		if !isMountpoint(p) {
			t.Errorf("%s is not pinned", p)
		}
	}
	if pins, leases, rules := leftOf(t, r, id); pins != 1 || leases != 1 || rules == 0 {
		t.Fatalf("the sandbox holds %d pins, %d leases, %d rules", pins, leases, rules)
	}
	again, err := r.ensureSandbox(ctx, id, spec)
	if err != nil || again.ip != sb.ip {
		t.Errorf("a second ensure: %v, address %q, want %q", err, again.ip, sb.ip)
	}
	// A reboot, emulated: the rules and the lease gone (a DEL), the pins
	// gone, the record kept.
	if err := r.net.tearDown(ctx, id); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sb.ipc, sb.uts, r.net.nsPath(id)} {
		if err := unpinNetNS(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.ensureSandbox(ctx, id, spec); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{sb.ipc, sb.uts, r.net.nsPath(id)} {
		if !isMountpoint(p) {
			t.Errorf("%s is not pinned again", p)
		}
	}
	if err := r.sweepSandboxes(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.sandboxDir(id)); err != nil {
		t.Errorf("the sweep released a sandbox in use: %v", err)
	}
	used = false
	if err := r.sweepSandboxes(ctx); err != nil {
		t.Fatal(err)
	}
	if pins, leases, rules := leftOf(t, r, id); pins+leases+rules > 0 {
		t.Errorf("left of a released sandbox: %d pins, %d leases, %d rules", pins, leases, rules)
	}
	if _, err := os.Stat(r.sandboxDir(id)); !os.IsNotExist(err) {
		t.Errorf("the sandbox's directory is left: %v", err)
	}
}
