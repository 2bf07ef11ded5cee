package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/pkg/oci"
	gocni "github.com/containerd/go-cni"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/runtime"
)

// netResult is the bridge measure: a bridge task with one published port,
// dropped into a reconciler, against the floor doing the same CNI calls by
// hand, and the plain floor (host network) in the same trials.
type netResult struct {
	Skipped string `json:"skipped,omitempty"` // why the measure did not run

	// The reconciler's bridge and the floor's: the bench's own, never the
	// daemon's defaults.
	Bridge      string `json:"bridge"`
	Subnet      string `json:"subnet"`
	FloorBridge string `json:"floorBridge"`
	FloorSubnet string `json:"floorSubnet"`

	FloorSeconds      []float64 `json:"floorSeconds"`      // the plain floor (host network), same trials
	FloorCNISeconds   []float64 `json:"floorCNISeconds"`   // the floor + netns + CNI ADD, first call to start event
	CNIAddSeconds     []float64 `json:"cniAddSeconds"`     // the ADD alone, in those trials
	CNIDelSeconds     []float64 `json:"cniDelSeconds"`     // the DEL of their teardown (not timed in the trial)
	ReconcilerSeconds []float64 `json:"reconcilerSeconds"` // a bridge task's drop to its start event
}

// cniPlugins are the plugins the product's conflist (pkg/runtime/network.go)
// and the loopback network call.
var cniPlugins = []string{"bridge", "host-local", "portmap", "firewall", "loopback"}

// cniMissing says what this machine lacks for bridge tasks (the CNI
// plugins, iptables for portmap), or "".
func cniMissing() string {
	for _, p := range cniPlugins {
		found := false
		for _, d := range runtime.DefaultPluginDirs {
			if st, err := os.Stat(filepath.Join(d, p)); err == nil && st.Mode()&0o111 != 0 {
				found = true
				break
			}
		}
		if !found {
			return fmt.Sprintf("the CNI plugin %s is in none of %s (apt-get install -y containernetworking-plugins, or make deps)",
				p, strings.Join(runtime.DefaultPluginDirs, ", "))
		}
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return "iptables not found on PATH (apt-get install -y iptables, or make deps)"
	}
	return ""
}

// netNames are the bench's own bridges and subnets: never the daemon's
// defaults (reconciler0, 10.47.0.0/22) nor the e2e tests' (rct*,
// 10.200-249.x.0/24), and another run's only by chance of the pid.
func netNames() (bridge, subnet, floorBridge, floorSubnet string) {
	h := fnv.New32a()
	fmt.Fprintf(h, "%d-%d", os.Getpid(), time.Now().UnixNano())
	n := h.Sum32()
	return fmt.Sprintf("rcbr%05d", n%100000), fmt.Sprintf("10.251.%d.0/24", n%256),
		fmt.Sprintf("rcbf%05d", n%100000), fmt.Sprintf("10.252.%d.0/24", n%256)
}

// floorConflist is the product's conflist (Network.conflist in
// pkg/runtime/network.go), copied: a bridge with NAT, host-local leases in
// dataDir, portmap, firewall.
func floorConflist(name, bridge, subnet, dataDir string) ([]byte, error) {
	_, ipn, err := net.ParseCIDR(subnet)
	if err != nil || ipn.IP.To4() == nil {
		return nil, fmt.Errorf("subnet %q: want an IPv4 CIDR", subnet)
	}
	gw := make(net.IP, 4)
	copy(gw, ipn.IP.To4())
	gw[3]++
	return json.Marshal(map[string]any{
		"cniVersion": "1.0.0",
		"name":       name,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": ipn.String(), "gateway": gw.String()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": dataDir,
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true},
			map[string]any{"type": "firewall", "ingressPolicy": "same-bridge"},
		},
	})
}

