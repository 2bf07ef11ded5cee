package chaos

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"

	"github.com/warren/reconciler/e2e/invariants"
	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// The checker's rollout rules (invariants.Violations and Rollouts), on
// nodes made by hand: no containerd. TestCheckerFindsEveryViolation checks
// the rest against a real one.

// ruleTask parses a one-task manifest of name at version v with extra spec lines.
func ruleTask(t *testing.T, name string, v int, extra ...string) desired.Task {
	t.Helper()
	y := fmt.Sprintf("apiVersion: warren/v1\nkind: Task\nmetadata:\n  name: %s\nspec:\n  image: localhost/reconciler/testapp:v1\n  env: [{name: VERSION, value: %q}]\n", name, fmt.Sprint(v))
	for _, l := range extra {
		y += "  " + l + "\n"
	}
	ts, err := desired.Parse(name+".yaml", []byte(y))
	if err != nil || len(ts) != 1 {
		t.Fatalf("parse %s: %v", name, err)
	}
	return ts[0]
}

// fakeCtr is a container of task tk, with its status and extra labels.
type fakeCtr struct {
	tk     desired.Task
	status containerd.ProcessStatus // "" for a container with no task
	exit   uint32
	labels map[string]string
	rev    string // a moved tag's revision (ID NAME-HASH-REV), "" for none
}

func (c fakeCtr) container() invariants.Container {
	name, hash := c.tk.Metadata.Name, c.tk.Hash()
	labels := observed.Labels(name, hash, name+".yaml", "SIGTERM", 2*time.Second)
	for k, v := range c.labels {
		labels[k] = v
	}
	id := observed.ContainerID(name, hash)
	if c.rev != "" {
		id += "-" + c.rev
		labels[observed.LabelRevision] = c.rev
	}
	ct := invariants.Container{ID: id, Labels: labels, Snapshot: id, Task: name, Owned: true}
	if c.status != "" {
		ct.HasTask, ct.Status, ct.Pid, ct.ExitCode = true, c.status, 100, c.exit
	}
	return ct
}

var (
	ruleAt   = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	provenAt = map[string]string{observed.LabelProven: observed.TimeLabel(ruleAt)}
)

func rolledBack(hash string, held bool) map[string]string {
	l := map[string]string{
		observed.LabelProven:     observed.TimeLabel(ruleAt),
		observed.LabelRolledBack: observed.RollbackLabel(observed.Rollback{Hash: hash, Reason: "exited with code 1, 3 times in 4s", At: ruleAt.Add(time.Minute)}),
	}
	if held {
		l[observed.LabelHeldFor] = hash
	}
	return l
}

func node(desiredTasks []desired.Task, cs ...fakeCtr) invariants.Node {
	n := invariants.Node{Containers: map[string]invariants.Container{}, Desired: desired.State{Tasks: map[string]desired.Task{}}}
	for _, t := range desiredTasks {
		n.Desired.Tasks[t.Metadata.Name] = t
	}
	for _, c := range cs {
		ct := c.container()
		n.Containers[ct.ID] = ct
	}
	return n
}

