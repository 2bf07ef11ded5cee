package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gocni "github.com/containerd/go-cni"
)

// testNetwork is a bridge of the test's own, with the real CNI plugins; it
// needs root and the plugins (make deps), and is skipped without them
// outside CI.
func testNetwork(t *testing.T) *Runtime {
	t.Helper()
	_, err := os.Stat("/usr/lib/cni/bridge")
	if os.Geteuid() != 0 || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: the network tests need root and the CNI plugins in /usr/lib/cni (make deps)")
		}
		t.Skip("needs root and the CNI plugins in /usr/lib/cni")
	}
	n := os.Getpid() % 250
	bridge := fmt.Sprintf("rcu%05d", os.Getpid()%100000)
	r := &Runtime{stateDir: t.TempDir(), inFlight: map[string]int{}}
	runDir := t.TempDir()
	WithNetwork(Network{Name: "reconciler-unit-" + bridge, Bridge: bridge, Subnet: fmt.Sprintf("10.251.%d.0/24", n), RunDir: runDir})(r)
	t.Cleanup(func() {
		pins, _ := filepath.Glob(filepath.Join(runDir, "netns", "*"))
		for _, p := range pins {
			_ = unpinNetNS(p)
		}
		_ = exec.Command("ip", "link", "delete", bridge).Run()
	})
	return r
}

// leftOf counts what the network holds for container id: its pin or port
// file, its lease, iptables rules naming it.
func leftOf(t *testing.T, r *Runtime, id string) (pins, leases, rules int) {
	t.Helper()
	if ids, _ := r.net.pinned(); strings.Contains(strings.Join(ids, " ")+" ", id+" ") {
		pins++
	}
	ls, _ := r.net.leases()
	for _, owner := range ls {
		if owner == id {
			leases++
		}
	}
	out, err := exec.Command("iptables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v %s", err, out)
	}
	rules = strings.Count(string(out), `id: \"`+id+`\"`) // iptables-save escapes the comment's quotes
	return pins, leases, rules
}

// TestSweepNetwork: whatever step a crash interrupted a create or a delete
// at, the sweep of a container that does not exist leaves nothing: no pin,
// no port file, no lease, no iptables rule; a container that exists, or is
// being created, is left alone.
func TestSweepNetwork(t *testing.T) {
	r := testNetwork(t)
	ctx := context.Background()
	ports := []gocni.PortMapping{{HostPort: 18000 + int32(os.Getpid()%1000), ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}
	none := func(string) bool { return false }

	for _, step := range []struct {
		name  string
		setUp func(id string)
	}{
		{"pinned only", func(id string) {
			if err := pinNetNS(r.net.nsPath(id)); err != nil {
				t.Fatal(err)
			}
		}},
		{"set up (ADD done), no container", func(id string) {
			if _, err := r.net.setUp(ctx, id, ports, false); err != nil {
				t.Fatal(err)
			}
		}},
		{"DEL done, pin left", func(id string) {
			if _, err := r.net.setUp(ctx, id, ports, false); err != nil {
				t.Fatal(err)
			}
			c, _ := r.net.cniOf()
			if err := c.Remove(ctx, id, r.net.nsPath(id), gocni.WithCapabilityPortMap(ports)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(step.name, func(t *testing.T) {
			id := "sweep-" + strings.ReplaceAll(step.name[:6], " ", "x") + "-0123456789ab"
			step.setUp(id)
			if p, _, _ := leftOf(t, r, id); p == 0 {
				t.Fatal("nothing pinned: the case proves nothing")
			}
			// Being created: left alone.
			r.busy(id, true)
			if err := r.sweepNetwork(ctx, none); err != nil {
				t.Fatal(err)
			}
			if p, _, _ := leftOf(t, r, id); p == 0 {
				t.Fatal("the sweep released the network of a container being created")
			}
			r.busy(id, false)
			// Existing: left alone.
			if err := r.sweepNetwork(ctx, func(string) bool { return true }); err != nil {
				t.Fatal(err)
			}
			if p, _, _ := leftOf(t, r, id); p == 0 {
				t.Fatal("the sweep released the network of a container that exists")
			}
			if err := r.sweepNetwork(ctx, none); err != nil {
				t.Fatal(err)
			}
			if p, l, n := leftOf(t, r, id); p+l+n > 0 {
				t.Errorf("after the sweep: %d pins, %d leases, %d iptables rules of %s", p, l, n, id)
			}
		})
	}

	// A listing older than a create that finished since: the container is
	// asked about again before its network is released, and kept.
	id0 := "sweep-late-0123456789ab"
	if _, err := r.net.setUp(ctx, id0, ports, false); err != nil {
		t.Fatal(err)
	}
	r.net.testExists = func(id string) bool { return id == id0 }
	if err := r.sweepNetwork(ctx, none); err != nil {
		t.Fatal(err)
	}
	if p, l, _ := leftOf(t, r, id0); p == 0 || l == 0 {
		t.Errorf("the sweep released the network of a container created after its listing")
	}
	r.net.testExists = nil
	if err := r.sweepNetwork(ctx, none); err != nil {
		t.Fatal(err)
	}

	// A lease of no pin (its namespace gone some other way) is removed.
	id := "sweep-lease-0123456789ab"
	if _, err := r.net.setUp(ctx, id, ports, false); err != nil {
		t.Fatal(err)
	}
	if err := r.net.tearDown(ctx, id); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(r.net.cfg.RunDir, "ipam", r.net.cfg.Name)
	if err := os.WriteFile(filepath.Join(dir, "10.251.0.77"), []byte(id+"\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.sweepNetwork(ctx, none); err != nil {
		t.Fatal(err)
	}
	if _, l, _ := leftOf(t, r, id); l != 0 {
		t.Errorf("a lease of no pin was left")
	}
}
