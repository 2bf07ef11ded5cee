package desired

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The only apiVersion and kind a manifest document may have.
const (
	APIVersion = "warren/v1"
	KindTask   = "Task"
)

// Defaults for fields the manifest leaves out.
const (
	DefaultStopGracePeriod = 30 * time.Second
	DefaultStopSignal      = "SIGTERM"
)

// Task is one manifest document.
type Task struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
	// Source is the base name of the file the task came from; set by the
	// loader and Parse, not part of YAML.
	Source string `json:"-"`
	// Revision is the revision of the directory the spec was read from
	// (the git commit of the git source's tree), set by a loader given
	// [WithRevision]; a broken file's last-known-good tasks keep the
	// revision they were read at. Not part of YAML or the hash.
	Revision string `json:"-"`
}

// Metadata names a task.
type Metadata struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Spec is what to run. Every field takes part in [Task.Hash]: any change of the
// spec replaces the container. Parse fills in every default (see
// [Spec.withDefaults]), so consumers read effective values directly.
type Spec struct {
	Image           string           `json:"image"`
	ImagePullPolicy PullPolicy       `json:"imagePullPolicy,omitempty"` // default IfNotPresent; Always for :latest or no tag
	Command         []string         `json:"command,omitempty"`         // replaces the image's ENTRYPOINT
	Args            []string         `json:"args,omitempty"`            // replaces the image's CMD
	Env             []EnvVar         `json:"env,omitempty"`
	WorkingDir      string           `json:"workingDir,omitempty"`
	User            string           `json:"user,omitempty"` // "uid" or "uid:gid"
	Resources       *Resources       `json:"resources,omitempty"`
	Mounts          []Mount          `json:"mounts,omitempty"`
	Secrets         []Secret         `json:"secrets,omitempty"`
	Network         NetworkMode      `json:"network,omitempty"` // default host
	Ports           []Port           `json:"ports,omitempty"`   // bridge only
	SecurityContext *SecurityContext `json:"securityContext,omitempty"`
	RestartPolicy   RestartPolicy    `json:"restartPolicy,omitempty"` // default Always
	RestartBackoff  *RestartBackoff  `json:"restartBackoff,omitempty"`
	UpdateStrategy  UpdateStrategy   `json:"updateStrategy,omitempty"`  // default stop-first
	StopSignal      string           `json:"stopSignal,omitempty"`      // by name, default "SIGTERM"
	StopGracePeriod *Duration        `json:"stopGracePeriod,omitempty"` // default 30s
	HealthCheck     *HealthCheck     `json:"healthCheck,omitempty"`
	// DependsOn holds the task's first start (and the start of each new
	// container of it) until the tasks named meet their conditions. Not
	// part of the hash: reordering starts never replaces a container.
	DependsOn []Dependency `json:"dependsOn,omitempty"`
	// MinReady and ProgressDeadline govern the rollout of a changed spec
	// (see the README's "Safe updates"): the new container proves itself
	// by running MinReady without a restart (and passing its health
	// check, when it has one) within ProgressDeadline of its creation, or
	// the last good container runs again. Not part of the hash: they
	// govern the replacement, not the container.
	MinReady         *Duration `json:"minReady,omitempty"`         // default 10s
	ProgressDeadline *Duration `json:"progressDeadline,omitempty"` // default 5m
	// Pod is the metadata.name of the Kubernetes Pod whose container this
	// task is ([Pod]; the task is named POD-CONTAINER), "" for a Task. Set
	// by the parser, not YAML; part of the hash (see [Spec.canonical]),
	// so that the runtime can share the pod's namespaces by it.
	Pod string `json:"-"`
	// PodShared is what the containers of that pod share, set by the
	// parser with Pod. The runtime gives the containers of one PodShared
	// (and one Pod and Network) one IPC namespace and, on the bridge, one
	// network and UTS namespace: one address, the ports of every
	// container published, the pod's host name. Part of the hash: a
	// change of it replaces every container of the pod.
	PodShared *PodShared `json:"-"`
}

