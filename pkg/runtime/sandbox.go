package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	containersapi "github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// A pod's sandbox is what its containers share, with no container of its
// own (no pause process): an IPC namespace, and on the bridge a network
// namespace (one address, every container's ports published) and a UTS
// namespace (the pod's host name), each pinned by a bind mount; and the
// pod's emptyDir directories on disk. It is made by the first create of a
// container of the pod and released with the delete of its last one, by
// the containers' label labelSandbox. Its ID names the pod and hashes what
// the containers share ([desired.Spec.PodShared]), so a change of that
// (a port, the host name) makes a new sandbox for the new containers while
// the old ones keep theirs until they go.
//
// On disk: StateDir/pods/ID/ holds sandbox.json (what a setup after a
// reboot needs), the ipc and uts pins and volumes/NAME; the network
// namespace is pinned under the network's run directory by ID, as a
// container's is.
const labelSandbox = "io.warren.sandbox"

// labelHostname is a pod container's host name on the bridge (its pod's),
// for the /etc/hosts of the others.
const labelHostname = "io.warren.hostname"

// sandboxPrefix starts every sandbox ID; "_" is in no task name, so no
// container ID is one.
const sandboxPrefix = "pod_"

// isSandboxID reports whether id names a sandbox, not a container.
func isSandboxID(id string) bool { return strings.HasPrefix(id, sandboxPrefix) }

// sandboxID is the sandbox of the containers of spec s, "" for a Task's.
func sandboxID(s desired.Spec) string {
	if s.Pod == "" || s.PodShared == nil {
		return ""
	}
	b, _ := json.Marshal(sandboxRecord{Network: s.Network, Hostname: s.PodShared.Hostname, Ports: s.PodShared.Ports})
	sum := sha256.Sum256(b)
	return sandboxPrefix + s.Pod + "_" + hex.EncodeToString(sum[:])[:8]
}

// sandboxRecord is a sandbox's sandbox.json; the ID hashes it without IP.
type sandboxRecord struct {
	Network  desired.NetworkMode `json:"network"`
	Hostname string              `json:"hostname,omitempty"`
	Ports    []desired.Port      `json:"ports,omitempty"`
	IP       string              `json:"ip,omitempty"` // the address CNI gave (bridge)
}

// sandbox is what a container's spec points at.
type sandbox struct {
	id, dir, ip string
	ipc, uts    string // pinned namespaces; uts on the bridge only
	hostname    string
}

func (r *Runtime) sandboxDir(id string) string { return filepath.Join(r.stateDir, "pods", id) }

// ensureSandbox makes sandbox id for a container of spec s, or finds it
// made: its pins (again, where a reboot took them), its network (CNI ADD,
// once; again when its namespace is gone). The caller holds r.podMu.
func (r *Runtime) ensureSandbox(ctx context.Context, id string, s desired.Spec) (sandbox, error) {
	rec := sandboxRecord{Network: s.Network, Hostname: s.PodShared.Hostname, Ports: s.PodShared.Ports}
	return r.ensureSandboxOf(ctx, id, rec)
}

func (r *Runtime) ensureSandboxOf(ctx context.Context, id string, want sandboxRecord) (sandbox, error) {
	if r.stateDir == "" {
		return sandbox{}, errors.New("pod: the containers of a pod need a state directory")
	}
	bridge := want.Network == desired.NetworkBridge
	if bridge && r.net == nil {
		return sandbox{}, errors.New("network: bridge: this daemon has no bridge network")
	}
	dir := r.sandboxDir(id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sandbox{}, fmt.Errorf("pod: %w", err)
	}
	recPath := filepath.Join(dir, "sandbox.json")
	rec := want
	made := false
	if b, err := os.ReadFile(recPath); err == nil && json.Unmarshal(b, &rec) == nil {
		made = true
	} else if err := writeRecord(recPath, rec); err != nil {
		return sandbox{}, fmt.Errorf("pod: %w", err)
	}
	sb := sandbox{id: id, dir: dir, ipc: filepath.Join(dir, "ipc")}
	pins := map[int]string{unix.CLONE_NEWIPC: sb.ipc}
	if bridge {
		sb.uts, sb.hostname = filepath.Join(dir, "uts"), rec.Hostname
		pins[unix.CLONE_NEWUTS] = sb.uts
	}
	if err := pinNamespaces(pins, rec.Hostname); err != nil {
		return sandbox{}, fmt.Errorf("pod: %w", err)
	}
	if !bridge {
		return sb, nil
	}
	if rec.IP != "" && isMountpoint(r.net.nsPath(id)) {
		sb.ip = rec.IP
		return sb, nil
	}
	ip, err := r.net.setUp(ctx, id, portMappings(rec.Ports), made)
	if err != nil {
		return sandbox{}, err
	}
	rec.IP, sb.ip = ip, ip
	if err := writeRecord(recPath, rec); err != nil {
		return sandbox{}, fmt.Errorf("pod: %w", err)
	}
	return sb, nil
}

