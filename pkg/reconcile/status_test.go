package reconcile

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

// permanent is an error the node refuses for good.
type permanent struct{ error }

func (permanent) Permanent() bool { return true }

// TestTaskStatusPhases: every phase a task can show, each from the one
// function that derives them, and what wins when several apply.
func TestTaskStatusPhases(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	web := task("web", "nginx:1.27")
	hash := web.Hash()
	id := observed.ContainerID("web", hash)
	base := statusInput{name: "web", task: &web, hash: hash}
	with := func(mut func(in *statusInput)) statusInput {
		in := base
		mut(&in)
		return in
	}
	have := func(cs ...observed.Container) func(*statusInput) {
		return func(in *statusInput) { in.have = cs }
	}
	create := Action{Op: OpCreate, Task: "web", ContainerID: id, Desired: &web}
	start := Action{Op: OpStart, Task: "web", ContainerID: id, Reason: "exited with code 1; restart 1"}
	stop := Action{Op: OpStop, Task: "web", ContainerID: id, Reason: "no longer desired"}
	wait := Action{Op: OpWait, Task: "web", ContainerID: id, NotBefore: now.Add(time.Minute), Reason: "back-off 1m0s before restart 2"}
	blocked := Action{Op: OpBlocked, Task: "web", ContainerID: id, Reason: "container id taken by an unmanaged container"}
	broken := map[string]error{"web.yaml": errors.New("web.yaml:3: spec.image: required")}

	tests := []struct {
		name  string
		in    statusInput
		p     progress
		phase Phase
		msg   string // substring of the message
	}{
		{"nothing created yet", base, progress{}, PhasePending, "waiting to be created"},
		{"created, never started", with(have(container(web, observed.Created))), progress{}, PhasePending, "container created, task created"},
		{"running", with(have(container(web, observed.Running))), progress{}, PhaseRunning, "running"},
		{"paused counts as running", with(have(container(web, observed.Paused))), progress{}, PhaseRunning, "running"},
		{"exited 0", with(have(exited(web, 0, now))), progress{}, PhaseCompleted, "exited with code 0"},
		{"exited non-zero", with(have(exited(web, 3, now))), progress{}, PhaseFailed, "exited with code 3"},
		{"restart held back", with(func(in *statusInput) { in.have, in.actions = []observed.Container{exited(web, 1, now)}, []Action{wait} }), progress{}, PhaseCrashLoopBackOff, "back-off"},
		{"ID taken", with(func(in *statusInput) { in.actions = []Action{blocked} }), progress{}, PhaseBlocked, "unmanaged"},
		{"waits for its dependencies", with(func(in *statusInput) {
			in.actions = []Action{{Op: OpAwait, Task: "web", ContainerID: id, Reason: "waiting for db to be healthy"}}
		}), progress{}, PhaseWaiting, "waiting for db to be healthy"},
		{"no longer desired", statusInput{name: "web", have: []observed.Container{container(web, observed.Running)}}, progress{}, PhaseStopping, "no longer desired"},
		{"broken file over running", with(func(in *statusInput) {
			in.have, in.broken = []observed.Container{container(web, observed.Running)}, broken
		}), progress{}, PhaseInvalid, "manifest invalid, last good spec kept (running): web.yaml:3"},
		{"broken file over a removal", statusInput{name: "web", have: []observed.Container{container(web, observed.Running)}, broken: broken}, progress{}, PhaseInvalid, "last good spec kept"},
		{"create that fetches its image", base, progress{doing: &create, pulling: true}, PhasePulling, "pulling nginx:1.27 for container " + id},
		{"create of an image on the node", base, progress{doing: &create}, PhaseCreating, "creating container " + id},
		{"first start of a new container", with(have(container(web, observed.Created))), progress{doing: &start}, PhaseCreating, "creating container " + id},
		{"restart after an exit", with(have(exited(web, 1, now))), progress{doing: &start}, PhaseRestarting, "restart 1"},
		{"restart after the back-off", with(func(in *statusInput) { in.have, in.actions = []observed.Container{exited(web, 1, now)}, []Action{wait} }), progress{doing: &start}, PhaseRestarting, "restart 1"},
		{"stop", with(have(container(web, observed.Running))), progress{doing: &stop}, PhaseStopping, "stopping " + id + ": no longer desired"},
		{"action failed", base, progress{err: errors.New("pull image: connection refused")}, PhaseError, "connection refused"},
		{"error over an action", base, progress{doing: &create, err: errors.New("boom")}, PhaseError, "boom"},
		{"refused for good", base, progress{refused: permanent{errors.New("privileged: denied by node policy")}}, PhaseFailed, "denied by node policy"},
		{"refused over an error", base, progress{refused: errors.New("denied"), err: errors.New("boom")}, PhaseFailed, "denied"},
	}
	seen := map[Phase]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := taskStatus(tc.in, tc.p)
			if st.Phase != tc.phase || !strings.Contains(st.Message, tc.msg) {
				t.Errorf("taskStatus = %s %q, want %s with %q", st.Phase, st.Message, tc.phase, tc.msg)
			}
		})
		seen[tc.phase] = true
	}
	for _, p := range []Phase{PhasePending, PhasePulling, PhaseCreating, PhaseRunning, PhaseStopping, PhaseRestarting,
		PhaseCrashLoopBackOff, PhaseCompleted, PhaseFailed, PhaseInvalid, PhaseBlocked, PhaseError, PhaseWaiting} {
		if !seen[p] {
			t.Errorf("no case shows phase %s", p)
		}
	}
}