// cniFloor is the floor (the bare client, host files, no seccomp, no log
// driver) with the network a bridge task gets, made by hand: a pinned
// network namespace, a CNI ADD with the port mapping (the product's
// conflist, then the loopback network, so that the interface is eth0), the
// container's spec pointing at the namespace. Teardown: the container
// removed, a CNI DEL with the same path and mappings, the namespace
// removed.
type cniFloor struct {
	raw    *rawClient
	cni    gocni.CNI
	runDir string
	ports  []gocni.PortMapping

	mu  sync.Mutex
	ns  map[string]string // pinned namespaces by container ID
	add time.Duration     // of the last ADD
	del time.Duration     // of the last DEL
}

func newCNIFloor(raw *rawClient, name, bridge, subnet, runDir string, ports []gocni.PortMapping) (*cniFloor, error) {
	conf, err := floorConflist(name, bridge, subnet, filepath.Join(runDir, "ipam"))
	if err != nil {
		return nil, err
	}
	c, err := gocni.New(gocni.WithPluginDir(runtime.DefaultPluginDirs), gocni.WithMinNetworkCount(2),
		gocni.WithConfListBytes(conf), gocni.WithLoNetwork)
	if err != nil {
		return nil, fmt.Errorf("floor: CNI configuration: %w", err)
	}
	return &cniFloor{raw: raw, cni: c, runDir: runDir, ports: ports, ns: map[string]string{}}, nil
}

func (f *cniFloor) namespace() string { return f.raw.ns }

func (f *cniFloor) createStart(ctx context.Context, id string) error {
	ns := filepath.Join(f.runDir, "netns", id)
	if err := newNetNS(ns); err != nil {
		return fmt.Errorf("floor: network namespace: %w", err)
	}
	f.mu.Lock()
	f.ns[id] = ns
	f.mu.Unlock()
	began := time.Now()
	res, err := f.cni.Setup(ctx, id, ns, gocni.WithCapabilityPortMap(f.ports))
	f.add = time.Since(began)
	if err != nil {
		return errors.Join(fmt.Errorf("floor: CNI ADD: %w", err), f.release(ctx, id))
	}
	if eth0, ok := res.Interfaces["eth0"]; !ok || len(eth0.IPConfigs) == 0 {
		return errors.Join(errors.New("floor: CNI ADD: no address for eth0"), f.release(ctx, id))
	}
	err = f.raw.createStartIn(ctx, id, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: ns}))
	if err != nil {
		return errors.Join(err, f.raw.remove(ctx, id), f.release(ctx, id))
	}
	return nil
}

func (f *cniFloor) remove(ctx context.Context, id string) error {
	if err := f.raw.remove(ctx, id); err != nil {
		return err
	}
	return f.release(ctx, id)
}

// release is the DEL with the namespace's path and the mappings, then the
// namespace's removal.
func (f *cniFloor) release(ctx context.Context, id string) error {
	f.mu.Lock()
	ns := f.ns[id]
	f.mu.Unlock()
	if ns == "" {
		return nil
	}
	began := time.Now()
	if err := f.cni.Remove(ctx, id, ns, gocni.WithCapabilityPortMap(f.ports)); err != nil {
		return fmt.Errorf("floor: CNI DEL of %s: %w", id, err)
	}
	f.del = time.Since(began)
	if err := removeNetNS(ns); err != nil {
		return fmt.Errorf("floor: network namespace of %s: %w", id, err)
	}
	f.mu.Lock()
	delete(f.ns, id)
	f.mu.Unlock()
	return nil
}

