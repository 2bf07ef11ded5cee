package webui

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/warren/reconciler/pkg/health"
	"github.com/warren/reconciler/pkg/reconcile"
)

// listView is the task list.
type listView struct {
	Base      string // the way back to the root from the page's path
	Title     string
	Events    string // the event stream of the page, relative
	Now       string
	Summary   string
	Groups    []group
	DirError  string
	Broken    []brokenFile
	Unmanaged []unmanaged
	Source    *sourceView
}

// group is a task of its own or the tasks of one Kubernetes Pod.
type group struct {
	Pod  string // "" for a task of its own
	Rows []row
}

type row struct {
	Name       string // the task's
	Label      string // what the list shows: the container's name in a pod
	Init       bool   // a pod's init container
	Phase      string
	PhaseClass string
	Health     string
	Restarts   int
	Age        string
	Image      string
	Message    string
	Usage      usageView
}

type brokenFile struct {
	File   string
	Errors string
}

type unmanaged struct {
	ID, Reason string
}

type sourceView struct {
	URL, Commit, Ref, Signer, Error string
	Applied                         string
}

// taskView is a task's page.
type taskView struct {
	Base   string
	Title  string
	Events string
	Name   string
	Found  bool
	Now    string
	Row    row
	Facts  []fact
	// Reason is why it is in its phase; Rollback the reason of the change
	// rolled back, Rollout the rollout under way.
	Reason   string
	Rollback []fact
	Rollout  []fact
	Spec     string
	HasSpecs bool
	Log      []string
	LogError string
	HasLogs  bool
}

type fact struct {
	Name, Value string
}

func (h *Handler) listView(st Status, now time.Time, base string) listView {
	v := listView{Base: base, Title: h.cfg.Title, Events: "events", Now: now.UTC().Format(time.RFC3339)}
	byPod := map[string]int{} // pod -> index in v.Groups
	counts := map[string]int{}
	for _, t := range st.Tasks {
		r := h.row(t, now)
		counts[r.PhaseClass]++
		if t.Pod == "" {
			v.Groups = append(v.Groups, group{Rows: []row{r}})
			continue
		}
		r.Label, r.Init = strings.TrimPrefix(t.Name, t.Pod+"-"), t.InitContainer
		i, ok := byPod[t.Pod]
		if !ok {
			i = len(v.Groups)
			byPod[t.Pod] = i
			v.Groups = append(v.Groups, group{Pod: t.Pod})
		}
		v.Groups[i].Rows = append(v.Groups[i].Rows, r)
	}
	for _, g := range v.Groups {
		// A pod's init containers first, as `reconciler status POD` lists them.
		sort.SliceStable(g.Rows, func(i, j int) bool { return g.Rows[i].Init && !g.Rows[j].Init })
	}
	sort.SliceStable(v.Groups, func(i, j int) bool { return groupKey(v.Groups[i]) < groupKey(v.Groups[j]) })
	v.Summary = summary(len(st.Tasks), counts)
	v.DirError = st.Manifests.Error
	for file, errs := range st.Manifests.Broken {
		v.Broken = append(v.Broken, brokenFile{File: file, Errors: errs})
	}
	slices.SortFunc(v.Broken, func(a, b brokenFile) int { return strings.Compare(a.File, b.File) })
	for _, u := range st.Unmanaged {
		v.Unmanaged = append(v.Unmanaged, unmanaged{ID: u.ID, Reason: u.Reason})
	}
	slices.SortFunc(v.Unmanaged, func(a, b unmanaged) int { return strings.Compare(a.ID, b.ID) })
	if s := st.Source; s != nil {
		sv := &sourceView{URL: s.URL, Commit: s.Commit, Ref: s.RefName, Signer: s.Signer, Error: s.LastError}
		if !s.AppliedAt.IsZero() {
			sv.Applied = ago(now, s.AppliedAt)
		}
		v.Source = sv
	}
	return v
}

func groupKey(g group) string {
	if g.Pod != "" {
		return g.Pod
	}
	return g.Rows[0].Name
}

func summary(n int, counts map[string]int) string {
	s := fmt.Sprintf("%d tasks", n)
	if n == 1 {
		s = "1 task"
	}
	var parts []string
	for _, c := range []struct{ class, word string }{{"ok", "fine"}, {"busy", "changing"}, {"bad", "failing"}} {
		if counts[c.class] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[c.class], c.word))
		}
	}
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return s
}

