package observed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/warren/reconciler/pkg/desired"
)

// Label keys the reconciler writes on every container it creates.
const (
	LabelManagedBy   = "io.warren.managed-by" // value ManagedByValue: the ownership label
	LabelTask        = "io.warren.task"       // metadata.name of the task
	LabelSpecHash    = "io.warren.spec-hash"  // desired.Task.Hash() of the spec it was created from
	LabelSource      = "io.warren.source"     // manifest file base name
	LabelStopSig     = "io.warren.stop-signal"
	LabelStopGrace   = "io.warren.stop-grace"   // Go duration string
	LabelImageDigest = "io.warren.image-digest" // digest of the image the container was created from (set by the runtime)
	LabelRestarts    = "io.warren.restarts"     // restarts of this container's task so far
	LabelStreak      = "io.warren.crash-streak" // restarts since the task last ran cleanly for its backoff reset time
	LabelStartedAt   = "io.warren.started-at"   // RFC 3339 time of the last start, by the reconciler's clock
	LabelUnhealthy   = "io.warren.unhealthy"    // set when the reconciler stops the task for failing its health check: why
	// LabelImageHealth is the image's HEALTHCHECK (set by the runtime at
	// create, as the JSON of a desired.HealthCheck): the task's check when
	// its manifest has none.
	LabelImageHealth = "io.warren.image-healthcheck"

	// The rollout of a changed spec (see the README's "Safe updates") lives
	// in these labels alone, so that a restarted reconciler resumes it.
	LabelCreatedAt = "io.warren.created-at" // RFC 3339 time of the create, by the reconciler's clock: a rollout's deadline counts from it
	LabelProven    = "io.warren.proven"     // RFC 3339 time the container proved itself: it is the task's last good container
	LabelHeldFor   = "io.warren.held-for"   // spec hash of the change a stop-first rollout stopped this (last good) container for
	LabelHeldAt    = "io.warren.held-at"    // RFC 3339 time it was stopped for it: the deadline of a new container that cannot even be made
	// LabelRolledBack is on the last good container after a rollback: the
	// JSON of a Rollback, naming the spec hash that is not tried again.
	LabelRolledBack = "io.warren.rolled-back"
	// LabelRevision is on the container that a moved image tag rolls out
	// beside the task's container of the same spec (imagePullPolicy Always
	// with --repull-interval): the first 12 hex digits of its image digest,
	// also the last part of its ID (RevisionID).
	LabelRevision = "io.warren.image-revision"
	// LabelIP is the address of a bridge task's container (network:
	// bridge), set at create: what the other bridge tasks' /etc/hosts say.
	LabelIP = "io.warren.ip"

	ManagedByValue = "reconciler"
)

// Status is the state of a container's task, as containerd reports it.
type Status string

// Task statuses. NoTask means the container exists but has no task (never
// started, or its task was deleted).
const (
	NoTask  Status = "none"
	Created Status = "created"
	Running Status = "running"
	Stopped Status = "stopped"
	Paused  Status = "paused"
	Unknown Status = "unknown"
)

// Raw is a container as the runtime lists it, before any label is interpreted.
type Raw struct {
	ID        string
	Labels    map[string]string
	Image     string
	CreatedAt time.Time
	Status    Status
	Pid       uint32
	ExitCode  uint32
	ExitedAt  time.Time
	// Spec is the manifest spec (JSON) the container was created from, as
	// the runtime recorded it; nil if unknown. For explaining changes only.
	Spec []byte
}

// Container is a container the reconciler owns, with its labels decoded.
type Container struct {
	Raw
	Task        string
	SpecHash    string
	Source      string
	StopSig     string
	StopGrace   time.Duration
	ImageDigest string
	Restarts    int
	Streak      int
	StartedAt   time.Time // zero if never started by the reconciler
	// Unhealthy is why the reconciler stopped the task for failing its
	// health check; "" when it did not (or the task started again since).
	Unhealthy string
	// ImageHealth is the health check of the container's image, nil when
	// it has none.
	ImageHealth *desired.HealthCheck
	// Created is when the reconciler created it (zero for a container
	// made before that label existed).
	Created time.Time
	// Proven is when it proved itself (zero when it has not, or not yet).
	Proven time.Time
	// HeldFor is the spec hash of the change a stop-first rollout stopped
	// it for, while the new container proves itself.
	HeldFor string
	HeldAt  time.Time
	// RolledBack is the change rolled back to this container, nil when none.
	RolledBack *Rollback
	// Revision is its LabelRevision, "" for a container named by its spec
	// alone.
	Revision string
	// IP is a bridge container's address (LabelIP), "" for other networks.
	IP string
}