// PodShared is what the containers of a pod share.
type PodShared struct {
	Hostname string `json:"hostname,omitempty"` // the host name of the pod's UTS namespace (bridge)
	Ports    []Port `json:"ports,omitempty"`    // every container's ports, published for the pod's namespace (bridge)
}

// Dependency is a task this one waits for before it starts.
type Dependency struct {
	Task      string          `json:"task"`
	Condition DependCondition `json:"condition,omitempty"` // default running
}

// DependCondition is what a dependency must be doing.
type DependCondition string

// Dependency conditions, as compose's depends_on has them.
const (
	DependRunning   DependCondition = "running"   // its process runs
	DependHealthy   DependCondition = "healthy"   // it runs and its health check passed (running, without one)
	DependCompleted DependCondition = "completed" // it exited 0 and is not restarted
)

// PullPolicy says when an image is pulled.
type PullPolicy string

// Pull policies, as Kubernetes has them.
const (
	PullAlways       PullPolicy = "Always"       // pull each time a container is created; record the digest
	PullIfNotPresent PullPolicy = "IfNotPresent" // pull (or import) only when containerd lacks the image
	PullNever        PullPolicy = "Never"        // never pull; a missing image is an error on the status
)

// NetworkMode is the task's network.
type NetworkMode string

// Network modes.
const (
	NetworkHost NetworkMode = "host" // the host's network namespace, /etc/hosts, /etc/resolv.conf
	NetworkNone NetworkMode = "none" // a new network namespace with loopback only
	// NetworkBridge is a network namespace of its own on the node's bridge
	// (CNI), reaching the other bridge tasks by name, its Ports published.
	NetworkBridge NetworkMode = "bridge"
)

// Port is a port of a bridge task, published on the host when HostPort is
// set (Kubernetes' names).
type Port struct {
	ContainerPort int      `json:"containerPort"`
	HostPort      int      `json:"hostPort,omitempty"` // 0: not published (reachable at the task's address)
	Protocol      Protocol `json:"protocol,omitempty"` // default TCP
	HostIP        string   `json:"hostIP,omitempty"`   // default every address of the host
}

// Protocol is a port's protocol.
type Protocol string

// Protocols.
const (
	ProtocolTCP Protocol = "TCP"
	ProtocolUDP Protocol = "UDP"
)

// RestartPolicy says what happens when the task's process exits.
type RestartPolicy string

// Restart policies.
const (
	RestartAlways    RestartPolicy = "Always"    // restart after any exit, with crash backoff
	RestartOnFailure RestartPolicy = "OnFailure" // restart after a non-zero exit; exit 0 is Completed
	RestartNever     RestartPolicy = "Never"     // stay exited; the status shows the exit code
)

// UpdateStrategy says how a changed spec replaces the running container.
type UpdateStrategy string

// Update strategies.
const (
	UpdateStopFirst  UpdateStrategy = "stop-first"  // stop and remove the old, then create the new (safe with host networking)
	UpdateStartFirst UpdateStrategy = "start-first" // create and start the new, then stop the old
)

// Resources limits what the task may use. Nil fields are unlimited.
type Resources struct {
	CPU    *resource.Quantity `json:"cpu,omitempty"`    // cores: "500m", "0.5", "2"
	Memory *resource.Quantity `json:"memory,omitempty"` // bytes: "256Mi", "1G"
	Pids   *int64             `json:"pids,omitempty"`   // maximum number of processes
}

// MountType is the kind of a mount.
type MountType string

