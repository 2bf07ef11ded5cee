package reconcile

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/observed"
)

func task(name, image string, env ...desired.EnvVar) desired.Task {
	return desired.Task{
		APIVersion: desired.APIVersion, Kind: desired.KindTask,
		Metadata: desired.Metadata{Name: name},
		Spec:     desired.Spec{Image: image, Env: env},
		Source:   name + ".yaml",
	}
}

func container(t desired.Task, status observed.Status) observed.Container {
	h := t.Hash()
	return observed.Container{
		Raw:       observed.Raw{ID: observed.ContainerID(t.Metadata.Name, h), Status: status},
		Task:      t.Metadata.Name,
		SpecHash:  h,
		Source:    t.Source,
		StopSig:   "SIGTERM",
		StopGrace: 30 * time.Second,
	}
}

func exited(t desired.Task, code uint32, at time.Time) observed.Container {
	c := container(t, observed.Stopped)
	c.ExitCode, c.ExitedAt, c.StartedAt = code, at, at.Add(-time.Second)
	return c
}

// step is an action reduced to what the tables compare.
type step struct {
	Op Op
	ID string
}

func steps(as []Action) []step {
	var out []step
	for _, a := range as {
		out = append(out, step{a.Op, a.ContainerID})
	}
	return out
}

func TestPlan(t *testing.T) {
	web := task("web", "nginx:1.27")
	webV2 := task("web", "nginx:1.27", desired.EnvVar{Name: "MODE", Value: "two"})
	db := task("db", "postgres:16")
	idWeb := observed.ContainerID("web", web.Hash())
	idWebV2 := observed.ContainerID("web", webV2.Hash())
	idDB := observed.ContainerID("db", db.Hash())
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	job := task("job", "busybox:1")
	job.Spec.RestartPolicy = desired.RestartOnFailure
	idJob := observed.ContainerID("job", job.Hash())
	once := task("once", "busybox:1")
	once.Spec.RestartPolicy = desired.RestartNever
	webSF := task("web", "nginx:1.27", desired.EnvVar{Name: "V", Value: "1"})
	webSF.Spec.UpdateStrategy = desired.UpdateStartFirst
	webSF2 := task("web", "nginx:1.27", desired.EnvVar{Name: "V", Value: "2"})
	webSF2.Spec.UpdateStrategy = desired.UpdateStartFirst
	idWebSF, idWebSF2 := observed.ContainerID("web", webSF.Hash()), observed.ContainerID("web", webSF2.Hash())

	tests := []struct {
		name string
		want desired.State
		have []observed.Container
		exp  []step
	}{
		{
			name: "empty",
			want: desired.State{},
		},
		{
			name: "missing task is created and started",
			want: desired.State{Tasks: map[string]desired.Task{"web": web}},
			exp:  []step{{OpCreate, idWeb}, {OpStart, idWeb}},
		},
		{
			name: "running task with the desired hash is left alone",
			want: desired.State{Tasks: map[string]desired.Task{"web": web}},
			have: []observed.Container{container(web, observed.Running)},
		},
		{
			name: "paused task is left alone",
			want: desired.State{Tasks: map[string]desired.Task{"web": web}},
			have: []observed.Container{container(web, observed.Paused)},
		},
		{
			name: "exited task is started again",
			want: desired.State{Tasks: map[string]desired.Task{"web": web}},
			have: []observed.Container{container(web, observed.Stopped)},
			exp:  []step{{OpStart, idWeb}},
		},
		{
			name: "container without task is started",
			want: desired.State{Tasks: map[string]desired.Task{"web": web}},
			have: []observed.Container{container(web, observed.NoTask)},
			exp:  []step{{OpStart, idWeb}},
		},
		{
			name: "changed spec: old stopped and deleted before the new is created",
			want: desired.State{Tasks: map[string]desired.Task{"web": webV2}},
			have: []observed.Container{container(web, observed.Running)},
			exp:  []step{{OpStop, idWeb}, {OpDelete, idWeb}, {OpCreate, idWebV2}, {OpStart, idWebV2}},
		},
		{
			name: "after a crash mid-update both exist: the old one goes",
			want: desired.State{Tasks: map[string]desired.Task{"web": webV2}},
			have: []observed.Container{container(web, observed.Running), container(webV2, observed.Running)},
			exp:  []step{{OpStop, idWeb}, {OpDelete, idWeb}},
		},
		{
			name: "stopped old container is deleted without a stop",
			want: desired.State{Tasks: map[string]desired.Task{"web": webV2}},
			have: []observed.Container{container(web, observed.Stopped), container(webV2, observed.Running)},
			exp:  []step{{OpDelete, idWeb}},
		},
		{
			name: "undesired task is stopped and deleted",
			want: desired.State{Tasks: map[string]desired.Task{}},
			have: []observed.Container{container(web, observed.Running)},
			exp:  []step{{OpStop, idWeb}, {OpDelete, idWeb}},
		},
		{
			name: "undesired task from a broken file is kept",
			want: desired.State{Tasks: map[string]desired.Task{}, Broken: map[string]error{"web.yaml": errors.New("bad")}},
			have: []observed.Container{container(web, observed.Running)},
		},
		{
			name: "unreadable directory deletes nothing",
			want: desired.State{Err: errors.New("missing")},
			have: []observed.Container{container(web, observed.Running), container(db, observed.Running)},
		},
		{
			name: "unreadable directory still restarts what it knew",
			want: desired.State{Tasks: map[string]desired.Task{"web": web}, Err: errors.New("missing")},
			have: []observed.Container{container(web, observed.Stopped), container(db, observed.Running)},
			exp:  []step{{OpStart, idWeb}},
		},
		{
			name: "OnFailure task that exited 0 is Completed, not restarted",
			want: desired.State{Tasks: map[string]desired.Task{"job": job}},
			have: []observed.Container{exited(job, 0, now.Add(-time.Hour))},
		},
		{
			name: "OnFailure task that failed is restarted after its back-off",
			want: desired.State{Tasks: map[string]desired.Task{"job": job}},
			have: []observed.Container{exited(job, 2, now.Add(-time.Hour))},
			exp:  []step{{OpStart, idJob}},
		},
		{
			name: "a fresh crash waits for its back-off (CrashLoopBackOff)",
			want: desired.State{Tasks: map[string]desired.Task{"job": job}},
			have: []observed.Container{exited(job, 2, now)},
			exp:  []step{{OpWait, idJob}},
		},
		{
			name: "Never: an exited task stays exited",
			want: desired.State{Tasks: map[string]desired.Task{"once": once}},
			have: []observed.Container{exited(once, 1, now.Add(-time.Hour))},
		},
		{
			name: "start-first: the new container comes before the old goes",
			want: desired.State{Tasks: map[string]desired.Task{"web": webSF2}},
			have: []observed.Container{container(webSF, observed.Running)},
			exp:  []step{{OpCreate, idWebSF2}, {OpStart, idWebSF2}},
		},
		{
			name: "start-first: once the new one runs the old goes",
			want: desired.State{Tasks: map[string]desired.Task{"web": webSF2}},
			have: []observed.Container{container(webSF, observed.Running), container(webSF2, observed.Running)},
			exp:  []step{{OpStop, idWebSF}, {OpDelete, idWebSF}},
		},
		{
			name: "start-first: a stopped old container goes at once",
			want: desired.State{Tasks: map[string]desired.Task{"web": webSF2}},
			have: []observed.Container{container(webSF, observed.Stopped)},
			exp:  []step{{OpDelete, idWebSF}, {OpCreate, idWebSF2}, {OpStart, idWebSF2}},
		},
		{
			name: "three containers for one task: all but the desired one go",
			want: desired.State{Tasks: map[string]desired.Task{"web": webV2}},
			have: []observed.Container{container(web, observed.Running), container(webSF, observed.Stopped), container(webV2, observed.Running)},
			exp:  []step{{OpStop, idWeb}, {OpDelete, idWeb}, {OpDelete, observed.ContainerID("web", webSF.Hash())}},
		},
		{
			name: "tasks are planned in name order",
			want: desired.State{Tasks: map[string]desired.Task{"web": web, "db": db}},
			exp:  []step{{OpCreate, idDB}, {OpStart, idDB}, {OpCreate, idWeb}, {OpStart, idWeb}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := steps(Plan(tc.want, observed.State{Containers: tc.have}, now))
			if !reflect.DeepEqual(got, tc.exp) {
				t.Errorf("Plan:\n got %v\nwant %v", got, tc.exp)
			}
		})
	}
}