// releaseAll releases whatever a failed run left.
func (f *cniFloor) releaseAll(ctx context.Context) error {
	f.mu.Lock()
	var ids []string
	for id := range f.ns {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	var errs []error
	for _, id := range ids {
		errs = append(errs, f.raw.remove(ctx, id), f.release(ctx, id))
	}
	return errors.Join(errs...)
}

// newNetNS makes a network namespace and pins it at path (a bind mount of
// the namespace onto an empty file), from a locked OS thread that is left
// to exit with its goroutine, so that no thread of the bench stays in it.
// (containerd's pkg/netns does the same; it is not in this module's
// go.sum.)
func newNetNS(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		errc <- unix.Mount(src, path, "none", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return fmt.Errorf("pin %s: %w", path, err)
	}
	return nil
}

// removeNetNS unpins the namespace at path and removes the file.
func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// dropBridgeRules deletes the filter rules that name bridge as an
// interface: the firewall plugin's isolation rules (ingressPolicy
// same-bridge), which it keeps after the last DEL since they are the
// bridge's, not a container's. The bench's bridges go with the run.
func dropBridgeRules(bridge string) error {
	out, err := exec.Command("iptables-save", "-t", "filter").CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables-save: %v %s", err, out)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		rule, ok := strings.CutPrefix(line, "-A ")
		if !ok || !(strings.Contains(rule, " -i "+bridge+" ") || strings.Contains(rule, " -o "+bridge+" ")) {
			continue
		}
		args := append([]string{"-t", "filter", "-D"}, testenv.SplitRule(rule)...)
		if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("iptables %q: %v %s", args, err, out))
		}
	}
	return errors.Join(errs...)
}

// bridgeManifest is a bridge task publishing containerPort 8080 on
// 127.0.0.1:port, the test image and its command otherwise (as the floor).
func bridgeManifest(port int) func(string) string {
	return func(name string) string {
		return testenv.Manifest(name, "network: bridge",
			fmt.Sprintf("ports: [{containerPort: 8080, hostPort: %d, hostIP: 127.0.0.1}]", port))
	}
}

// network: K single drops of a bridge task with one published port into a
// reconciler with a bridge of the bench's own, each taking turns with one
// create+start of the floor with the same CNI calls made by hand, and one
// of the plain floor.
func (b *bench) network(ctx context.Context, bin, address, images string) (err error) {
	r := &b.res.Network
	if why := cniMissing(); why != "" {
		if testenv.CI() {
			return fmt.Errorf("bridge networking: CI=true (the measure must run) and %s", why)
		}
		r.Skipped = why
		b.logf("bridge networking: skipped (outside CI): %s", why)
		return nil
	}
	r.Bridge, r.Subnet, r.FloorBridge, r.FloorSubnet = netNames()
	runDir, floorDir := filepath.Join(b.dir, "nr"), filepath.Join(b.dir, "nf")
	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	b.logf("bridge networking: the reconciler on %s (%s, port %d), the floor on %s (%s, port %d)",
		r.Bridge, r.Subnet, ports[0], r.FloorBridge, r.FloorSubnet, ports[1])
	fc, err := newCNIFloor(b.floor, "bench-floor-"+strconv.Itoa(os.Getpid()), r.FloorBridge, r.FloorSubnet, floorDir,
		[]gocni.PortMapping{{HostPort: int32(ports[1]), ContainerPort: 8080, Protocol: "tcp", HostIP: "127.0.0.1"}})
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, fc.releaseAll(context.WithoutCancel(ctx)))
		// Pins a failed run of the reconciler left, then the bridges.
		for _, dir := range []string{runDir, floorDir} {
			pins, _ := filepath.Glob(filepath.Join(dir, "netns", "*"))
			for _, p := range pins {
				_ = unix.Unmount(p, unix.MNT_DETACH)
			}
		}
		for _, br := range []string{r.Bridge, r.FloorBridge} {
			_ = exec.Command("ip", "link", "delete", br).Run()
			if err := dropBridgeRules(br); err != nil {
				b.logf("bridge networking: %v", err)
			}
		}
	}()

	man := filepath.Join(b.dir, "m5")
	if err := os.MkdirAll(man, 0o755); err != nil {
		return err
	}
	d, err := startDaemon(ctx, bin, address, b.runcRoot, nsReconciler, man, images, filepath.Join(b.dir, "s5"), b.cfg.c, b.cfg.resync, b.cfg.pprof != "", b.cfg.env,
		"--bridge", r.Bridge, "--bridge-subnet", r.Subnet, "--network-run-dir", runDir)
	if err != nil {
		return err
	}
	b.res.Daemons = append(b.res.Daemons, d.proc.Args())
	const warm = 2
	err = b.phases(ctx, d, man, phase{"bridge networking", func(ctx context.Context, d *daemon, dir string) error {
		return b.rotate(ctx, b.cfg.k, warm, []side{
			{"floor", func(ctx context.Context, i int) (time.Duration, error) {
				return singleOf(ctx, b.floor, b.rec, fmt.Sprintf("fl-w%03d", i))
			}, &r.FloorSeconds},
			{"floor with CNI", func(ctx context.Context, i int) (time.Duration, error) {
				dur, err := singleOf(ctx, fc, b.rec, fmt.Sprintf("fc-w%03d", i))
				if err == nil && i >= warm {
					r.CNIAddSeconds = append(r.CNIAddSeconds, fc.add.Seconds())
					r.CNIDelSeconds = append(r.CNIDelSeconds, fc.del.Seconds())
				}
				return dur, err
			}, &r.FloorCNISeconds},
			{"reconciler, bridge", func(ctx context.Context, i int) (time.Duration, error) {
				_, dur, err := b.dropSingle(ctx, dir, fmt.Sprintf("net-%03d", i), bridgeManifest(ports[0]))
				return dur, err
			}, &r.ReconcilerSeconds},
		})
	}})
	d.stop()
	if err != nil {
		return err
	}
	b.logf("bridge networking: p50 %s (floor with CNI %s, plain floor %s; the ADD alone %s), p90 %s (floor with CNI %s, plain floor %s)",
		ms(pct(r.ReconcilerSeconds, 50)), ms(pct(r.FloorCNISeconds, 50)), ms(pct(r.FloorSeconds, 50)), ms(pct(r.CNIAddSeconds, 50)),
		ms(pct(r.ReconcilerSeconds, 90)), ms(pct(r.FloorCNISeconds, 90)), ms(pct(r.FloorSeconds, 90)))
	return nil
}