// TestTaskStatusPod: each task of a pod names the pod, its init
// containers are marked as such when the board is read (by list and by
// get), and a task of a pod that is no longer desired keeps its pod.
func TestTaskStatusPod(t *testing.T) {
	const pod = `apiVersion: v1
kind: Pod
metadata: {name: pair}
spec:
  hostNetwork: true
  initContainers:
    - {name: setup, image: busybox}
    - {name: migrate, image: busybox}
  containers:
    - {name: front, image: nginx}
    - {name: back, image: nginx}
`
	tasks, err := desired.Parse("pair.yaml", []byte(pod))
	if err != nil {
		t.Fatal(err)
	}
	web := task("web", "nginx")
	tasks = append(tasks, web)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newStatusBoard()
	for i := range tasks {
		tk := &tasks[i]
		b.set(taskStatus(statusInput{name: tk.Metadata.Name, task: tk, hash: tk.Hash()}, progress{}), now)
	}
	type row struct {
		pod  string
		init bool
	}
	want := map[string]row{
		"pair-setup": {"pair", true}, "pair-migrate": {"pair", true},
		"pair-front": {"pair", false}, "pair-back": {"pair", false}, "web": {"", false},
	}
	list := b.list()
	if len(list) != len(want) {
		t.Fatalf("list has %d tasks, want %d", len(list), len(want))
	}
	for _, st := range list {
		if got := (row{st.Pod, st.InitContainer}); got != want[st.Name] {
			t.Errorf("list: %s: pod %q, init %v; want %+v", st.Name, st.Pod, st.InitContainer, want[st.Name])
		}
		got, _ := b.get(st.Name)
		if (row{got.Pod, got.InitContainer}) != want[st.Name] {
			t.Errorf("get(%s): pod %q, init %v; want %+v", st.Name, got.Pod, got.InitContainer, want[st.Name])
		}
		// The resync compares what it reads with a fresh status: the
		// derived mark is no change.
		var tk *desired.Task
		for i := range tasks {
			if tasks[i].Metadata.Name == st.Name {
				tk = &tasks[i]
			}
		}
		if fresh := taskStatus(statusInput{name: st.Name, task: tk, hash: tk.Hash()}, progress{}); !got.same(fresh) {
			t.Errorf("%s: the status read from the board differs from a fresh one", st.Name)
		}
	}
	// The pod is removed: its tasks stop, still under it.
	setup := tasks[0]
	b.set(taskStatus(statusInput{name: "pair-setup", have: []observed.Container{container(setup, observed.Running)}}, progress{}), now)
	if st, _ := b.get("pair-setup"); st.Phase != PhaseStopping || st.Pod != "pair" || !st.InitContainer {
		t.Errorf("pair-setup no longer desired: %s, pod %q, init %v; want Stopping under pair, init", st.Phase, st.Pod, st.InitContainer)
	}
	// A task of that name that is not a pod's is not under it.
	other := task("pair-setup", "busybox")
	b.set(taskStatus(statusInput{name: "pair-setup", task: &other, hash: other.Hash()}, progress{}), now)
	if st, _ := b.get("pair-setup"); st.Pod != "" || st.InitContainer {
		t.Errorf("pair-setup as a Task: pod %q, init %v; want none", st.Pod, st.InitContainer)
	}
}
