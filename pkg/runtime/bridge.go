package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	containersapi "github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs"
	gocni "github.com/containerd/go-cni"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// labelPorts is the label holding a bridge container's port mappings (the
// JSON of []gocni.PortMapping): what a setup after a reboot publishes
// again.
const labelPorts = "io.warren.ports"

// bridgeDir holds a bridge container's hosts and resolv.conf.
func (r *Runtime) bridgeDir(id string) string { return filepath.Join(r.stateDir, "network", id) }

// setUpBridge makes the network of bridge container id of task t: its
// files (resolv.conf from the host's, hosts), then its namespace and
// address (CNI). It returns what the spec points at and the labels to
// record (address, port mappings).
//
// A pod's container (sb not nil) joins its sandbox's namespace and address
// instead, and its /etc/hosts names it by the pod's host name too.
func (r *Runtime) setUpBridge(ctx context.Context, id string, t desired.Task, sb *sandbox) (bridgeFiles, map[string]string, error) {
	if r.net == nil {
		return bridgeFiles{}, nil, errors.New("network: bridge: this daemon has no bridge network")
	}
	dir := r.bridgeDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return bridgeFiles{}, nil, fmt.Errorf("network: %w", err)
	}
	files := bridgeFiles{netns: r.net.nsPath(id), hosts: filepath.Join(dir, "hosts"),
		resolv: filepath.Join(dir, "resolv.conf"), hostname: t.Metadata.Name}
	resolv, err := hostResolvConf()
	if err != nil {
		return bridgeFiles{}, nil, fmt.Errorf("network: %w", err)
	}
	if err := writeFileAtomic(files.resolv, resolv); err != nil {
		return bridgeFiles{}, nil, fmt.Errorf("network: %w", err)
	}
	if sb != nil {
		files.netns, files.hostname = r.net.nsPath(sb.id), ""
		if err := writeFileAtomic(files.hosts, hostsFile(t.Metadata.Name, sb.ip, nil, sb.hostname)); err != nil {
			os.RemoveAll(dir)
			return bridgeFiles{}, nil, fmt.Errorf("network: %w", err)
		}
		return files, map[string]string{observed.LabelIP: sb.ip, labelHostname: sb.hostname}, nil
	}
	ports := portMappings(t.Spec.Ports)
	ip, err := r.net.setUp(ctx, id, ports, false)
	if err != nil {
		os.RemoveAll(dir)
		return bridgeFiles{}, nil, err
	}
	if err := writeFileAtomic(files.hosts, hostsFile(t.Metadata.Name, ip, nil, "")); err != nil {
		r.tearDownBridge(ctx, id)
		return bridgeFiles{}, nil, fmt.Errorf("network: %w", err)
	}
	b, _ := json.Marshal(ports)
	return files, map[string]string{observed.LabelIP: ip, labelPorts: string(b)}, nil
}

// tearDownBridge releases container id's network and removes its files.
// A container that had none is success.
func (r *Runtime) tearDownBridge(ctx context.Context, id string) error {
	if r.net == nil {
		return nil
	}
	if err := r.net.tearDown(ctx, id); err != nil {
		return err
	}
	if err := os.RemoveAll(r.bridgeDir(id)); err != nil {
		return fmt.Errorf("network of %s: %w", id, err)
	}
	return nil
}

// restoreBridge sets up again the network of bridge container rec when its
// namespace is gone (/run cleared by a reboot), before its task starts: a
// new namespace, a new address (the label updated), its ports published
// again.
func (r *Runtime) restoreBridge(ctx context.Context, rec containersapi.Container) error {
	if r.net == nil || rec.Labels[observed.LabelIP] == "" || isMountpoint(r.net.nsPath(rec.ID)) {
		return nil
	}
	var ports []gocni.PortMapping
	_ = json.Unmarshal([]byte(rec.Labels[labelPorts]), &ports)
	ip, err := r.net.setUp(ctx, rec.ID, ports, true)
	if err != nil {
		return err
	}
	r.log.Info("network set up again (its namespace was gone)", "container", rec.ID, "ip", ip)
	if ip != rec.Labels[observed.LabelIP] {
		if err := r.SetLabels(ctx, rec.ID, map[string]string{observed.LabelIP: ip}); err != nil {
			return err
		}
	}
	return r.refreshHosts(ctx)
}

// refreshHosts rewrites the /etc/hosts of every bridge container of the
// namespace from the containers' labels: localhost, itself, and every
// other bridge task by name (the newest container of a task when it has
// two, during a rollout, but a stop-first rollout's kept one). Files are
// rewritten in place: each is bind mounted, a rename would not be seen.
func (r *Runtime) refreshHosts(ctx context.Context) error {
	if r.net == nil {
		return nil
	}
	recs, err := r.client.ContainerService().List(ctx, fmt.Sprintf("labels.%q", observed.LabelIP))
	if err != nil {
		return fmt.Errorf("update /etc/hosts: %w", err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].CreatedAt.Before(recs[j].CreatedAt) })
	names := map[string]string{}
	for _, c := range recs {
		if c.Labels[observed.LabelHeldFor] != "" {
			continue
		}
		names[c.Labels[observed.LabelTask]] = c.Labels[observed.LabelIP]
	}
	var errs []error
	for _, c := range recs {
		path := filepath.Join(r.bridgeDir(c.ID), "hosts")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		task := c.Labels[observed.LabelTask]
		_, err = f.Write(hostsFile(task, c.Labels[observed.LabelIP], names, c.Labels[labelHostname]))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hostsFile is the /etc/hosts of task at ip, with the other tasks by name;
// a pod's container has its pod's host name too.
func hostsFile(task, ip string, others map[string]string, hostname string) []byte {
	var b bytes.Buffer
	b.WriteString("# written by the reconciler: the tasks on its bridge, kept current\n")
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	if hostname != "" && hostname != task {
		fmt.Fprintf(&b, "%s\t%s %s\n", ip, hostname, task)
	} else {
		fmt.Fprintf(&b, "%s\t%s\n", ip, task)
	}
	names := make([]string, 0, len(others))
	for n := range others {
		if n != task {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "%s\t%s\n", others[n], n)
	}
	return b.Bytes()
}

// hostResolvConfPaths are read for a bridge task's resolv.conf: the host's,
// and systemd-resolved's list of real upstream servers when the host's
// names only its local stub.
var hostResolvConfPaths = []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}