func TestCheckerRolloutRules(t *testing.T) {
	v1, v2 := ruleTask(t, "app", 1), ruleTask(t, "app", 2)
	s1, s2 := ruleTask(t, "app", 1, "updateStrategy: start-first"), ruleTask(t, "app", 2, "updateStrategy: start-first")
	n1, n2 := ruleTask(t, "app", 1, "restartPolicy: Never"), ruleTask(t, "app", 2, "restartPolicy: Never")
	v3 := ruleTask(t, "app", 3)
	for _, tc := range []struct {
		name    string
		node    invariants.Node
		want    []string // "kind subject"
		rolling []string // tasks mid-rollout
	}{
		{name: "converged, one container", node: node([]desired.Task{v2}, fakeCtr{tk: v2, status: containerd.Running})},
		{name: "converged after a rollout: the new one proved",
			node: node([]desired.Task{v2}, fakeCtr{tk: v2, status: containerd.Running, labels: provenAt})},

		// Rolled back: the last good container serves the refused spec.
		{name: "rolled back, the old container runs again",
			node: node([]desired.Task{v2}, fakeCtr{tk: v1, status: containerd.Running, labels: rolledBack(v2.Hash(), false)})},
		{name: "rolled back, but the old container is stopped (policy Always)",
			node: node([]desired.Task{v2}, fakeCtr{tk: v1, status: containerd.Stopped, exit: 137, labels: rolledBack(v2.Hash(), true)}),
			want: []string{"not-running app"}},
		{name: "rolled back under policy Never, the old container exited",
			node: node([]desired.Task{n2}, fakeCtr{tk: n1, status: containerd.Stopped, exit: 1, labels: rolledBack(n2.Hash(), false)})},
		{name: "rolled back, the old container has no task",
			node: node([]desired.Task{v2}, fakeCtr{tk: v1, labels: rolledBack(v2.Hash(), false)}),
			want: []string{"not-running app"}},
		{name: "rolled back, the new container still there",
			node: node([]desired.Task{v2}, fakeCtr{tk: v1, status: containerd.Running, labels: rolledBack(v2.Hash(), false)}, fakeCtr{tk: v2, status: containerd.Stopped, exit: 1}),
			want: []string{"duplicate app"}},
		{name: "rolled-back label without proven does not count",
			node: node([]desired.Task{v2}, fakeCtr{tk: v1, status: containerd.Running, labels: map[string]string{observed.LabelRolledBack: rolledBack(v2.Hash(), false)[observed.LabelRolledBack]}}),
			want: []string{"missing app"}},
		{name: "rolled back for another hash: the change asked now is missing",
			node: node([]desired.Task{v3}, fakeCtr{tk: v1, status: containerd.Running, labels: rolledBack(v2.Hash(), false)}),
			want: []string{"missing app"}},

		// Mid-rollout.
		{name: "stop-first mid-rollout: old held stopped, new running",
			node:    node([]desired.Task{v2}, fakeCtr{tk: v1, status: containerd.Stopped, exit: 0, labels: map[string]string{observed.LabelProven: provenAt[observed.LabelProven], observed.LabelHeldFor: v2.Hash()}}, fakeCtr{tk: v2, status: containerd.Running}),
			rolling: []string{"app"}},
		{name: "stop-first mid-rollout: new crash-looping (its process is the rollout's)",
			node:    node([]desired.Task{v2}, fakeCtr{tk: v1, status: containerd.Stopped, labels: provenAt}, fakeCtr{tk: v2, status: containerd.Stopped, exit: 1}),
			rolling: []string{"app"}},
		{name: "stop-first mid-rollout: both running",
			node:    node([]desired.Task{v2}, fakeCtr{tk: v1, status: containerd.Running, labels: provenAt}, fakeCtr{tk: v2, status: containerd.Running}),
			want:    []string{"overlap app"},
			rolling: []string{"app"}},
		{name: "stop-first mid-rollout: old paused, new running",
			node:    node([]desired.Task{v2}, fakeCtr{tk: v1, status: containerd.Paused, labels: provenAt}, fakeCtr{tk: v2, status: containerd.Running}),
			want:    []string{"overlap app"},
			rolling: []string{"app"}},
		{name: "start-first mid-rollout: both running",
			node:    node([]desired.Task{s2}, fakeCtr{tk: s1, status: containerd.Running, labels: provenAt}, fakeCtr{tk: s2, status: containerd.Running}),
			rolling: []string{"app"}},
		{name: "moved tag, stop-first: old held stopped, the new digest's container running",
			node:    node([]desired.Task{v2}, fakeCtr{tk: v2, status: containerd.Stopped, labels: provenAt}, fakeCtr{tk: v2, rev: "0123456789ab", status: containerd.Running}),
			rolling: []string{"app"}},
		{name: "moved tag, stop-first: both running",
			node:    node([]desired.Task{v2}, fakeCtr{tk: v2, status: containerd.Running, labels: provenAt}, fakeCtr{tk: v2, rev: "0123456789ab", status: containerd.Running}),
			want:    []string{"overlap app"},
			rolling: []string{"app"}},
		{name: "moved tag, start-first: both running",
			node:    node([]desired.Task{s2}, fakeCtr{tk: s2, status: containerd.Running, labels: provenAt}, fakeCtr{tk: s2, rev: "0123456789ab", status: containerd.Running}),
			rolling: []string{"app"}},
		{name: "moved tag rolled out: the new digest's container alone, proven",
			node: node([]desired.Task{v2}, fakeCtr{tk: v2, rev: "0123456789ab", status: containerd.Running, labels: provenAt})},
		{name: "moved tag rolled back (hash@digest refused): the old container alone",
			node: node([]desired.Task{v2}, fakeCtr{tk: v2, status: containerd.Running, labels: rolledBack(v2.Hash()+"@sha256:0123456789abcdef", false)})},
		{name: "mid-rollout with no container at all is missing",
			node: node([]desired.Task{v2}),
			want: []string{"missing app"}},
		{name: "old held, new not created yet: missing",
			node: node([]desired.Task{v2}, fakeCtr{tk: v1, status: containerd.Stopped, labels: provenAt}),
			want: []string{"missing app"}},
		{name: "two containers, neither proven: duplicate",
			node: node([]desired.Task{v2}, fakeCtr{tk: v1, status: containerd.Running}, fakeCtr{tk: v2, status: containerd.Running}),
			want: []string{"duplicate app"}},
		{name: "both proven (the new one marked, the old not yet gone): duplicate",
			node: node([]desired.Task{v2}, fakeCtr{tk: v1, status: containerd.Stopped, labels: provenAt}, fakeCtr{tk: v2, status: containerd.Running, labels: provenAt}),
			want: []string{"duplicate app"}},
		{name: "three containers: duplicate, not a rollout",
			node: node([]desired.Task{v3}, fakeCtr{tk: v1, status: containerd.Stopped, labels: provenAt}, fakeCtr{tk: v2, status: containerd.Stopped}, fakeCtr{tk: v3, status: containerd.Running}),
			want: []string{"duplicate app"}},
		{name: "a rollout's containers of a task no longer desired leak",
			node: node(nil, fakeCtr{tk: v1, status: containerd.Stopped, labels: provenAt}, fakeCtr{tk: v2, status: containerd.Running}),
			want: []string{"leaked " + observed.ContainerID("app", v1.Hash()), "leaked " + observed.ContainerID("app", v2.Hash())}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			vs := invariants.Violations(tc.node, invariants.Baseline{})
			var got []string
			for _, v := range vs {
				got = append(got, string(v.Kind)+" "+v.Subject)
			}
			slices.Sort(got)
			slices.Sort(tc.want)
			if !slices.Equal(got, tc.want) {
				t.Errorf("violations %q, want %q:\n%v", got, tc.want, vs)
			}
			var rolling []string
			for _, r := range invariants.Rollouts(tc.node) {
				rolling = append(rolling, r.Task)
			}
			if !slices.Equal(rolling, tc.rolling) {
				t.Errorf("rollouts %q, want %q", rolling, tc.rolling)
			}
		})
	}
}

