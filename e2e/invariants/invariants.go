package invariants

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// Checker checks one namespace against one manifests directory.
type Checker struct {
	Client    *containerd.Client
	Namespace string
	// Manifests is the manifests directory the reconciler runs on.
	Manifests string
	// LoaderOptions are passed to desired.NewLoader (the daemon's
	// --insecure-manifests-dir is desired.InsecureDir()).
	LoaderOptions []desired.LoaderOption
	// StateDir is the reconciler's --state-dir: its logs/ and secrets/
	// hold files per container. "" skips those checks.
	StateDir string
	// Snapshotter is the snapshotter the reconciler uses; default overlayfs.
	Snapshotter string
	// NetworkRunDir is the reconciler's --network-run-dir (namespace pins
	// and port files under netns/, host-local leases under ipam/) and
	// NetworkName its CNI network ("reconciler-NAMESPACE"), which the
	// plugins' iptables nat rules name in their comments. "" skips the
	// network checks (both must be set).
	NetworkRunDir string
	NetworkName   string
}

// Violation is one broken invariant.
type Violation struct {
	Kind    Kind
	Subject string // task name, container ID, file or lease
	Detail  string
}

func (v Violation) String() string { return fmt.Sprintf("%s %s: %s", v.Kind, v.Subject, v.Detail) }

// Kind is the family of a violation.
type Kind string

// Kinds of violations.
const (
	Missing      Kind = "missing"       // a desired task has no container of its spec
	Duplicate    Kind = "duplicate"     // a task has more than one container (a rollout's two aside)
	Overlap      Kind = "overlap"       // a stop-first rollout has its old and its new container running at once
	NotRunning   Kind = "not-running"   // a desired task's process is not as its restart policy says
	Leaked       Kind = "leaked"        // a container, task, snapshot, lease or file of a task not desired
	Touched      Kind = "touched"       // an unmanaged container or a stable task was changed
	Restarted    Kind = "restarted"     // the restart count of a task that should not restart moved
	Unreadable   Kind = "unreadable"    // the manifests directory itself could not be read
	BadLabels    Kind = "bad-labels"    // an owned container's labels contradict its ID
	CheckFailure Kind = "check-failure" // containerd could not be read (not a violation of the product)
)

// Container is what the checker records of a container.
type Container struct {
	ID        string
	Labels    map[string]string
	Snapshot  string // snapshot key
	Status    containerd.ProcessStatus
	Pid       uint32
	ExitCode  uint32
	Restarts  int
	Task      string // io.warren.task, "" if unowned
	Owned     bool   // carries the ownership label
	HasTask   bool
	ImageName string
}

// Node is everything the checker read at one moment.
type Node struct {
	Containers map[string]Container
	Snapshots  map[string]snapshots.Info // active snapshots by key
	Leases     []LeaseInfo
	LogFiles   map[string][]string // container ID -> its log files
	Secrets    []string            // container IDs with a staged secrets directory
	// The bridge network's state (Checker.NetworkRunDir): by container ID.
	NetPins   map[string][]string // namespace pins and port files (names under netns/)
	NetLeases map[string][]string // host-local leases (addresses under ipam/NETWORK/)
	NetRules  map[string][]string // iptables nat rules whose comment names the network and the ID
	Desired   desired.State
}

// LeaseInfo is a lease with its resources.
type LeaseInfo struct {
	Lease     leases.Lease
	Resources []leases.Resource
}

// Baseline is what must not change across a fault: the unmanaged
// containers (by ID, with their task PID and labels) and the tasks that
// the fault must not touch.
type Baseline struct {
	Unmanaged map[string]Container
	Tasks     map[string]Container // task name -> its container then
}

func (c *Checker) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, c.Namespace)
}

func (c *Checker) snapshotter() string {
	if c.Snapshotter == "" {
		return "overlayfs"
	}
	return c.Snapshotter
}