// hostResolvConf is the host's resolv.conf without the nameservers a task
// cannot reach from its own namespace (loopback ones). None is ever added:
// a node without a reachable one gives its tasks none (an air-gapped node
// has no business asking a public resolver).
func hostResolvConf() ([]byte, error) {
	b, err := os.ReadFile(hostResolvConfPaths[0])
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	out, kept, dropped := filterResolvConf(b)
	if kept == 0 && dropped > 0 {
		if b2, err := os.ReadFile(hostResolvConfPaths[1]); err == nil {
			out, _, _ = filterResolvConf(b2)
		}
	}
	return out, nil
}

// filterResolvConf drops the loopback nameservers of a resolv.conf and
// says how many it kept and dropped.
func filterResolvConf(b []byte) (out []byte, kept, dropped int) {
	var buf bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			if ip := net.ParseIP(f[1]); ip == nil || ip.IsLoopback() {
				dropped++
				continue
			}
			kept++
		}
		buf.WriteString(line + "\n")
	}
	return buf.Bytes(), kept, dropped
}

// sweepNetwork releases what the bridge holds for containers that no
// longer exist (a crash between two steps of a create or a delete): their
// namespace pins with their CNI DEL, and leases of no pin. exists is what a
// listing said, which may be older than a create that finished since: each
// candidate is asked about again, under the network's lock, right before
// it is released (a create marks its container busy before its setup,
// which needs that lock, so one that began later cannot be half done).
// Containers this process is creating are left alone.
func (r *Runtime) sweepNetwork(ctx context.Context, exists func(id string) bool) error {
	if r.net == nil {
		return nil
	}
	var errs []error
	pinned, err := r.net.pinned()
	if err != nil {
		return fmt.Errorf("sweep the network: %w", err)
	}
	held := map[string]bool{}
	for _, id := range pinned {
		held[id] = true
		if isSandboxID(id) || exists(id) || r.isBusy(id) {
			continue
		}
		released, err := r.releaseOrphan(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if released {
			r.log.Info("released the network of no container", "container", id)
		}
	}
	leases, err := r.net.leases()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("sweep the network: %w", err))...)
	}
	for ip, id := range leases {
		if held[id] || isSandboxID(id) || exists(id) || r.isBusy(id) || r.containerExists(ctx, id) {
			continue // a sandbox's lease goes with its pin (sweepSandboxes)
		}
		// No namespace to DEL with: the lease alone is left of it.
		if err := os.Remove(filepath.Join(r.net.cfg.RunDir, "ipam", r.net.cfg.Name, ip)); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
			continue
		}
		r.log.Info("released an address of no container", "container", id, "ip", ip)
	}
	dirs, _ := os.ReadDir(filepath.Join(r.stateDir, "network"))
	for _, d := range dirs {
		if id := d.Name(); !exists(id) && !r.isBusy(id) && !held[id] {
			os.RemoveAll(r.bridgeDir(id))
		}
	}
	return errors.Join(errs...)
}

// releaseOrphan releases the network of container id if, asked again under
// the network's lock, it is neither being created nor exists.
func (r *Runtime) releaseOrphan(ctx context.Context, id string) (bool, error) {
	r.net.mu.Lock()
	defer r.net.mu.Unlock()
	if r.isBusy(id) || r.containerExists(ctx, id) {
		return false, nil
	}
	if err := r.net.tearDownLocked(ctx, id); err != nil {
		return false, err
	}
	if err := os.RemoveAll(r.bridgeDir(id)); err != nil {
		return false, fmt.Errorf("network of %s: %w", id, err)
	}
	return true, nil
}

// containerExists asks containerd whether container id exists (an error
// other than not found counts as existing: nothing is released on doubt).
func (r *Runtime) containerExists(ctx context.Context, id string) bool {
	if r.client == nil { // a runtime of the unit tests, with no containerd
		return r.net != nil && r.net.testExists != nil && r.net.testExists(id)
	}
	_, err := r.client.ContainerService().Get(ctx, id)
	return !errdefs.IsNotFound(err)
}

// netOrphans reports whether a namespace is pinned for a container that
// does not exist (and is not being made): a cheap look at /run, and a read
// of containerd only for the pins it does not know.
func (r *Runtime) netOrphans(ctx context.Context) bool {
	if r.net == nil {
		return false
	}
	pinned, err := r.net.pinned()
	if err != nil {
		return false
	}
	for _, id := range pinned {
		if isSandboxID(id) {
			if !r.sandboxInUse(ctx, id) {
				return true
			}
			continue
		}
		if !r.isBusy(id) && !r.index.has(id) && !r.containerExists(ctx, id) {
			return true
		}
	}
	return false
}