// Mount types.
const (
	MountBind   MountType = "bind"   // a host path (absolute, clean; allowed by node policy)
	MountVolume MountType = "volume" // a named directory under the state dir that outlives containers
	MountTmpfs  MountType = "tmpfs"  // memory-backed, optionally sized
	// MountPodDir is a Kubernetes emptyDir on disk: a directory of the
	// pod's (Source names it), shared by its containers and removed with
	// the pod. Only a Pod's containers have it; a Task's mount of this
	// type is refused.
	MountPodDir MountType = "emptyDir"
	// MountPodSecret is a Kubernetes secret volume: the regular files of
	// the directory Source in one of the node's allowed secret sources,
	// staged as a task's secrets are (owned by its user, mode 0400) and
	// mounted read-only. A Pod's only, as MountPodDir.
	MountPodSecret MountType = "secret"
)

// Mount is one filesystem mount of the task.
type Mount struct {
	Type     MountType          `json:"type"`
	Source   string             `json:"source,omitempty"` // host path (bind) or volume name (volume); none for tmpfs
	Target   string             `json:"target"`           // absolute path in the container
	ReadOnly bool               `json:"readOnly,omitempty"`
	Size     *resource.Quantity `json:"size,omitempty"` // tmpfs only
}

// Secret is a file mounted read-only at /run/secrets/NAME. File is either
// an absolute host path (under the node policy's allowed secret sources) or
// a plain file name (no '/'), which names a file of the manifests directory
// itself: with the git source, a file of the generated tree, such as an
// age-encrypted "db.age" committed beside the manifests. A file whose name
// ends in ".age" is decrypted on the node when the secret is staged. The
// spec hash takes File as written, never the directory it is resolved in,
// nor the file's content.
type Secret struct {
	Name string `json:"name"` // file name under /run/secrets: letters, digits, ".", "-", "_"
	File string `json:"file"` // absolute host path, or a file name in the manifests directory
}

// SecurityContext asks for privileges beyond the secure defaults. The node
// policy (daemon flags) decides whether they are granted.
type SecurityContext struct {
	ReadOnlyRootFilesystem bool          `json:"readOnlyRootFilesystem,omitempty"`
	Privileged             bool          `json:"privileged,omitempty"`
	Capabilities           *Capabilities `json:"capabilities,omitempty"`
}

// Capabilities adds to or drops from the default capability set, by name
// ("NET_BIND_SERVICE" or "CAP_NET_BIND_SERVICE"; "ALL" in drop).
type Capabilities struct {
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
}

// RestartBackoff overrides the crash backoff of one task. Nil fields take the
// defaults (see [Spec.Backoff]).
type RestartBackoff struct {
	Initial    *Duration `json:"initial,omitempty"`
	Max        *Duration `json:"max,omitempty"`
	ResetAfter *Duration `json:"resetAfter,omitempty"`
}

// Backoff defaults: 1 s doubling to 5 min, reset after 10 min of clean running.
const (
	DefaultBackoffInitial    = time.Second
	DefaultBackoffMax        = 5 * time.Minute
	DefaultBackoffResetAfter = 10 * time.Minute
)

// HealthCheck probes the task. Exactly one of Exec, HTTP, TCP is set, or
// Disabled alone: no probe at all, not even the image's HEALTHCHECK.
type HealthCheck struct {
	Disabled    bool       `json:"disabled,omitempty"`
	Exec        *ExecProbe `json:"exec,omitempty"`
	HTTP        *HTTPProbe `json:"http,omitempty"`
	TCP         *TCPProbe  `json:"tcp,omitempty"`
	Interval    *Duration  `json:"interval,omitempty"`    // default 10s
	Timeout     *Duration  `json:"timeout,omitempty"`     // default 2s
	Retries     int        `json:"retries,omitempty"`     // default 3
	StartPeriod *Duration  `json:"startPeriod,omitempty"` // default 0
	// OnUnhealthy is what an unhealthy verdict does: restart (stop the
	// container; its restart policy decides), or none: the verdict only
	// gates rollouts and dependsOn: healthy and shows on the status, as a
	// Kubernetes readinessProbe (and Docker's HEALTHCHECK) does.
	OnUnhealthy OnUnhealthy `json:"onUnhealthy,omitempty"` // default restart
}