// natSample is iptables-save -t nat output as the bridge, portmap and
// firewall plugins leave it for container web-ed94f85bbca0 of network
// reconciler-ns, beside a container of another network.
const natSample = `*nat
:CNI-48a13c4bca827851435648a4 - [0:0]
:CNI-DN-48a13c4bca82785143564 - [0:0]
-A POSTROUTING -s 10.229.197.5/32 -m comment --comment "name: \"reconciler-ns\" id: \"web-ed94f85bbca0\"" -j CNI-48a13c4bca827851435648a4
-A POSTROUTING -s 10.232.105.5/32 -m comment --comment "name: \"reconciler-ns2\" id: \"web-13c0873a3588\"" -j CNI-dc1c74aae68b45a17d6e076b
-A CNI-48a13c4bca827851435648a4 -d 10.229.197.0/24 -m comment --comment "name: \"reconciler-ns\" id: \"web-ed94f85bbca0\"" -j ACCEPT
-A CNI-48a13c4bca827851435648a4 ! -d 224.0.0.0/4 -m comment --comment "name: \"reconciler-ns\" id: \"web-ed94f85bbca0\"" -j MASQUERADE
-A CNI-DN-48a13c4bca82785143564 -d 127.0.0.1/32 -p tcp -m tcp --dport 36453 -j DNAT --to-destination 10.229.197.5:8080
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"reconciler-ns\" id: \"web-ed94f85bbca0\"" -m multiport --dports 36453 -j CNI-DN-48a13c4bca82785143564
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
`

