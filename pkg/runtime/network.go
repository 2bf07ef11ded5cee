package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strings"
	"sync"

	gocni "github.com/containerd/go-cni"
	"golang.org/x/sys/unix"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// Network is the node's bridge for tasks with network: bridge, set up
// through CNI (the bridge, host-local, portmap and firewall plugins). It
// keeps no state of its own beyond /run: per container, a network
// namespace pinned at RunDir/netns/ID and the port mappings it was set up
// with beside it (ID.json, for the DEL), and the host-local leases under
// RunDir/ipam. /run is a tmpfs, so a reboot clears namespaces, leases and
// the plugins' iptables rules together; Start sets a container up again
// when its pin is gone.
type Network struct {
	Name       string   // CNI network name; also names the iptables chains' comments
	Bridge     string   // the Linux bridge
	Subnet     string   // IPv4 subnet of the bridge, e.g. 10.47.0.0/22
	PluginDirs []string // where the CNI plugins are
	RunDir     string   // netns/ and ipam/ live here (under /run)
}

// Network defaults: a subnet that none of Docker (172.17.0.0/16), Podman
// (10.88.0.0/16) and nerdctl (10.4.0.0/24) use.
const (
	DefaultNetworkName   = "reconciler"
	DefaultBridge        = "reconciler0"
	DefaultBridgeSubnet  = "10.47.0.0/22"
	DefaultNetworkRunDir = "/run/reconciler"
)

// DefaultPluginDirs are where CNI plugins are looked for: Debian's
// containernetworking-plugins, then the upstream default.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// netState is what a Runtime keeps for its bridge network.
type netState struct {
	cfg Network
	mu  sync.Mutex // one CNI operation at a time (the plugins are not safe to run concurrently)
	cni gocni.CNI

	testExists func(id string) bool // the unit tests' containerd, which has no client
}

// WithNetwork gives the runtime a bridge network for network: bridge
// tasks; without it such a task is refused at create.
func WithNetwork(n Network) Option {
	return func(r *Runtime) {
		if n.Name == "" {
			n.Name = DefaultNetworkName
		}
		if n.Bridge == "" {
			n.Bridge = DefaultBridge
		}
		if n.Subnet == "" {
			n.Subnet = DefaultBridgeSubnet
		}
		if len(n.PluginDirs) == 0 {
			n.PluginDirs = DefaultPluginDirs
		}
		if n.RunDir == "" {
			n.RunDir = DefaultNetworkRunDir
		}
		r.net = &netState{cfg: n}
	}
}

// conflist is the CNI configuration of the network: a bridge with NAT to
// the outside, host-local addresses leased under RunDir, published ports
// (portmap; it also lets 127.0.0.1 reach a port published there), and
// isolation from other bridges (firewall).
func (n Network) conflist() ([]byte, error) {
	_, subnet, err := net.ParseCIDR(n.Subnet)
	if err != nil || subnet.IP.To4() == nil {
		return nil, fmt.Errorf("bridge subnet %q: must be an IPv4 CIDR such as %s", n.Subnet, DefaultBridgeSubnet)
	}
	gw := make(net.IP, 4)
	copy(gw, subnet.IP.To4())
	gw[3]++
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       n.Name,
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": n.Bridge, "isGateway": true, "ipMasq": true, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": subnet.String(), "gateway": gw.String()}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(n.RunDir, "ipam"),
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}, "snat": true},
			map[string]any{"type": "firewall", "ingressPolicy": "same-bridge"},
		},
	}
	return json.Marshal(conf)
}

// cniOf loads the CNI library once: the conflist first, so that the task's
// interface is eth0 (go-cni names interfaces by their network's rank),
// then the loopback.
func (s *netState) cniOf() (gocni.CNI, error) {
	if s.cni != nil {
		return s.cni, nil
	}
	b, err := s.cfg.conflist()
	if err != nil {
		return nil, err
	}
	c, err := gocni.New(gocni.WithPluginDir(s.cfg.PluginDirs), gocni.WithMinNetworkCount(2),
		gocni.WithConfListBytes(b), gocni.WithLoNetwork)
	if err != nil {
		return nil, fmt.Errorf("load the CNI configuration: %w", err)
	}
	s.cni = c
	return c, nil
}

func (s *netState) nsPath(id string) string { return filepath.Join(s.cfg.RunDir, "netns", id) }
func (s *netState) portsPath(id string) string {
	return filepath.Join(s.cfg.RunDir, "netns", id+".json")
}

// portMappings turns a task's published ports into CNI's.
func portMappings(ports []desired.Port) []gocni.PortMapping {
	var out []gocni.PortMapping
	for _, p := range ports {
		if p.HostPort == 0 {
			continue
		}
		proto := strings.ToLower(string(p.Protocol))
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, gocni.PortMapping{HostPort: int32(p.HostPort), ContainerPort: int32(p.ContainerPort), Protocol: proto, HostIP: p.HostIP})
	}
	return out
}