// OnUnhealthy is what an unhealthy verdict does to the container.
type OnUnhealthy string

// What an unhealthy verdict does.
const (
	OnUnhealthyRestart OnUnhealthy = "restart" // stop the container; the restart policy decides
	OnUnhealthyNone    OnUnhealthy = "none"    // nothing: it gates rollouts and dependsOn, and shows
)

// DefaultOnUnhealthy is what a health check does without onUnhealthy.
const DefaultOnUnhealthy = OnUnhealthyRestart

// ExecProbe runs a command in the container; exit 0 is healthy.
type ExecProbe struct {
	Command []string `json:"command"`
}

// HTTPProbe GETs a path on a port of the task; 2xx and 3xx are healthy.
type HTTPProbe struct {
	Port int    `json:"port"`
	Path string `json:"path,omitempty"` // default "/"
}

// TCPProbe connects to a port of the task; a connection is healthy.
type TCPProbe struct {
	Port int `json:"port"`
}

// EnvVar is one environment variable of the task's process.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Duration is a time.Duration written as a Go duration string ("30s",
// "1m30s") in YAML.
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.Duration.String())
}

// UnmarshalJSON reads a Go duration string such as "30s" or "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("must be a duration such as \"30s\" or \"1m30s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("must be a duration such as \"30s\" or \"1m30s\", got %q", s)
	}
	d.Duration = v
	return nil
}

// StopGrace returns the effective stop grace period: the manifest's, or
// [DefaultStopGracePeriod].
func (s Spec) StopGrace() time.Duration {
	if s.StopGracePeriod == nil {
		return DefaultStopGracePeriod
	}
	return s.StopGracePeriod.Duration
}

// MinReadyTime returns how long a new container must run without a
// restart to prove itself: the manifest's minReady, or [DefaultMinReady].
func (s Spec) MinReadyTime() time.Duration {
	if s.MinReady == nil {
		return DefaultMinReady
	}
	return s.MinReady.Duration
}

// Deadline returns how long a new container has to prove itself: the
// manifest's progressDeadline, or [DefaultProgressDeadline].
func (s Spec) Deadline() time.Duration {
	if s.ProgressDeadline == nil {
		return DefaultProgressDeadline
	}
	return s.ProgressDeadline.Duration
}

// StopSig returns the effective stop signal name, normalized to "SIGxxx":
// the manifest's, or [DefaultStopSignal].
func (s Spec) StopSig() string {
	if s.StopSignal == "" {
		return DefaultStopSignal
	}
	if n, ok := normalizeSignal(s.StopSignal); ok {
		return n
	}
	return s.StopSignal
}

// Backoff returns the task's effective crash backoff.
func (s Spec) Backoff() (initial, max, resetAfter time.Duration) {
	initial, max, resetAfter = DefaultBackoffInitial, DefaultBackoffMax, DefaultBackoffResetAfter
	if b := s.RestartBackoff; b != nil {
		if b.Initial != nil {
			initial = b.Initial.Duration
		}
		if b.Max != nil {
			max = b.Max.Duration
		}
		if b.ResetAfter != nil {
			resetAfter = b.ResetAfter.Duration
		}
	}
	return initial, max, resetAfter
}

// Target is the path of the secret in the container: /run/secrets/NAME.
func (s Secret) Target() string { return SecretsDir + "/" + s.Name }

// InManifestsDir reports whether File names a file of the manifests
// directory (a plain file name) rather than an absolute host path.
// Validation allows only names that [SecretFileName] accepts.
func (s Secret) InManifestsDir() bool { return s.File != "" && !strings.HasPrefix(s.File, "/") }

// Encrypted reports whether File is age-encrypted (its name ends in
// ".age"): it is decrypted when the secret is staged on the node.
func (s Secret) Encrypted() bool { return strings.HasSuffix(s.File, AgeSuffix) }

// AgeSuffix ends the name of an age-encrypted secret file.
const AgeSuffix = ".age"