func TestPlanStopUsesContainerLabels(t *testing.T) {
	old := task("web", "nginx:1.27")
	c := container(old, observed.Running)
	c.StopSig, c.StopGrace = "SIGQUIT", 3*time.Second
	as := Plan(desired.State{Tasks: map[string]desired.Task{}}, observed.State{Containers: []observed.Container{c}}, time.Time{})
	if len(as) == 0 || as[0].Op != OpStop || as[0].StopSignal != "SIGQUIT" || as[0].StopGrace != 3*time.Second {
		t.Fatalf("stop action = %+v, want SIGQUIT with 3s grace from the container's labels", as)
	}
}

func TestPlanCreateCarriesTask(t *testing.T) {
	web := task("web", "nginx:1.27")
	as := Plan(desired.State{Tasks: map[string]desired.Task{"web": web}}, observed.State{}, time.Time{})
	if len(as) != 2 || as[0].Desired == nil || as[0].Desired.Hash() != web.Hash() {
		t.Fatalf("create action = %+v, want the desired task", as)
	}
	// A new container is created with its start labels and its creation
	// time: its first start needs no label update.
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	as = Plan(desired.State{Tasks: map[string]desired.Task{"web": web}}, observed.State{}, now)
	want := observed.StartLabels(now, 0, 0)
	want[observed.LabelCreatedAt] = observed.TimeLabel(now)
	if len(as) != 2 || !maps.Equal(as[0].Labels, want) || as[1].Op != OpStart || len(as[1].Labels) != 0 {
		t.Fatalf("new container: %+v, want the start labels on the create and none on the start", as)
	}
}