// networkRows are the rows of the bridge measure.
func (r *results) networkRows() []row {
	n := r.Network
	if n.Skipped != "" {
		return []row{{Measure: "bridge: skipped (outside CI): " + n.Skipped, Figure: "-", Floor: "-", VsFloor: "-", Target: "-"}}
	}
	if len(n.ReconcilerSeconds) == 0 {
		return nil
	}
	vs := func(x, f float64) string { return fmt.Sprintf("%s (x%.2f)", signedMS(x-f), x/f) }
	var out []row
	for _, p := range []float64{50, 90} {
		f, fc := pct(n.FloorSeconds, p), pct(n.FloorCNISeconds, p)
		out = append(out, row{
			Measure: fmt.Sprintf("bridge floor: raw create+start + netns + CNI ADD (1 port), p%.0f of %d", p, len(n.FloorCNISeconds)),
			Figure:  ms(fc), Floor: ms(f), VsFloor: vs(fc, f), Target: "-",
		})
	}
	for _, p := range []float64{50, 90} {
		fc, x := pct(n.FloorCNISeconds, p), pct(n.ReconcilerSeconds, p)
		out = append(out, row{
			Measure: fmt.Sprintf("bridge drop -> running (1 port), p%.0f of %d, against the floor with CNI", p, len(n.ReconcilerSeconds)),
			Figure:  ms(x), Floor: ms(fc), VsFloor: vs(x, fc), Target: "-",
		})
	}
	out = append(out, row{Measure: "ref: bridge, the floor's CNI ADD alone / its DEL, p50",
		Figure: ms(pct(n.CNIAddSeconds, 50)) + " / " + ms(pct(n.CNIDelSeconds, 50)), Floor: "-", VsFloor: "-", Target: "-"})
	return out
}