// setUp makes container id's network: its namespace pinned, the port
// mappings written beside it, a DEL of anything a crash left (or, with
// again, of what a container set up before may have left: rules that
// outlived its namespace), then the ADD. It returns the container's
// address. Nothing is left when it fails.
func (s *netState) setUp(ctx context.Context, id string, ports []gocni.PortMapping, again bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.cniOf()
	if err != nil {
		return "", err
	}
	path := s.nsPath(id)
	// What an interrupted setup left (a pin, its port file) is cleared
	// with a DEL before the ADD; a fresh pin needs none (a DEL costs about
	// as much as half an ADD).
	_, portsErr := os.Stat(s.portsPath(id))
	leftover := again || isMountpoint(path) || portsErr == nil
	if err := pinNetNS(path); err != nil {
		return "", fmt.Errorf("network namespace: %w", err)
	}
	b, _ := json.Marshal(ports)
	if err := writeFileAtomic(s.portsPath(id), b); err != nil {
		s.tearDownLocked(ctx, id)
		return "", fmt.Errorf("network: %w", err)
	}
	opts := []gocni.NamespaceOpts{gocni.WithCapabilityPortMap(ports)}
	if leftover {
		_ = c.Remove(ctx, id, path, opts...)
	}
	res, err := c.Setup(ctx, id, path, opts...)
	if err != nil {
		s.tearDownLocked(ctx, id)
		return "", fmt.Errorf("network (CNI ADD): %w", err)
	}
	if cfg, ok := res.Interfaces["eth0"]; ok && len(cfg.IPConfigs) > 0 {
		return cfg.IPConfigs[0].IP.String(), nil
	}
	s.tearDownLocked(ctx, id)
	return "", errors.New("network (CNI ADD): no address for eth0")
}

// tearDown releases container id's network: a DEL with its namespace and
// its port mappings (never without: a DEL without the path leaves NAT
// rules, one without the mappings leaves the port's), then the pin.
// Nothing there is success.
func (s *netState) tearDown(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tearDownLocked(ctx, id)
}

func (s *netState) tearDownLocked(ctx context.Context, id string) error {
	path := s.nsPath(id)
	_, pinErr := os.Stat(path)
	b, portsErr := os.ReadFile(s.portsPath(id))
	if os.IsNotExist(pinErr) && os.IsNotExist(portsErr) {
		return nil
	}
	var ports []gocni.PortMapping
	if portsErr == nil {
		_ = json.Unmarshal(b, &ports)
	}
	c, err := s.cniOf()
	if err != nil {
		return err
	}
	if pinErr == nil {
		if err := c.Remove(ctx, id, path, gocni.WithCapabilityPortMap(ports)); err != nil {
			return fmt.Errorf("network (CNI DEL) of %s: %w", id, err)
		}
	}
	if err := unpinNetNS(path); err != nil {
		return fmt.Errorf("network namespace of %s: %w", id, err)
	}
	if err := os.Remove(s.portsPath(id)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("network of %s: %w", id, err)
	}
	return nil
}

// pinned returns the IDs that have a pinned namespace or a port file.
func (s *netState) pinned() ([]string, error) {
	es, err := os.ReadDir(filepath.Join(s.cfg.RunDir, "netns"))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, e := range es {
		id := strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".tmp"), ".json")
		if !strings.HasPrefix(id, ".") {
			seen[id] = true
		}
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out, nil
}

// leases returns the container IDs that hold a host-local lease, by
// address.
func (s *netState) leases() (map[string]string, error) {
	dir := filepath.Join(s.cfg.RunDir, "ipam", s.cfg.Name)
	es, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range es {
		if net.ParseIP(e.Name()) == nil {
			continue // last_reserved_ip.0, lock
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		id, _, _ := strings.Cut(string(b), "\n")
		out[e.Name()] = strings.TrimSpace(id)
	}
	return out, nil
}

// pinNetNS creates a network namespace and pins it at path (a bind mount
// of the namespace onto a file): made on a locked OS thread that is left
// to die with its goroutine, so no thread of the process stays in it. An
// existing pin is kept.
func pinNetNS(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if isMountpoint(path) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o444)
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
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("pin %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// unpinNetNS removes the pin at path; a missing one is success.
func unpinNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// isMountpoint reports whether path is a mount point (a pinned namespace):
// its device differs from its directory's, or it is an nsfs file.
func isMountpoint(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	const nsfsMagic = 0x6e736673
	return st.Type == nsfsMagic
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// bridgeLabels are the labels of a bridge container: its address.
func bridgeLabels(ip string) map[string]string {
	return map[string]string{observed.LabelIP: ip}
}