// Read reads the node: containerd, the manifests directory and the state
// directory.
func (c *Checker) Read(ctx context.Context) (Node, error) {
	ctx = c.ctx(ctx)
	n := Node{Containers: map[string]Container{}, Snapshots: map[string]snapshots.Info{}, LogFiles: map[string][]string{}}
	// Files, the network and snapshots first, containers last: something
	// created in between then has its container seen, not reported as a
	// leak.
	if c.NetworkRunDir != "" && c.NetworkName != "" {
		var err error
		if n.NetPins, n.NetLeases, n.NetRules, err = readNetwork(c.NetworkRunDir, c.NetworkName); err != nil {
			return n, err
		}
	}
	if c.StateDir != "" {
		files, err := os.ReadDir(filepath.Join(c.StateDir, "logs"))
		if err != nil && !os.IsNotExist(err) {
			return n, fmt.Errorf("read log directory: %w", err)
		}
		for _, f := range files {
			if id, ok := logFileID(f.Name()); ok {
				n.LogFiles[id] = append(n.LogFiles[id], f.Name())
			}
		}
		secrets, err := os.ReadDir(filepath.Join(c.StateDir, "secrets"))
		if err != nil && !os.IsNotExist(err) {
			return n, fmt.Errorf("read secrets directory: %w", err)
		}
		for _, s := range secrets {
			n.Secrets = append(n.Secrets, s.Name())
		}
	}
	err := c.Client.SnapshotService(c.snapshotter()).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind == snapshots.KindActive {
			n.Snapshots[info.Name] = info
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("walk snapshots: %w", err)
	}
	ls, err := c.Client.LeasesService().List(ctx)
	if err != nil {
		return n, fmt.Errorf("list leases: %w", err)
	}
	for _, l := range ls {
		rs, err := c.Client.LeasesService().ListResources(ctx, l)
		if err != nil && !errdefs.IsNotFound(err) {
			return n, fmt.Errorf("list resources of lease %s: %w", l.ID, err)
		}
		n.Leases = append(n.Leases, LeaseInfo{Lease: l, Resources: rs})
	}
	recs, err := c.Client.ContainerService().List(ctx)
	if err != nil {
		return n, fmt.Errorf("list containers: %w", err)
	}
	tasks, err := c.Client.TaskService().List(ctx, nil)
	if err != nil {
		return n, fmt.Errorf("list tasks: %w", err)
	}
	for _, r := range recs {
		ct := Container{ID: r.ID, Labels: r.Labels, Snapshot: r.SnapshotKey, ImageName: r.Image,
			Task: r.Labels[observed.LabelTask], Owned: r.Labels[observed.LabelManagedBy] == observed.ManagedByValue}
		ct.Restarts, _ = strconv.Atoi(r.Labels[observed.LabelRestarts])
		if !ct.Owned {
			ct.Task = ""
		}
		n.Containers[r.ID] = ct
	}
	for _, t := range tasks.Tasks {
		ct, ok := n.Containers[t.ID]
		if !ok {
			continue
		}
		ct.HasTask, ct.Pid, ct.ExitCode = true, t.Pid, t.ExitStatus
		ct.Status = containerd.ProcessStatus(strings.ToLower(strings.TrimPrefix(t.Status.String(), "STATUS_")))
		n.Containers[t.ID] = ct
	}
	n.Desired = desired.NewLoader(c.Manifests, c.LoaderOptions...).Load()
	return n, nil
}

// readNetwork reads what the bridge network holds, by container ID: the
// entries of runDir/netns (a pin ID, its port file ID.json, a port file
// being written ID.json.tmp), the host-local leases of runDir/ipam/name (a
// file named by the address, holding "ID\nIFNAME"), and the iptables nat
// rules whose comment reads name: "NAME" id: "ID" (iptables-save -t nat).
func readNetwork(runDir, name string) (pins, leases, rules map[string][]string, err error) {
	pins, leases = map[string][]string{}, map[string][]string{}
	es, err := os.ReadDir(filepath.Join(runDir, "netns"))
	if err != nil && !os.IsNotExist(err) {
		return nil, nil, nil, fmt.Errorf("read network pins: %w", err)
	}
	for _, e := range es {
		id := strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".tmp"), ".json")
		pins[id] = append(pins[id], e.Name())
	}
	dir := filepath.Join(runDir, "ipam", name)
	es, err = os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return nil, nil, nil, fmt.Errorf("read network leases: %w", err)
	}
	for _, e := range es {
		if net.ParseIP(e.Name()) == nil {
			continue // last_reserved_ip.0, lock
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if os.IsNotExist(err) {
			continue // released meanwhile
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("read network lease: %w", err)
		}
		id, _, _ := strings.Cut(string(b), "\n")
		id = strings.TrimSpace(id)
		leases[id] = append(leases[id], e.Name())
	}
	out, err := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("iptables-save -t nat: %w: %s", err, out)
	}
	return pins, leases, NATRules(string(out), name), nil
}