func (h *Handler) row(t reconcile.TaskStatus, now time.Time) row {
	r := row{
		Name: t.Name, Label: t.Name, Phase: string(t.Phase), PhaseClass: phaseClass(t.Phase),
		Health: healthText(t.Health), Restarts: t.Restarts, Age: "-", Image: t.Image, Message: t.Message,
	}
	if !t.StartedAt.IsZero() {
		r.Age = humanAge(now.Sub(t.StartedAt))
	}
	r.Usage = h.usage.view(t.Name, t.Phase == reconcile.PhaseRunning)
	return r
}

func (h *Handler) taskView(st Status, name string, now time.Time, base string) taskView {
	v := taskView{Base: base, Title: name + " · " + h.cfg.Title, Events: pathEscape(name) + "/events", Name: name,
		Now: now.UTC().Format(time.RFC3339), HasSpecs: h.cfg.Specs != nil, HasLogs: h.cfg.Logs != nil}
	i := slices.IndexFunc(st.Tasks, func(t reconcile.TaskStatus) bool { return t.Name == name })
	if i < 0 {
		return v
	}
	t := st.Tasks[i]
	v.Found, v.Row, v.Reason = true, h.row(t, now), t.Message
	add := func(list *[]fact, name, value string) {
		if value != "" {
			*list = append(*list, fact{name, value})
		}
	}
	when := func(at time.Time) string {
		if at.IsZero() {
			return ""
		}
		return at.UTC().Format(time.RFC3339) + " (" + ago(now, at) + ")"
	}
	if t.Pod != "" {
		pod := t.Pod
		if t.InitContainer {
			pod += " (init container)"
		}
		add(&v.Facts, "Pod", pod)
	}
	add(&v.Facts, "Last transition", when(t.LastTransition))
	if t.Health.State != "" {
		hs := string(t.Health.State)
		if t.Health.Streak > 0 {
			hs += fmt.Sprintf(", %d failed in a row", t.Health.Streak)
		}
		add(&v.Facts, "Health", hs)
		add(&v.Facts, "Health check", t.Health.Check)
		add(&v.Facts, "Last probe", when(t.Health.LastProbe))
		add(&v.Facts, "Last probe output", t.Health.Output)
	}
	add(&v.Facts, "Restarts", fmt.Sprint(t.Restarts))
	add(&v.Facts, "Started", when(t.StartedAt))
	add(&v.Facts, "Finished", when(t.FinishedAt))
	if t.ExitCode != nil {
		add(&v.Facts, "Exit code", fmt.Sprint(*t.ExitCode))
	}
	add(&v.Facts, "Next retry", when(t.NextRetry))
	add(&v.Facts, "Image", t.Image)
	add(&v.Facts, "Image digest", t.ImageDigest)
	add(&v.Facts, "Container", t.ContainerID)
	add(&v.Facts, "Manifest file", t.Source)
	add(&v.Facts, "Git commit", t.Revision)
	add(&v.Facts, "Spec hash", t.SpecHash)
	add(&v.Facts, "Address", t.IP)
	add(&v.Facts, "Ports", t.Ports)
	if rb := t.RolledBack; rb.RefusedHash != "" {
		add(&v.Rollback, "Refused spec", rb.RefusedHash)
		add(&v.Rollback, "Reason", rb.Reason)
		add(&v.Rollback, "At", when(rb.At))
	}
	if ro := t.Rollout; ro.From != "" {
		add(&v.Rollout, "Kept container", ro.From)
		add(&v.Rollout, "Waiting for", ro.Waiting)
		add(&v.Rollout, "Since", when(ro.Since))
		add(&v.Rollout, "Deadline", when(ro.Deadline))
	}
	if h.cfg.Specs != nil {
		if spec, ok := h.cfg.Specs.Spec(name); ok {
			v.Spec = spec
		}
	}
	return v
}

func phaseClass(p reconcile.Phase) string {
	switch p {
	case reconcile.PhaseRunning, reconcile.PhaseCompleted:
		return "ok"
	case reconcile.PhaseCrashLoopBackOff, reconcile.PhaseFailed, reconcile.PhaseInvalid, reconcile.PhaseBlocked, reconcile.PhaseError:
		return "bad"
	}
	return "busy"
}

// healthText is the HEALTH column of `reconciler status`: the state, "-"
// without a health check.
func healthText(hs reconcile.HealthStatus) string {
	switch {
	case hs.State == "":
		return "-"
	case hs.Streak > 0 && hs.State != health.Unhealthy:
		return fmt.Sprintf("%s (%d failing)", hs.State, hs.Streak)
	}
	return string(hs.State)
}

// humanAge is the AGE of `reconciler status`.
func humanAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func ago(now, at time.Time) string { return humanAge(now.Sub(at)) + " ago" }