// The checker's network rule (no namespace pin, port file, address lease
// or iptables rule of a container that does not exist), on nodes made by
// hand.
func TestCheckerNetworkRules(t *testing.T) {
	rules := invariants.NATRules(natSample, "reconciler-ns")
	if len(rules) != 1 || len(rules["web-ed94f85bbca0"]) != 4 {
		t.Errorf("NATRules: %d containers, %d rules of web-ed94f85bbca0, want 1 and 4: %q", len(rules), len(rules["web-ed94f85bbca0"]), rules)
	}
	if r := invariants.NATRules(natSample, "reconciler-n"); len(r) != 0 {
		t.Errorf("NATRules of network reconciler-n: %q, want none (a prefix of another network's name)", r)
	}

	web := ruleTask(t, "web", 1, "network: bridge")
	webID := observed.ContainerID("web", web.Hash())
	gone := "web-0123456789ab" // a container that does not exist
	with := func(n invariants.Node, pins, leases, rules map[string][]string) invariants.Node {
		n.NetPins, n.NetLeases, n.NetRules = pins, leases, rules
		return n
	}
	running := func() invariants.Node { return node([]desired.Task{web}, fakeCtr{tk: web, status: containerd.Running}) }
	for _, tc := range []struct {
		name string
		node invariants.Node
		want []string
	}{
		{name: "a bridge task with its pin, port file, lease and rules",
			node: with(running(), map[string][]string{webID: {webID, webID + ".json"}}, map[string][]string{webID: {"10.1.2.3"}}, map[string][]string{webID: {"-A ..."}})},
		{name: "nothing of the network",
			node: with(running(), nil, nil, nil)},
		{name: "a stopped container keeps its network",
			node: with(node([]desired.Task{web}, fakeCtr{tk: web, status: containerd.Stopped, exit: 0}), map[string][]string{webID: {webID}}, map[string][]string{webID: {"10.1.2.3"}}, nil),
			want: []string{"not-running web"}},
		{name: "a leaked pin and its port file",
			node: with(running(), map[string][]string{webID: {webID}, gone: {gone, gone + ".json"}}, nil, nil),
			want: []string{"leaked netns " + gone}},
		{name: "a port file being written, of no container",
			node: with(running(), map[string][]string{gone: {gone + ".json.tmp"}}, nil, nil),
			want: []string{"leaked netns " + gone}},
		{name: "a leaked lease",
			node: with(running(), nil, map[string][]string{webID: {"10.1.2.3"}, gone: {"10.1.2.4"}}, nil),
			want: []string{"leaked ipam 10.1.2.4"}},
		{name: "two leases of one container that is gone",
			node: with(running(), nil, map[string][]string{gone: {"10.1.2.4", "10.1.2.5"}}, nil),
			want: []string{"leaked ipam 10.1.2.4", "leaked ipam 10.1.2.5"}},
		{name: "leaked iptables rules",
			node: with(running(), nil, nil, map[string][]string{webID: {"-A ..."}, gone: {"-A a", "-A b"}}),
			want: []string{"leaked iptables " + gone}},
		{name: "a task deleted: its container gone, everything of its network left",
			node: with(node(nil), map[string][]string{webID: {webID, webID + ".json"}}, map[string][]string{webID: {"10.1.2.3"}}, map[string][]string{webID: {"-A ..."}}),
			want: []string{"leaked netns " + webID, "leaked ipam 10.1.2.3", "leaked iptables " + webID}},
		{name: "the container of a task no longer desired: the container leaks, not its network",
			node: with(node(nil, fakeCtr{tk: web, status: containerd.Running}), map[string][]string{webID: {webID}}, map[string][]string{webID: {"10.1.2.3"}}, map[string][]string{webID: {"-A ..."}}),
			want: []string{"leaked " + webID}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			vs := invariants.Violations(tc.node, invariants.Baseline{})
			var got []string
			for _, v := range vs {
				got = append(got, string(v.Kind)+" "+v.Subject)
			}
			slices.Sort(got)
			slices.Sort(tc.want)
			if !slices.Equal(got, tc.want) {
				t.Errorf("violations %q, want %q:\n%v", got, tc.want, vs)
			}
		})
	}
}