// NATRules returns the rules of an iptables-save output that belong to a
// container of network name, by container ID: those whose comment the
// CNI plugins wrote as name: "NAME" id: "ID" (iptables-save prints
// --comment "name: \"NAME\" id: \"ID\""; the portmap plugin's reads
// "dnat name: ...").
func NATRules(iptablesSave, name string) map[string][]string {
	re := regexp.MustCompile(`name: \\"` + regexp.QuoteMeta(name) + `\\" id: \\"([^"\\]+)\\"`)
	rules := map[string][]string{}
	for _, line := range strings.Split(iptablesSave, "\n") {
		if !strings.HasPrefix(line, "-A ") {
			continue
		}
		if m := re.FindStringSubmatch(line); m != nil {
			rules[m[1]] = append(rules[m[1]], line)
		}
	}
	return rules
}

var logFileRE = regexp.MustCompile(`^(.+)\.log(\.[0-9]+)?$`)

// logFileID is the container ID of a log file name (ID.log, ID.log.N).
func logFileID(name string) (string, bool) {
	m := logFileRE.FindStringSubmatch(name)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Baseline records the unmanaged containers and the containers of stable,
// the tasks that must come through the next fault untouched.
func (c *Checker) Baseline(ctx context.Context, stable ...string) (Baseline, error) {
	n, err := c.Read(ctx)
	if err != nil {
		return Baseline{}, err
	}
	b := Baseline{Unmanaged: map[string]Container{}, Tasks: map[string]Container{}}
	for id, ct := range n.Containers {
		if !ct.Owned {
			b.Unmanaged[id] = ct
		}
	}
	for _, name := range stable {
		var cs []Container
		for _, ct := range n.Containers {
			if ct.Owned && ct.Task == name {
				cs = append(cs, ct)
			}
		}
		if len(cs) != 1 || cs[0].Status != containerd.Running {
			return b, fmt.Errorf("baseline: stable task %s has %d containers, want one running", name, len(cs))
		}
		b.Tasks[name] = cs[0]
	}
	return b, nil
}

// Check reads the node and returns every violation, sorted. An error means
// the node could not be read at all.
func (c *Checker) Check(ctx context.Context, b Baseline) ([]Violation, error) {
	n, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	return Violations(n, b), nil
}

// Violations returns every violation in n, given the baseline b.
func Violations(n Node, b Baseline) []Violation {
	var out []Violation
	add := func(k Kind, subject, format string, args ...any) {
		out = append(out, Violation{Kind: k, Subject: subject, Detail: fmt.Sprintf(format, args...)})
	}
	st := n.Desired
	if st.Err != nil {
		add(Unreadable, "manifests", "%v", st.Err)
	}

	// Which task names and containers are accounted for. A broken file's
	// tasks are unknown to a fresh loader: the containers whose source
	// is a broken file are kept by last known good, neither desired nor
	// leaked.
	wanted := map[string]string{} // container ID -> task, for desired tasks
	kept := map[string]bool{}     // container IDs kept for a broken source
	byTask := map[string][]Container{}
	for _, ct := range n.Containers {
		if !ct.Owned {
			continue
		}
		want := observed.ContainerID(ct.Task, ct.Labels[observed.LabelSpecHash])
		if rev := ct.Labels[observed.LabelRevision]; rev != "" {
			want += "-" + rev // the container of a moved tag (observed.RevisionID)
		}
		if ct.Task == "" || ct.Labels[observed.LabelSpecHash] == "" || ct.ID != want {
			add(BadLabels, ct.ID, "ownership label with task %q and spec hash %q", ct.Task, ct.Labels[observed.LabelSpecHash])
			continue
		}
		byTask[ct.Task] = append(byTask[ct.Task], ct)
		if src := ct.Labels[observed.LabelSource]; st.Err != nil || (src != "" && st.Broken[src] != nil) {
			kept[ct.ID] = true
		}
	}
	for name, t := range st.Tasks {
		id := observed.ContainerID(name, t.Hash())
		wanted[id] = name
		cs := byTask[name]
		var mine *Container
		for i := range cs {
			// The container of the spec, or the newest of a moved tag's
			// (observed.RevisionID: the same spec hash, another digest).
			if cs[i].ID == id || (mine == nil && strings.HasPrefix(cs[i].ID, id+"-") && cs[i].Labels[observed.LabelSpecHash] == t.Hash()) {
				mine = &cs[i]
			}
		}
		if good := refusedBy(cs, t.Hash()); good != nil {
			// The desired spec was rolled back: the last good container
			// serves the task, alone, as its restart policy says.
			mine = good
		} else if from, to := rollout(cs, id, t.Hash()); from != nil {
			// Mid-rollout: the new container proves itself while the
			// last good one is kept (stopped for stop-first). Its process
			// is the rollout's to judge; never both running for
			// stop-first.
			if t.Spec.UpdateStrategy != desired.UpdateStartFirst && live(from.Status) && live(to.Status) {
				add(Overlap, name, "stop-first rollout with both containers %s: old %s (pid %d) and new %s (pid %d)", to.Status, from.ID, from.Pid, to.ID, to.Pid)
			}
			continue
		}
		switch {
		case mine == nil:
			add(Missing, name, "no container %s (has %s)", id, ids(cs))
			continue
		case len(cs) > 1:
			add(Duplicate, name, "%d containers: %s", len(cs), ids(cs))
		}
		if why := policyBroken(t.Spec.RestartPolicy, *mine); why != "" {
			add(NotRunning, name, "restartPolicy %s but %s", t.Spec.RestartPolicy, why)
		}
	}
	for name, cs := range byTask {
		if _, ok := st.Tasks[name]; ok {
			continue
		}
		for _, ct := range cs {
			if kept[ct.ID] {
				continue
			}
			what := "container"
			if ct.HasTask {
				what = fmt.Sprintf("container with a %s task (pid %d)", ct.Status, ct.Pid)
			}
			add(Leaked, ct.ID, "%s of task %s, which is not desired", what, name)
		}
	}
	// Snapshots, leases and files: each must belong to a container.
	used := map[string]bool{}
	for _, ct := range n.Containers {
		if ct.Snapshot != "" {
			used[ct.Snapshot] = true
		}
	}
	for key := range n.Snapshots {
		if !used[key] {
			add(Leaked, key, "active snapshot with no container")
		}
	}
	for _, l := range n.Leases {
		var refs []string
		for _, r := range l.Resources {
			refs = append(refs, r.Type+":"+r.ID)
		}
		add(Leaked, "lease "+l.Lease.ID, "lease left behind (labels %v, resources %v)", l.Lease.Labels, refs)
	}
	for id, files := range n.LogFiles {
		if _, ok := n.Containers[id]; !ok {
			add(Leaked, id, "log files %v of no container", files)
		}
	}
	for _, id := range n.Secrets {
		if _, ok := n.Containers[id]; !ok {
			add(Leaked, id, "staged secrets directory of no container")
		}
	}
	// The bridge network: no pin, port file, lease or rule of a
	// container that does not exist.
	for id, names := range n.NetPins {
		if _, ok := n.Containers[id]; !ok {
			add(Leaked, "netns "+id, "network namespace pin or port file %v of no container", names)
		}
	}
	for id, ips := range n.NetLeases {
		if _, ok := n.Containers[id]; !ok {
			for _, ip := range ips {
				add(Leaked, "ipam "+ip, "address lease of no container %s", id)
			}
		}
	}
	for id, rules := range n.NetRules {
		if _, ok := n.Containers[id]; !ok {
			add(Leaked, "iptables "+id, "%d iptables nat rules of no container: %s", len(rules), strings.Join(rules, "; "))
		}
	}

	// What must not have changed.
	for id, was := range b.Unmanaged {
		now, ok := n.Containers[id]
		switch {
		case !ok:
			add(Touched, id, "unmanaged container removed")
		case now.Owned:
			add(Touched, id, "unmanaged container got the ownership label")
		case now.Pid != was.Pid || now.Status != was.Status:
			add(Touched, id, "unmanaged container's task changed: pid %d %s -> pid %d %s (exit code %d)", was.Pid, was.Status, now.Pid, now.Status, now.ExitCode)
		case !mapsEqual(now.Labels, was.Labels):
			add(Touched, id, "unmanaged container's labels changed: %v -> %v", was.Labels, now.Labels)
		}
	}
	for name, was := range b.Tasks {
		now, ok := n.Containers[was.ID]
		switch {
		case !ok:
			add(Touched, name, "container %s of a task the fault must not touch is gone", was.ID)
		case now.Pid != was.Pid || now.Status != containerd.Running:
			add(Touched, name, "task's process changed: pid %d -> pid %d %s", was.Pid, now.Pid, now.Status)
		}
		if ok && now.Restarts != was.Restarts {
			add(Restarted, name, "restart count moved %d -> %d", was.Restarts, now.Restarts)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Subject < out[j].Subject
	})
	return out
}

// proven reports whether ct carries the label of a container that proved
// itself (a rollout's last good container, or its new one once proved).
func proven(ct Container) bool { return ct.Labels[observed.LabelProven] != "" }

// refusedBy returns the container of cs that a rollback refused spec hash
// for (it carries io.warren.rolled-back naming hash, and io.warren.proven):
// while the manifest asks for hash, that container serves the task. nil
// when there is none.
func refusedBy(cs []Container, hash string) *Container {
	for i, ct := range cs {
		if v := ct.Labels[observed.LabelRolledBack]; v != "" && proven(ct) {
			var rb observed.Rollback
			if json.Unmarshal([]byte(v), &rb) == nil && rb.Hash == hash {
				return &cs[i]
			}
		}
	}
	return nil
}

// rollout returns, when the task of cs is mid-rollout, the last good
// container the rollout keeps (from) and the new one (to): the task has two
// containers, the new one of the desired spec (its ID id, or a moved tag's
// revision of it, id-REVISION with spec hash hash) and not proven, the
// other proven. nils otherwise.
func rollout(cs []Container, id, hash string) (from, to *Container) {
	if len(cs) != 2 {
		return nil, nil
	}
	for i := range cs {
		c, other := &cs[i], &cs[1-i]
		ofSpec := c.ID == id || (strings.HasPrefix(c.ID, id+"-") && c.Labels[observed.LabelSpecHash] == hash)
		if ofSpec && !proven(*c) && proven(*other) {
			return other, c
		}
	}
	return nil, nil
}

// live reports whether a task's process is there (running or paused).
func live(s containerd.ProcessStatus) bool {
	return s == containerd.Running || s == containerd.Paused
}

// Rollout is a desired task mid-rollout: its new container To is proving
// itself, the last good one From is kept.
type Rollout struct {
	Task string
	From string // the last good container
	To   string // the new container, of the desired spec
}

func (r Rollout) String() string { return fmt.Sprintf("%s: %s -> %s", r.Task, r.From, r.To) }

// Rollouts returns the desired tasks of n that are mid-rollout (see
// Violations), by task name. A node with no violation but a rollout under
// way has not converged: the rollout still ends in its new container or in
// a rollback.
func Rollouts(n Node) []Rollout {
	byTask := map[string][]Container{}
	for _, ct := range n.Containers {
		if ct.Owned && ct.Task != "" {
			byTask[ct.Task] = append(byTask[ct.Task], ct)
		}
	}
	var out []Rollout
	for name, t := range n.Desired.Tasks {
		cs := byTask[name]
		if refusedBy(cs, t.Hash()) != nil {
			continue
		}
		if from, to := rollout(cs, observed.ContainerID(name, t.Hash()), t.Hash()); from != nil {
			out = append(out, Rollout{Task: name, From: from.ID, To: to.ID})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Task < out[j].Task })
	return out
}

// CheckRollouts is Check, and the rollouts under way, from one read of the
// node.
func (c *Checker) CheckRollouts(ctx context.Context, b Baseline) ([]Violation, []Rollout, error) {
	n, err := c.Read(ctx)
	if err != nil {
		return nil, nil, err
	}
	return Violations(n, b), Rollouts(n), nil
}

// policyBroken says how the container's process contradicts the restart
// policy, or "".
func policyBroken(p desired.RestartPolicy, ct Container) string {
	switch {
	case ct.Status == containerd.Running:
		return ""
	case !ct.HasTask:
		return "the container has no task"
	case p == desired.RestartNever && ct.Status == containerd.Stopped:
		return ""
	case p == desired.RestartOnFailure && ct.Status == containerd.Stopped && ct.ExitCode == 0:
		return ""
	}
	return fmt.Sprintf("its task is %s (exit code %d)", ct.Status, ct.ExitCode)
}

func ids(cs []Container) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.ID)
	}
	slices.Sort(s)
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