// SecretFileName reports whether name may be the File of a secret in the
// manifests directory: a file name of letters, digits, '.', '-' and '_',
// not starting with '.' (hidden files are neither read by the loader nor
// copied by the git source) and not a manifest's name. Only "*.age" files
// come along into the generated tree of the git source; another name is
// for a local --manifests directory.
func SecretFileName(name string) bool {
	return len(name) <= 253 && secretNameRE.MatchString(name) && !strings.HasPrefix(name, ".") && Ignored(name)
}

// SecretsDir is where secrets are mounted in the container, one read-only
// file per secret, named after it.
const SecretsDir = "/run/secrets"

// Defaults of the fields Parse fills in (see [Spec.withDefaults]).
const (
	DefaultNetwork          = NetworkHost
	DefaultRestartPolicy    = RestartAlways
	DefaultUpdateStrategy   = UpdateStopFirst
	DefaultMinReady         = 10 * time.Second
	DefaultProgressDeadline = 5 * time.Minute
	DefaultHealthInterval   = 10 * time.Second
	DefaultHealthTimeout    = 2 * time.Second
	DefaultHealthRetries    = 3
	DefaultHTTPPath         = "/"
)

// DefaultPullPolicy is the pull policy of an image whose manifest does not
// give one, as Kubernetes decides it: Always when the reference has no tag
// or the tag "latest" and no digest, IfNotPresent otherwise. An image that
// does not parse gets IfNotPresent (it is an error anyway).
func DefaultPullPolicy(image string) PullPolicy { return imageFacts(image).policy }

// imageFact is what the hash and the defaults need to know of an image
// reference. Parsing one costs microseconds (regular expressions) and a
// hash is computed for every task at every pass, so facts are cached.
type imageFact struct {
	normalized string // docker.io/library/nginx:latest for nginx; the input if it does not parse
	policy     PullPolicy
}

var (
	imageCache sync.Map // string -> imageFact
	imageCount atomic.Int64
)

// maxImageCache bounds the cache: manifests name few distinct images, but a
// flood of generated ones must not grow memory without end.
const maxImageCache = 4096

func imageFacts(image string) imageFact {
	if f, ok := imageCache.Load(image); ok {
		return f.(imageFact)
	}
	f := imageFact{normalized: image, policy: PullIfNotPresent}
	if named, err := reference.ParseNormalizedNamed(image); err == nil {
		f.normalized = reference.TagNameOnly(named).String()
		_, digested := named.(reference.Digested)
		t, tagged := named.(reference.Tagged)
		if !digested && (!tagged || t.Tag() == "latest") {
			f.policy = PullAlways
		}
	}
	if imageCount.Load() < maxImageCache {
		if _, loaded := imageCache.LoadOrStore(image, f); !loaded {
			imageCount.Add(1)
		}
	}
	return f
}

// withDefaults returns a deep copy of s with every default filled in and
// every value in its normalized form: signal and capability names spelled
// "SIGTERM" and "CAP_NET_ADMIN", capability lists sorted without
// duplicates. Parse returns specs in this form; consumers read effective
// values directly.
func (s Spec) withDefaults() Spec {
	s = s.clone()
	if s.ImagePullPolicy == "" {
		s.ImagePullPolicy = DefaultPullPolicy(s.Image)
	}
	if s.Network == "" {
		s.Network = DefaultNetwork
	}
	for i := range s.Ports {
		if s.Ports[i].Protocol == "" {
			s.Ports[i].Protocol = ProtocolTCP
		}
	}
	if s.RestartPolicy == "" {
		s.RestartPolicy = DefaultRestartPolicy
	}
	for i := range s.DependsOn {
		if s.DependsOn[i].Condition == "" {
			s.DependsOn[i].Condition = DependRunning
		}
	}
	if s.UpdateStrategy == "" {
		s.UpdateStrategy = DefaultUpdateStrategy
	}
	s.StopSignal = s.StopSig()
	s.StopGracePeriod = &Duration{s.StopGrace()}
	s.MinReady = &Duration{s.MinReadyTime()}
	s.ProgressDeadline = &Duration{s.Deadline()}
	if c := s.SecurityContext; c != nil && c.Capabilities != nil {
		c.Capabilities.Add = normalizeCaps(c.Capabilities.Add)
		c.Capabilities.Drop = normalizeCaps(c.Capabilities.Drop)
	}
	if h := s.HealthCheck; h != nil && !h.Disabled {
		h.Interval = durationOr(h.Interval, DefaultHealthInterval)
		h.Timeout = durationOr(h.Timeout, DefaultHealthTimeout)
		h.StartPeriod = durationOr(h.StartPeriod, 0)
		if h.Retries == 0 {
			h.Retries = DefaultHealthRetries
		}
		if h.HTTP != nil && h.HTTP.Path == "" {
			h.HTTP.Path = DefaultHTTPPath
		}
		if h.OnUnhealthy == "" {
			h.OnUnhealthy = DefaultOnUnhealthy
		}
	}
	return s
}