// Rollback is a change that failed to prove itself: its spec hash is not
// tried again until the manifest changes to something else.
type Rollback struct {
	Hash   string    `json:"hash"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Unmanaged is a container in the namespace that the reconciler does not own.
type Unmanaged struct {
	ID     string
	Reason string // why it is not managed: no ownership label, or which label is inconsistent
}

// State is everything observed at one moment.
type State struct {
	Containers []Container // sorted by task, then ID
	Unmanaged  []Unmanaged
	// Pulled is, per image reference, the digest its tag pointed at when
	// last re-pulled (the daemon's --repull-interval); nil when nothing
	// re-pulls. A container of an imagePullPolicy: Always task that runs
	// another digest is replaced.
	Pulled map[string]string
	// Unhealthy is, per container ID, why its running task failed its
	// health check (the probes' verdict); such a task is stopped and
	// counted as a failed exit.
	Unhealthy map[string]string
	// Healthy is, per container ID, whether its health check has passed
	// since its task last started (the probes' verdict): what a new
	// container of a rollout must show, when it has a check.
	Healthy map[string]bool
	// Peers is what the tasks others depend on (spec.dependsOn) are doing
	// now, by task name; a task missing from it meets no condition.
	Peers map[string]Peer
}

// Peer is what a task is doing, as the tasks that depend on it see it.
type Peer struct {
	Running   bool // its process runs
	Healthy   bool // it runs and passed its health check (or has none)
	Completed bool // it exited 0 and is not restarted
}

// Meets reports whether p meets condition c.
func (p Peer) Meets(c desired.DependCondition) bool {
	switch c {
	case desired.DependHealthy:
		return p.Healthy
	case desired.DependCompleted:
		return p.Completed
	}
	return p.Running
}

// ForTask returns the owned containers of one task.
func (s State) ForTask(name string) []Container {
	var out []Container
	for _, c := range s.Containers {
		if c.Task == name {
			out = append(out, c)
		}
	}
	return out
}

// Lister lists the containers of the namespace with their task status. An empty
// task name lists all of them; otherwise those labelled with that task and
// those whose ID starts with the task name and a dash (so that a container
// squatting on the task's IDs is seen too). Callers filter with ForTask.
type Lister interface {
	List(ctx context.Context, task string) ([]Raw, error)
}

// Observe lists through l and classifies the result. With a task name, the
// owned containers are only that task's; the unmanaged ones are those that
// could collide with its IDs.
func Observe(ctx context.Context, l Lister, task string) (State, error) {
	raws, err := l.List(ctx, task)
	if err != nil {
		return State{}, fmt.Errorf("list containers: %w", err)
	}
	s := Classify(raws)
	if task != "" {
		s.Containers = s.ForTask(task)
	}
	return s, nil
}

// Classify splits raw containers into owned and unmanaged ones.
func Classify(raws []Raw) State {
	var s State
	for _, r := range raws {
		c, reason := decode(r)
		if reason != "" {
			s.Unmanaged = append(s.Unmanaged, Unmanaged{ID: r.ID, Reason: reason})
			continue
		}
		s.Containers = append(s.Containers, c)
	}
	sort.Slice(s.Containers, func(i, j int) bool {
		a, b := s.Containers[i], s.Containers[j]
		if a.Task != b.Task {
			return a.Task < b.Task
		}
		return a.ID < b.ID
	})
	sort.Slice(s.Unmanaged, func(i, j int) bool { return s.Unmanaged[i].ID < s.Unmanaged[j].ID })
	return s
}

// Revision is the revision of an image digest ("sha256:0123..."): its
// first 12 hex digits (for a digest that has fewer, those of the SHA-256
// of the digest).
func Revision(digest string) string {
	_, hexDigits, _ := strings.Cut(digest, ":")
	if len(hexDigits) >= 12 && revisionRE.MatchString(hexDigits[:12]) {
		return hexDigits[:12]
	}
	sum := sha256.Sum256([]byte(digest))
	return hex.EncodeToString(sum[:])[:12]
}

// RevisionID is the ID of the container that runs task's spec specHash
// from the image digest its tag moved to: ContainerID and the digest's
// Revision, so that it can run beside the container of the old digest
// while it proves itself.
func RevisionID(task, specHash, digest string) string {
	return ContainerID(task, specHash) + "-" + Revision(digest)
}

var revisionRE = regexp.MustCompile(`^[0-9a-f]{12}$`)

// ContainerID is the identity of a task's container (DESIGN invariant 2): the
// task name and the spec hash, so a changed spec is a new container and creating
// the same spec twice names the same container.
func ContainerID(task, specHash string) string {
	return task + "-" + specHash
}

func decode(r Raw) (Container, string) {
	if r.Labels[LabelManagedBy] != ManagedByValue {
		return Container{}, "no ownership label"
	}
	c := Container{
		Raw:         r,
		Task:        r.Labels[LabelTask],
		SpecHash:    r.Labels[LabelSpecHash],
		Source:      r.Labels[LabelSource],
		StopSig:     r.Labels[LabelStopSig],
		ImageDigest: r.Labels[LabelImageDigest],
	}
	if c.Task == "" || c.SpecHash == "" {
		return Container{}, "ownership label without task and spec-hash labels"
	}
	c.Revision = r.Labels[LabelRevision]
	if want := ContainerID(c.Task, c.SpecHash); c.Revision != "" {
		if !revisionRE.MatchString(c.Revision) || r.ID != want+"-"+c.Revision {
			return Container{}, fmt.Sprintf("id does not match labels %s=%s %s=%s %s=%s", LabelTask, c.Task, LabelSpecHash, c.SpecHash, LabelRevision, c.Revision)
		}
	} else if r.ID != want {
		return Container{}, fmt.Sprintf("id does not match labels %s=%s %s=%s", LabelTask, c.Task, LabelSpecHash, c.SpecHash)
	}
	c.StopGrace = desired.DefaultStopGracePeriod
	if g := r.Labels[LabelStopGrace]; g != "" {
		d, err := time.ParseDuration(g)
		if err != nil || d < 0 {
			return Container{}, fmt.Sprintf("bad %s label %q", LabelStopGrace, g)
		}
		c.StopGrace = d
	}
	for _, f := range []struct {
		key string
		dst *int
	}{{LabelRestarts, &c.Restarts}, {LabelStreak, &c.Streak}} {
		if v := r.Labels[f.key]; v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return Container{}, fmt.Sprintf("bad %s label %q", f.key, v)
			}
			*f.dst = n
		}
	}
	c.Unhealthy = r.Labels[LabelUnhealthy]
	if v := r.Labels[LabelImageHealth]; v != "" {
		var h desired.HealthCheck
		if err := json.Unmarshal([]byte(v), &h); err != nil {
			return Container{}, fmt.Sprintf("bad %s label %q", LabelImageHealth, v)
		}
		c.ImageHealth = &h
	}
	for _, f := range []struct {
		key string
		dst *time.Time
	}{{LabelStartedAt, &c.StartedAt}, {LabelCreatedAt, &c.Created}, {LabelProven, &c.Proven}, {LabelHeldAt, &c.HeldAt}} {
		if v := r.Labels[f.key]; v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return Container{}, fmt.Sprintf("bad %s label %q", f.key, v)
			}
			*f.dst = t
		}
	}
	c.HeldFor = r.Labels[LabelHeldFor]
	c.IP = r.Labels[LabelIP]
	if v := r.Labels[LabelRolledBack]; v != "" {
		var rb Rollback
		if err := json.Unmarshal([]byte(v), &rb); err != nil || rb.Hash == "" {
			return Container{}, fmt.Sprintf("bad %s label %q", LabelRolledBack, v)
		}
		c.RolledBack = &rb
	}
	return c, ""
}

// TimeLabel is the value of a time label (started-at, created-at, proven).
func TimeLabel(at time.Time) string { return at.UTC().Format(time.RFC3339Nano) }

// RollbackLabel is the value of LabelRolledBack for rb.
func RollbackLabel(rb Rollback) string {
	rb.At = rb.At.UTC()
	b, _ := json.Marshal(rb) // strings and a time: cannot fail
	return string(b)
}

// StartLabels are the labels a start of a container sets: when it started,
// and its restart counts.
func StartLabels(at time.Time, restarts, streak int) map[string]string {
	return map[string]string{
		LabelStartedAt: TimeLabel(at),
		LabelRestarts:  strconv.Itoa(restarts),
		LabelStreak:    strconv.Itoa(streak),
	}
}

// Labels returns the labels for a new container of task name with spec hash.
func Labels(task, specHash, source, stopSig string, stopGrace time.Duration) map[string]string {
	return map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelTask:      task,
		LabelSpecHash:  specHash,
		LabelSource:    source,
		LabelStopSig:   stopSig,
		LabelStopGrace: stopGrace.String(),
	}
}

// ParseStatus maps containerd's lower-case status words to Status.
func ParseStatus(s string) Status {
	switch st := Status(strings.ToLower(s)); st {
	case Created, Running, Stopped, Paused:
		return st
	case "pausing":
		return Paused
	case "":
		return NoTask
	}
	return Unknown
}

// String is for logs and tables: the status, with the exit code when stopped.
func (c Container) String() string {
	if c.Status == Stopped {
		return c.ID + " (exited " + strconv.Itoa(int(c.ExitCode)) + ")"
	}
	return c.ID + " (" + string(c.Status) + ")"
}