func TestPlanIgnoresUnmanaged(t *testing.T) {
	have := observed.State{Unmanaged: []observed.Unmanaged{{ID: "web-000000000000", Reason: "no ownership label"}}}
	if as := Plan(desired.State{Tasks: map[string]desired.Task{}}, have, time.Time{}); len(as) != 0 {
		t.Fatalf("Plan acted on an unmanaged container: %v", as)
	}
}

func TestDescribe(t *testing.T) {
	if got := Describe(nil); got != "nothing to do\n" {
		t.Errorf("Describe(nil) = %q", got)
	}
	got := Describe([]Action{{Op: OpCreate, Task: "web", ContainerID: "web-abc", Reason: "not present"}})
	want := "create  web                      web-abc                                  not present\n"
	if got != want {
		t.Errorf("Describe = %q, want %q", got, want)
	}
}

func TestPlanBlockedByUnmanagedID(t *testing.T) {
	web := task("web", "nginx:1.27")
	id := observed.ContainerID("web", web.Hash())
	have := observed.State{Unmanaged: []observed.Unmanaged{{ID: id, Reason: "no ownership label"}}}
	as := Plan(desired.State{Tasks: map[string]desired.Task{"web": web}}, have, time.Time{})
	if got := steps(as); !reflect.DeepEqual(got, []step{{OpBlocked, id}}) {
		t.Fatalf("Plan = %v, want only a blocked action", got)
	}

	// Stop-first replacement onto a taken ID: the old container keeps
	// running, since the new one cannot be created.
	old := task("web", "nginx:1.26")
	have.Containers = []observed.Container{container(old, observed.Running)}
	as = Plan(desired.State{Tasks: map[string]desired.Task{"web": web}}, have, time.Time{})
	if got := steps(as); !reflect.DeepEqual(got, []step{{OpBlocked, id}}) {
		t.Fatalf("Plan over a running old container = %v, want only a blocked action", got)
	}
}