func durationOr(d *Duration, def time.Duration) *Duration {
	if d == nil {
		return &Duration{def}
	}
	return d
}

// clone returns a deep copy of t, so a State never shares slices, maps or
// pointers with the Loader's memory.
func (t Task) clone() Task {
	t.Metadata.Labels = maps.Clone(t.Metadata.Labels)
	t.Spec = t.Spec.clone()
	return t
}

// clone returns a deep copy of s.
func (s Spec) clone() Spec {
	s.Command = slices.Clone(s.Command)
	s.Args = slices.Clone(s.Args)
	s.Env = slices.Clone(s.Env)
	if r := s.Resources; r != nil {
		s.Resources = &Resources{CPU: cloneQuantity(r.CPU), Memory: cloneQuantity(r.Memory), Pids: clonePtr(r.Pids)}
	}
	s.Mounts = slices.Clone(s.Mounts)
	for i := range s.Mounts {
		s.Mounts[i].Size = cloneQuantity(s.Mounts[i].Size)
	}
	s.Secrets = slices.Clone(s.Secrets)
	s.Ports = slices.Clone(s.Ports)
	if ps := s.PodShared; ps != nil {
		s.PodShared = &PodShared{Hostname: ps.Hostname, Ports: slices.Clone(ps.Ports)}
	}
	if c := s.SecurityContext; c != nil {
		cc := *c
		if c.Capabilities != nil {
			cc.Capabilities = &Capabilities{Add: slices.Clone(c.Capabilities.Add), Drop: slices.Clone(c.Capabilities.Drop)}
		}
		s.SecurityContext = &cc
	}
	if b := s.RestartBackoff; b != nil {
		s.RestartBackoff = &RestartBackoff{Initial: clonePtr(b.Initial), Max: clonePtr(b.Max), ResetAfter: clonePtr(b.ResetAfter)}
	}
	s.StopGracePeriod = clonePtr(s.StopGracePeriod)
	s.MinReady = clonePtr(s.MinReady)
	s.ProgressDeadline = clonePtr(s.ProgressDeadline)
	if s.DependsOn != nil {
		s.DependsOn = slices.Clone(s.DependsOn)
	}
	if h := s.HealthCheck; h != nil {
		hc := *h
		if h.Exec != nil {
			hc.Exec = &ExecProbe{Command: slices.Clone(h.Exec.Command)}
		}
		hc.HTTP = clonePtr(h.HTTP)
		hc.TCP = clonePtr(h.TCP)
		hc.Interval = clonePtr(h.Interval)
		hc.Timeout = clonePtr(h.Timeout)
		hc.StartPeriod = clonePtr(h.StartPeriod)
		s.HealthCheck = &hc
	}
	return s
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

func cloneQuantity(q *resource.Quantity) *resource.Quantity {
	if q == nil {
		return nil
	}
	c := q.DeepCopy()
	return &c
}