func writeRecord(path string, rec sandboxRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// sandboxOpts are the spec options of a container that joins sb: its IPC
// namespace, and on the bridge its network and UTS namespaces (no
// hostname of its own: the namespace has the pod's).
func sandboxOpts(sb sandbox) []oci.SpecOpts {
	opts := []oci.SpecOpts{oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.IPCNamespace, Path: sb.ipc})}
	if sb.uts != "" {
		opts = append(opts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UTSNamespace, Path: sb.uts}), withNoHostname)
	}
	return opts
}

// withNoHostname leaves the host name to the joined UTS namespace.
func withNoHostname(_ context.Context, _ oci.Client, _ *containersapi.Container, s *oci.Spec) error {
	s.Hostname = ""
	return nil
}

// sandboxInUse reports whether a container of sandbox id exists (an error
// counts as yes: nothing is released on doubt).
func (r *Runtime) sandboxInUse(ctx context.Context, id string) bool {
	if r.client == nil {
		return r.net != nil && r.net.testExists != nil && r.net.testExists(id)
	}
	recs, err := r.client.ContainerService().List(ctx, fmt.Sprintf("labels.%q==%q", labelSandbox, id))
	return err != nil || len(recs) > 0
}

// releaseSandbox releases sandbox id if no container of it is left: its
// network (CNI DEL), its pins, its directory with the pod's emptyDirs.
func (r *Runtime) releaseSandbox(ctx context.Context, id string) (bool, error) {
	r.podMu.Lock()
	defer r.podMu.Unlock()
	return r.releaseSandboxLocked(ctx, id)
}

func (r *Runtime) releaseSandboxLocked(ctx context.Context, id string) (bool, error) {
	if r.sandboxInUse(ctx, id) {
		return false, nil
	}

	if r.net != nil {
		if err := r.net.tearDown(ctx, id); err != nil {
			return false, fmt.Errorf("pod sandbox %s: %w", id, err)
		}
	}
	dir := r.sandboxDir(id)
	for _, pin := range []string{"ipc", "uts"} {
		if err := unpinNetNS(filepath.Join(dir, pin)); err != nil {
			return false, fmt.Errorf("pod sandbox %s: %w", id, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	return true, nil
}

// restoreSandbox sets sandbox id up again before a container of it starts,
// where a reboot took its pins: the same host name and ports, a new
// address (the container's label updated).
func (r *Runtime) restoreSandbox(ctx context.Context, rec containersapi.Container) error {
	id := rec.Labels[labelSandbox]
	b, err := os.ReadFile(filepath.Join(r.sandboxDir(id), "sandbox.json"))
	if err != nil {
		return fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	var want sandboxRecord
	if err := json.Unmarshal(b, &want); err != nil {
		return fmt.Errorf("pod sandbox %s: %w", id, err)
	}
	r.podMu.Lock()
	sb, err := r.ensureSandboxOf(ctx, id, want)
	r.podMu.Unlock()
	if err != nil {
		return err
	}
	if sb.ip != "" && sb.ip != rec.Labels[observed.LabelIP] {
		if err := r.SetLabels(ctx, rec.ID, map[string]string{observed.LabelIP: sb.ip}); err != nil {
			return err
		}
		return r.refreshHosts(ctx)
	}
	return nil
}

// sweepSandboxes releases the sandboxes no container uses (a crash between
// a container's delete and its sandbox's release).
func (r *Runtime) sweepSandboxes(ctx context.Context) error {
	if r.stateDir == "" {
		return nil
	}
	dirs, err := os.ReadDir(filepath.Join(r.stateDir, "pods"))
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	ids := map[string]bool{}
	for _, d := range dirs {
		ids[d.Name()] = true
	}
	if r.net != nil {
		pinned, _ := r.net.pinned()
		for _, id := range pinned {
			if isSandboxID(id) {
				ids[id] = true
			}
		}
	}
	var errs []error
	for id := range ids {
		released, err := r.releaseSandbox(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if released {
			r.log.Info("released the pod sandbox of no container", "sandbox", id)
		}
	}
	return errors.Join(errs...)
}

// pinNamespaces creates new namespaces of the kinds given (CLONE_NEWIPC,
// CLONE_NEWUTS) and pins each at its path, with hostname set in a new UTS
// namespace; as pinNetNS, on a locked OS thread left to die. Pins that are
// there are kept.
func pinNamespaces(paths map[int]string, hostname string) error {
	var flags int
	for kind, path := range paths {
		if isMountpoint(path) {
			continue
		}
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o444)
		if err != nil {
			return err
		}
		f.Close()
		flags |= kind
	}
	if flags == 0 {
		return nil
	}
	names := map[int]string{unix.CLONE_NEWIPC: "ipc", unix.CLONE_NEWUTS: "uts"}
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(flags); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if flags&unix.CLONE_NEWUTS != 0 && hostname != "" {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				errc <- fmt.Errorf("host name: %w", err)
				return
			}
		}
		for kind, path := range paths {
			if flags&kind == 0 {
				continue
			}
			src := fmt.Sprintf("/proc/%d/task/%d/ns/%s", os.Getpid(), unix.Gettid(), names[kind])
			if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
				errc <- fmt.Errorf("pin %s: %w", path, err)
				return
			}
		}
		errc <- nil
	}()
	return <-errc
}