func TestPlanReplacementShowsTheFieldsThatChanged(t *testing.T) {
	old := task("web", "nginx:1.27", desired.EnvVar{Name: "MODE", Value: "dev"})
	neu := task("web", "nginx:1.27", desired.EnvVar{Name: "MODE", Value: "prod"})
	c := container(old, observed.Running)
	var err error
	if c.Spec, err = json.Marshal(old.Spec); err != nil {
		t.Fatal(err)
	}
	as := Plan(desired.State{Tasks: map[string]desired.Task{"web": neu}}, observed.State{Containers: []observed.Container{c}}, time.Time{})
	want := []string{`spec.env[MODE].value: "dev" -> "prod"`}
	var create *Action
	for i := range as {
		if as[i].Op == OpCreate {
			create = &as[i]
		}
	}
	if create == nil || !reflect.DeepEqual(create.Diff, want) {
		t.Fatalf("create action %+v, want diff %q", create, want)
	}
	if out := Describe(as); !strings.Contains(out, "\n        "+want[0]+"\n") {
		t.Errorf("Describe does not show the diff:\n%s", out)
	}
}

func TestStatusSame(t *testing.T) {
	one, alsoOne, two := 1, 1, 2
	a := TaskStatus{Name: "web", Phase: PhaseFailed, ExitCode: &one, LastTransition: time.Unix(1, 0)}
	b := a
	b.ExitCode, b.LastTransition = &alsoOne, time.Unix(2, 0)
	if !a.same(b) {
		t.Error("equal exit codes behind different pointers, or another transition time, made statuses differ")
	}
	b.ExitCode = &two
	if a.same(b) {
		t.Error("different exit codes are the same")
	}
	b.ExitCode = nil
	if a.same(b) {
		t.Error("an exit code and none are the same")
	}
}

// TestPlanImageMoved: a container of an imagePullPolicy Always task whose
// tag moved since it was created (observed.State.Pulled) is replaced by one
// named by the new digest's revision, with the move as the reason (one that
// is a rollback target is kept while the new one proves itself:
// TestPlanRollout); other policies and unknown digests are left alone.
func TestPlanImageMoved(t *testing.T) {
	always := task("web", "registry.example/web:stable")
	always.Spec.ImagePullPolicy = desired.PullAlways
	ifNotPresent := task("web", "registry.example/web:stable")
	id := func(t desired.Task) string { return observed.ContainerID("web", t.Hash()) }
	rev := func(t desired.Task) string { return observed.RevisionID("web", t.Hash(), "sha256:new") }
	running := func(t desired.Task, digest string) observed.Container {
		c := container(t, observed.Running)
		c.ImageDigest = digest
		return c
	}
	moved := map[string]string{"registry.example/web:stable": "sha256:new"}
	for _, tc := range []struct {
		name   string
		task   desired.Task
		have   observed.Container
		pulled map[string]string
		exp    []step
	}{
		{"tag moved", always, running(always, "sha256:old"), moved,
			[]step{{OpStop, id(always)}, {OpDelete, id(always)}, {OpCreate, rev(always)}, {OpStart, rev(always)}}},
		{"tag where it was", always, running(always, "sha256:new"), moved, nil},
		{"nothing re-pulled", always, running(always, "sha256:old"), nil, nil},
		{"digest of the container unknown", always, running(always, ""), moved, nil},
		{"IfNotPresent is not followed", ifNotPresent, running(ifNotPresent, "sha256:old"), moved, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := desired.State{Tasks: map[string]desired.Task{"web": tc.task}}
			as := Plan(want, observed.State{Containers: []observed.Container{tc.have}, Pulled: tc.pulled}, time.Time{})
			if got := steps(as); !reflect.DeepEqual(got, tc.exp) {
				t.Fatalf("Plan:\n got %v\nwant %v", got, tc.exp)
			}
			for _, a := range as {
				if a.Op != OpStart && !strings.Contains(a.Reason, "image registry.example/web:stable moved to sha256:new") {
					t.Errorf("%s: reason %q does not say the tag moved", a.Op, a.Reason)
				}
			}
		})
	}
}
