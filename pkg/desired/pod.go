package desired

// Kubernetes Pods. A document with apiVersion v1 and kind Pod is parsed by
// the same strict machinery as a Task (the node tree walked along the types
// below, then decoded), into own types for the subset this node supports:
// k8s.io/api is not linked into the daemon. The pod is then mapped onto one
// Task per container, named POD-CONTAINER, so that the controller, the
// runtime, health checks, rollouts and last known good treat it as any
// task. Every field of the types below acts, or is refused with a message
// that says why; a Kubernetes field that has no type here is refused as
// "valid in Kubernetes, not supported on this node", apart from a typo
// (see [KubernetesPodField]). docs/pods.md is the user's reference.

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// The header of a Kubernetes Pod document.
const (
	PodAPIVersion = "v1"
	KindPod       = "Pod"
)

// LabelPod is the label each task of a pod carries besides the pod's own
// labels: the pod's metadata.name.
const LabelPod = "io.warren.pod"

// Pod is a Kubernetes v1 Pod, the subset this node runs.
type Pod struct {
	APIVersion string      `json:"apiVersion"`
	Kind       string      `json:"kind"`
	Metadata   PodMetadata `json:"metadata"`
	Spec       PodSpec     `json:"spec"`
}

// PodMetadata names a pod.
type PodMetadata struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// PodSpec is a pod's spec.
type PodSpec struct {
	InitContainers                []PodContainer      `json:"initContainers,omitempty"`
	Containers                    []PodContainer      `json:"containers"`
	Volumes                       []PodVolume         `json:"volumes,omitempty"`
	RestartPolicy                 RestartPolicy       `json:"restartPolicy,omitempty"`
	TerminationGracePeriodSeconds *int64              `json:"terminationGracePeriodSeconds,omitempty"`
	HostNetwork                   bool                `json:"hostNetwork,omitempty"`
	Hostname                      string              `json:"hostname,omitempty"`
	SecurityContext               *PodSecurityContext `json:"securityContext,omitempty"`
	OS                            *PodOS              `json:"os,omitempty"`
}

// PodSecurityContext holds the ids every container of the pod runs as,
// unless its own securityContext gives them.
type PodSecurityContext struct {
	RunAsUser  *int64 `json:"runAsUser,omitempty"`
	RunAsGroup *int64 `json:"runAsGroup,omitempty"`
}

// PodOS is the pod's operating system: linux is the only one here.
type PodOS struct {
	Name string `json:"name"`
}

// PodContainer is a container or an init container.
type PodContainer struct {
	Name            string                       `json:"name"`
	Image           string                       `json:"image"`
	ImagePullPolicy PullPolicy                   `json:"imagePullPolicy,omitempty"`
	Command         []string                     `json:"command,omitempty"`
	Args            []string                     `json:"args,omitempty"`
	WorkingDir      string                       `json:"workingDir,omitempty"`
	Env             []PodEnvVar                  `json:"env,omitempty"`
	Ports           []PodPort                    `json:"ports,omitempty"`
	Resources       *PodResources                `json:"resources,omitempty"`
	VolumeMounts    []PodVolumeMount             `json:"volumeMounts,omitempty"`
	LivenessProbe   *PodProbe                    `json:"livenessProbe,omitempty"`
	StartupProbe    *PodProbe                    `json:"startupProbe,omitempty"`
	ReadinessProbe  *PodProbe                    `json:"readinessProbe,omitempty"`
	SecurityContext *PodContainerSecurityContext `json:"securityContext,omitempty"`
	Lifecycle       *PodLifecycle                `json:"lifecycle,omitempty"`
}

// PodEnvVar is an environment variable with a plain value.
type PodEnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// PodPort is a port of a container.
type PodPort struct {
	Name          string   `json:"name,omitempty"`
	ContainerPort int      `json:"containerPort"`
	HostPort      int      `json:"hostPort,omitempty"`
	Protocol      Protocol `json:"protocol,omitempty"`
	HostIP        string   `json:"hostIP,omitempty"`
}

// PodResources are a container's limits (cpu and memory are applied) and
// requests (ignored, with a warning: there is no scheduler).
type PodResources struct {
	Limits   map[string]resource.Quantity `json:"limits,omitempty"`
	Requests map[string]resource.Quantity `json:"requests,omitempty"`
}

// PodVolumeMount mounts a volume of the pod into a container.
type PodVolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// PodVolume is a volume of the pod: a host path, an emptyDir or a secret.
type PodVolume struct {
	Name     string           `json:"name"`
	HostPath *PodHostPath     `json:"hostPath,omitempty"`
	EmptyDir *PodEmptyDir     `json:"emptyDir,omitempty"`
	Secret   *PodSecretVolume `json:"secret,omitempty"`
}

// PodSecretVolume is a secret volume: with no API server on the node, the
// Secret secretName is a directory of that name in one of the node's
// allowed secret sources, each regular file of it a key.
type PodSecretVolume struct {
	SecretName string `json:"secretName"`
}

// PodHostPath is a path of the node.
type PodHostPath struct {
	Path string `json:"path"`
	Type string `json:"type,omitempty"`
}

// PodEmptyDir is an emptyDir; medium Memory is a tmpfs.
type PodEmptyDir struct {
	Medium    string             `json:"medium,omitempty"`
	SizeLimit *resource.Quantity `json:"sizeLimit,omitempty"`
}

// PodProbe is a liveness, startup or readiness probe.
type PodProbe struct {
	Exec                *ExecProbe    `json:"exec,omitempty"`
	HTTPGet             *PodHTTPGet   `json:"httpGet,omitempty"`
	TCPSocket           *PodTCPSocket `json:"tcpSocket,omitempty"`
	InitialDelaySeconds int           `json:"initialDelaySeconds,omitempty"`
	TimeoutSeconds      int           `json:"timeoutSeconds,omitempty"`
	PeriodSeconds       int           `json:"periodSeconds,omitempty"`
	SuccessThreshold    int           `json:"successThreshold,omitempty"`
	FailureThreshold    int           `json:"failureThreshold,omitempty"`
}

// PodHTTPGet GETs a path on a port of the container.
type PodHTTPGet struct {
	Path   string     `json:"path,omitempty"`
	Port   PodPortRef `json:"port"`
	Host   string     `json:"host,omitempty"`
	Scheme string     `json:"scheme,omitempty"`
}

// PodTCPSocket connects to a port of the container.
type PodTCPSocket struct {
	Port PodPortRef `json:"port"`
	Host string     `json:"host,omitempty"`
}

// PodPortRef is a probe's port: a number, or the name of a port of the
// container (Kubernetes' IntOrString).
type PodPortRef struct {
	Number int
	Name   string
}

// MarshalJSON writes the name, or else the number.
func (p PodPortRef) MarshalJSON() ([]byte, error) {
	if p.Name != "" {
		return json.Marshal(p.Name)
	}
	return json.Marshal(p.Number)
}

// UnmarshalJSON reads a number or a name.
func (p *PodPortRef) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*p = PodPortRef{Number: n}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil && s != "" {
		*p = PodPortRef{Name: s}
		return nil
	}
	return fmt.Errorf("must be a port number or the name of a port of the container, got %s", b)
}

// PodContainerSecurityContext is a container's security context.
type PodContainerSecurityContext struct {
	RunAsUser                *int64        `json:"runAsUser,omitempty"`
	RunAsGroup               *int64        `json:"runAsGroup,omitempty"`
	ReadOnlyRootFilesystem   *bool         `json:"readOnlyRootFilesystem,omitempty"`
	Privileged               *bool         `json:"privileged,omitempty"`
	AllowPrivilegeEscalation *bool         `json:"allowPrivilegeEscalation,omitempty"`
	Capabilities             *Capabilities `json:"capabilities,omitempty"`
}

// PodLifecycle holds a container's stop signal.
type PodLifecycle struct {
	StopSignal string `json:"stopSignal,omitempty"`
}

var podType = reflect.TypeFor[Pod]()

// The words of a refusal of what Kubernetes has and this node does not.
const (
	notHere = "valid in Kubernetes, not supported on this node"
	notYet  = "valid in Kubernetes, not supported on this node yet"
)

// podNotYet says why a Kubernetes field that the pod types leave out is
// refused, where more than notHere helps; by path with indices as "[]".
var podNotYet = map[string]string{
	"spec.volumes[].configMap": "a configMap volume needs a ConfigMap object, and a node without an API server has none " +
		"(a kubelet static pod refuses it too); use a hostPath volume",
	"spec.volumes[].persistentVolumeClaim": "a claim needs an API server (a kubelet static pod refuses it too); use a hostPath volume",
	"spec.volumes[].projected":             "projected volumes need an API server (a kubelet static pod refuses them too)",
	"spec.initContainers[].restartPolicy":  "an init container that keeps running (a sidecar) is not built yet",
}

// podUnknownFields rewords the schema check's unknown-field errors of a pod:
// a field that Kubernetes has is "valid in Kubernetes, not supported on
// this node", which a typo is not; status is no manifest's.
func (ds *docState) podUnknownFields() {
	for _, e := range ds.errs {
		if e.Field == "" || !strings.HasPrefix(e.Msg, "unknown field ") || podTypeHas(e.Field) {
			continue
		}
		norm := podIndexRE.ReplaceAllString(e.Field, "[]")
		switch {
		case e.Field == "status":
			e.Msg = "a manifest does not carry status: remove it (reconciler status shows the pod's containers)"
		case podNotYet[norm] != "":
			e.Msg = notYet + ": " + podNotYet[norm]
		case KubernetesPodField(norm):
			e.Msg = notHere
		}
	}
}

var podIndexRE = regexp.MustCompile(`\[[0-9]+\]`)

// podTypeHas reports whether path is a field of the pod types (any key of
// a map is).
func podTypeHas(path string) bool {
	t := podType
	for _, seg := range strings.Split(podIndexRE.ReplaceAllString(path, ""), ".") {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() == reflect.Map {
			return true
		}
		if t.Kind() != reflect.Struct {
			return false
		}
		ft, ok := jsonFields(t)[seg]
		if !ok {
			return false
		}
		t = ft
	}
	return true
}

// validatePodHeader checks the header of a document that is a Pod by its
// apiVersion or its kind.
func validatePodHeader(apiVersion, kind string) []fieldError {
	var errs []fieldError
	switch apiVersion {
	case PodAPIVersion:
	case "":
		errs = append(errs, fieldError{"apiVersion", fmt.Sprintf("required, must be %q for kind Pod", PodAPIVersion)})
	default:
		errs = append(errs, fieldError{"apiVersion", fmt.Sprintf("must be %q for kind Pod (a Task's is %q), got %q", PodAPIVersion, APIVersion, apiVersion)})
	}
	switch kind {
	case KindPod:
	case "":
		errs = append(errs, fieldError{"kind", fmt.Sprintf("required, must be %q for apiVersion %q", KindPod, PodAPIVersion)})
	default:
		errs = append(errs, fieldError{"kind", fmt.Sprintf("must be %q for apiVersion %q, the only Kubernetes kind this node runs (a Task's apiVersion is %q), got %q",
			KindPod, PodAPIVersion, APIVersion, kind)})
	}
	return errs
}

// podMapper checks a decoded pod and maps it onto tasks, reporting every
// problem with the pod's own field paths.
type podMapper struct {
	ds       *docState
	p        *Pod
	reported []string            // pod fields with a problem: a task's validation says no more of them
	said     map[string]bool     // field and message, reported once
	volumes  map[string]int      // valid volume names -> index in spec.volumes
	uses     map[string][]string // volume name -> the volumeMounts that mount it
	badPod   bool                // metadata.name is not usable: container names are not joined to it
}

// errorf reports a problem of field, which covers what is under it: a
// task's validation says no more of them.
func (m *podMapper) errorf(field, format string, args ...any) {
	if m.say(field, fmt.Sprintf(format, args...)) {
		m.reported = append(m.reported, field)
	}
}

// say reports a problem of field once, covering nothing under it (a
// problem of a list, not of its items).
func (m *podMapper) say(field, msg string) bool {
	key := field + "\x00" + msg
	if m.said[key] || m.ds.reported(field) {
		return false
	}
	m.said[key] = true
	m.ds.errorField(field, msg)
	return true
}

// covered reports whether a problem at or under field was reported.
func (m *podMapper) covered(field string) bool {
	if m.ds.reported(field) {
		return true
	}
	for _, r := range m.reported {
		if field == r || strings.HasPrefix(field, r+".") || strings.HasPrefix(field, r+"[") {
			return true
		}
	}
	return false
}

func (m *podMapper) warnf(field, format string, args ...any) {
	m.ds.warnField(field, fmt.Sprintf(format, args...))
}

// podTasks checks pod p and maps it onto its tasks: the init containers
// (POD-NAME, OnFailure or Never, each waiting for the one before it to
// complete), then the containers (waiting for the last init container to
// complete). The tasks are returned even when the pod has problems, so
// that names can still be checked for duplicates.
func (ds *docState) podTasks(p *Pod) []parsedTask {
	m := &podMapper{ds: ds, p: p, said: map[string]bool{}, volumes: map[string]int{}, uses: map[string][]string{}}
	m.metadata()
	m.podSpec()
	m.checkVolumes()
	names := map[string]string{} // container name -> its field
	for i := range p.Spec.InitContainers {
		m.checkName(&p.Spec.InitContainers[i], fmt.Sprintf("spec.initContainers[%d]", i), names)
	}
	for i := range p.Spec.Containers {
		m.checkName(&p.Spec.Containers[i], fmt.Sprintf("spec.containers[%d]", i), names)
	}
	var out []parsedTask
	keep := func(pt parsedTask) {
		// A container whose name is refused has no task name to
		// check for duplicates.
		if !m.badPod && !m.covered(pt.nameField) {
			out = append(out, pt)
		}
	}
	after := ""
	for i := range p.Spec.InitContainers {
		pt := m.container(&p.Spec.InitContainers[i], fmt.Sprintf("spec.initContainers[%d]", i), true, after)
		keep(pt)
		after = pt.task.Metadata.Name
	}
	for i := range p.Spec.Containers {
		keep(m.container(&p.Spec.Containers[i], fmt.Sprintf("spec.containers[%d]", i), false, after))
	}
	m.checkVolumeUses()
	shared := m.shared(out)
	for i := range out {
		out[i].task.Spec.PodShared = shared
	}
	return out
}

// shared is what the pod's containers share: on the bridge, the host name
// (spec.hostname, else the pod's name) and every container's ports, which
// the pod's one network namespace publishes; with hostNetwork, only the
// IPC namespace, which needs nothing here.
func (m *podMapper) shared(pts []parsedTask) *PodShared {
	ps := &PodShared{}
	if m.p.Spec.HostNetwork {
		return ps
	}
	ps.Hostname = m.p.Spec.Hostname
	if ps.Hostname == "" {
		ps.Hostname = m.p.Metadata.Name
	}
	for _, pt := range pts {
		ps.Ports = append(ps.Ports, pt.task.Spec.Ports...)
	}
	return ps
}

// metadata checks the pod's name and labels (Kubernetes' label syntax).
func (m *podMapper) metadata() {
	md := m.p.Metadata
	switch {
	case md.Name == "":
		m.errorf("metadata.name", "required")
		m.badPod = true
	case len(md.Name) > 63 || !dns1123LabelRE.MatchString(md.Name):
		m.errorf("metadata.name", dns1123Msg+" on this node, where the containers run as tasks named POD-CONTAINER, got %q", md.Name)
		m.badPod = true
	}
	for _, k := range slices.Sorted(maps.Keys(md.Labels)) {
		f := joinPath("metadata.labels", k)
		switch {
		case k == LabelPod:
			m.errorf(f, "is set by the node to the pod's name on each of its tasks; remove it")
		default:
			if why := podLabelProblem(k, md.Labels[k]); why != "" {
				m.errorf(f, "%s", why)
			}
		}
	}
}

var (
	podLabelNameRE   = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	podLabelPrefixRE = dns1123SubdomainRE
	// dns1123SubdomainRE is a DNS-1123 subdomain: a label key's prefix, a
	// secret's name.
	dns1123SubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// podLabelProblem says why k: v is not a Kubernetes label, or "".
func podLabelProblem(k, v string) string {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		prefix, name = "", k
	}
	switch {
	case hasPrefix && (len(prefix) > 253 || !podLabelPrefixRE.MatchString(prefix)):
		return fmt.Sprintf("the key's prefix %q must be a DNS subdomain (a Kubernetes label key), got %q", prefix, k)
	case len(name) > 63 || !podLabelNameRE.MatchString(name):
		return fmt.Sprintf("a Kubernetes label key is at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, after an optional DNS subdomain and '/', got %q", k)
	case v != "" && (len(v) > 63 || !podLabelNameRE.MatchString(v)):
		return fmt.Sprintf("a Kubernetes label value is empty or at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, got %q", v)
	}
	return ""
}

// maxGraceSeconds keeps a grace period within a time.Duration.
const maxGraceSeconds = math.MaxInt64 / int64(time.Second)

// podSpec checks the pod-wide fields.
func (m *podMapper) podSpec() {
	s := m.p.Spec
	if len(s.Containers) == 0 {
		m.say("spec.containers", "required: at least one container")
	}
	if s.Hostname != "" {
		switch {
		case len(s.Hostname) > 63 || !dns1123LabelRE.MatchString(s.Hostname):
			m.errorf("spec.hostname", dns1123Msg+", got %q", s.Hostname)
		case s.HostNetwork:
			m.errorf("spec.hostname", "has no effect with hostNetwork: true (the containers have the host's name): remove it")
		}
	}
	var v validator
	enum(&v, "spec.restartPolicy", s.RestartPolicy)
	for _, fe := range v.errs {
		m.errorf(fe.field, "%s", fe.msg)
	}
	if g := s.TerminationGracePeriodSeconds; g != nil {
		switch {
		case *g < 0:
			m.errorf("spec.terminationGracePeriodSeconds", "must not be negative, got %d", *g)
		case *g > maxGraceSeconds:
			m.errorf("spec.terminationGracePeriodSeconds", "must be at most %d, got %d", maxGraceSeconds, *g)
		}
	}
	if sc := s.SecurityContext; sc != nil {
		m.checkID("spec.securityContext.runAsUser", sc.RunAsUser)
		m.checkID("spec.securityContext.runAsGroup", sc.RunAsGroup)
	}
	if o := s.OS; o != nil {
		switch o.Name {
		case "linux":
		case "windows":
			m.errorf("spec.os.name", "%s: windows (this node runs Linux containers)", notHere)
		case "":
			m.errorf("spec.os.name", "required: linux")
		default:
			m.errorf("spec.os.name", "must be linux (or windows, which this node does not run), got %q", o.Name)
		}
	}
}

// checkID checks a runAsUser or runAsGroup as Kubernetes does.
func (m *podMapper) checkID(field string, id *int64) {
	if id != nil && (*id < 0 || *id > math.MaxInt32) {
		m.errorf(field, "must be from 0 to %d, got %d", math.MaxInt32, *id)
	}
}

// checkVolumes checks spec.volumes and records the valid names.
func (m *podMapper) checkVolumes() {
	seen := map[string]string{}
	for k, vol := range m.p.Spec.Volumes {
		vp := fmt.Sprintf("spec.volumes[%d]", k)
		ok := true
		switch first, dup := seen[vol.Name]; {
		case vol.Name == "":
			m.errorf(vp+".name", "required")
			ok = false
		case len(vol.Name) > 63 || !dns1123LabelRE.MatchString(vol.Name):
			m.errorf(vp+".name", dns1123Msg+", got %q", vol.Name)
			ok = false
		case dup:
			m.errorf(vp+".name", "duplicate volume name %q, first at %s", vol.Name, first)
			ok = false
		default:
			seen[vol.Name] = vp + ".name"
		}
		if m.hasOtherKeys(vp, "name", "hostPath", "emptyDir", "secret") {
			continue // a source of Kubernetes' that is refused already
		}
		var sources []string
		for _, src := range []struct {
			name string
			set  bool
		}{{"hostPath", vol.HostPath != nil}, {"emptyDir", vol.EmptyDir != nil}, {"secret", vol.Secret != nil}} {
			if src.set {
				sources = append(sources, src.name)
			}
		}
		switch {
		case len(sources) > 1:
			m.errorf(vp, "may not specify more than one volume source, got %s", strings.Join(sources, " and "))
			ok = false
		case vol.Secret != nil:
			switch sn := vol.Secret.SecretName; {
			case sn == "":
				m.errorf(vp+".secret.secretName", "required: the name of the secret (here, a directory of that name in an allowed secret source)")
				ok = false
			case len(sn) > 253 || !dns1123SubdomainRE.MatchString(sn):
				m.errorf(vp+".secret.secretName", "must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.'), got %q", sn)
				ok = false
			}
		case vol.HostPath != nil:
			var v validator
			v.absClean(vp+".hostPath.path", vol.HostPath.Path)
			for _, fe := range v.errs {
				m.errorf(fe.field, "%s", fe.msg)
				ok = false
			}
			if vol.HostPath.Type != "" {
				m.errorf(vp+".hostPath.type", "%s: %q (the path must exist already; its kind is not checked): leave type out", notYet, vol.HostPath.Type)
				ok = false
			}
		default: // an emptyDir, which is also what no source means in Kubernetes
			ed := vol.EmptyDir
			if ed == nil {
				ed = &PodEmptyDir{}
			}
			field := vp + ".emptyDir"
			if vol.EmptyDir == nil {
				field = vp
			}
			switch {
			case ed.Medium == "Memory":
				var v validator
				v.bytes(vp+".emptyDir.sizeLimit", ed.SizeLimit)
				for _, fe := range v.errs {
					m.errorf(fe.field, "%s", fe.msg)
					ok = false
				}
			case ed.Medium == "":
				// A directory of the pod's on disk (a volume without a
				// source is one too, as in Kubernetes).
				if ed.SizeLimit != nil {
					m.errorf(field+".sizeLimit", "%s: a sizeLimit of an emptyDir on disk (the kubelet evicts the pod past it; nothing here would): leave it out, or use medium: Memory, whose sizeLimit is the tmpfs's size", notYet)
					ok = false
				}
			case strings.HasPrefix(ed.Medium, "HugePages"):
				m.errorf(vp+".emptyDir.medium", "%s: %s", notHere, ed.Medium)
				ok = false
			default:
				m.errorf(vp+".emptyDir.medium", `must be "" or "Memory" (or HugePages, not supported here), got %q`, ed.Medium)
				ok = false
			}
		}
		if ok {
			m.volumes[vol.Name] = k
		}
	}
}

// hasOtherKeys reports whether the mapping at path has a key besides keys.
func (m *podMapper) hasOtherKeys(path string, keys ...string) bool {
	for p := range m.ds.lines {
		rest, ok := strings.CutPrefix(p, path+".")
		if ok && !strings.ContainsAny(rest, ".[") && !slices.Contains(keys, rest) {
			return true
		}
	}
	return false
}

// checkVolumeUses refuses a memory emptyDir mounted more than once (each
// mount would be a tmpfs of its own, where Kubernetes shares one) and warns
// of a volume no container mounts.
func (m *podMapper) checkVolumeUses() {
	for k, vol := range m.p.Spec.Volumes {
		if _, ok := m.volumes[vol.Name]; !ok {
			continue
		}
		uses := m.uses[vol.Name]
		switch {
		case len(uses) == 0:
			m.warnf(fmt.Sprintf("spec.volumes[%d]", k), "volume %q is mounted by no container: it has no effect", vol.Name)
		case vol.EmptyDir != nil && vol.EmptyDir.Medium == "Memory" && len(uses) > 1:
			m.errorf(uses[1], "%s: an emptyDir of medium: Memory shared by several mounts (here and %s) is not built yet; each would be a tmpfs of its own: use an emptyDir on disk (no medium) to share one", notYet, uses[0])
		}
	}
}

// checkName checks a container's name, and the task name it makes.
func (m *podMapper) checkName(c *PodContainer, cp string, names map[string]string) {
	f := cp + ".name"
	switch first, dup := names[c.Name]; {
	case c.Name == "":
		m.errorf(f, "required")
	case len(c.Name) > 63 || !dns1123LabelRE.MatchString(c.Name):
		m.errorf(f, dns1123Msg+", got %q", c.Name)
	case dup:
		m.errorf(f, "duplicate container name %q, first at %s", c.Name, first)
	default:
		names[c.Name] = f
		if task := m.p.Metadata.Name + "-" + c.Name; !m.badPod && len(task) > 63 {
			m.errorf(f, "with metadata.name %q this container runs as task %q, %d characters, and a task name is at most 63: shorten metadata.name or this name",
				m.p.Metadata.Name, task, len(task))
		}
	}
}

// container maps one container onto its task; after is the task it waits
// for to complete ("" for none).
func (m *podMapper) container(c *PodContainer, cp string, init bool, after string) parsedTask {
	p := m.p
	tr := podPaths{cp: cp, to: map[string]string{
		"metadata.name":        "", // checked by checkName
		"metadata.labels":      "metadata.labels",
		"spec.image":           cp + ".image",
		"spec.imagePullPolicy": cp + ".imagePullPolicy",
		"spec.command":         cp + ".command",
		"spec.args":            cp + ".args",
		"spec.env":             cp + ".env",
		"spec.workingDir":      cp + ".workingDir",
		"spec.resources":       cp + ".resources.limits",
		"spec.mounts":          cp + ".volumeMounts",
		"spec.network":         "spec.hostNetwork",
		"spec.ports":           cp + ".ports",
		"spec.securityContext": cp + ".securityContext",
		"spec.restartPolicy":   "spec.restartPolicy",
		"spec.stopSignal":      cp + ".lifecycle.stopSignal",
		"spec.stopGracePeriod": "spec.terminationGracePeriodSeconds",
		"spec.healthCheck":     cp + ".livenessProbe",
		"spec.dependsOn":       "", // made here, from the order of the init containers
	}}
	s := Spec{
		Image:           c.Image,
		ImagePullPolicy: c.ImagePullPolicy,
		WorkingDir:      c.WorkingDir,
		RestartPolicy:   p.Spec.RestartPolicy,
		Pod:             p.Metadata.Name,
	}
	if init {
		// Init containers run to completion, as in Kubernetes: a failed
		// one runs again unless the pod's policy is Never.
		s.RestartPolicy = RestartOnFailure
		if p.Spec.RestartPolicy == RestartNever {
			s.RestartPolicy = RestartNever
		}
	}
	m.env(c, &s)
	m.user(c, cp, &s, &tr)
	m.resources(c, cp, &s)
	m.mounts(c, cp, &s, &tr)
	m.network(c, cp, &s)
	m.securityContext(c, cp, &s)
	m.lifecycle(c, cp, init, &s)
	if g := p.Spec.TerminationGracePeriodSeconds; g != nil && *g >= 0 && *g <= maxGraceSeconds {
		s.StopGracePeriod = &Duration{time.Duration(*g) * time.Second}
	}
	s.HealthCheck = m.probes(c, cp, init, &tr)
	if after != "" {
		s.DependsOn = []Dependency{{Task: after, Condition: DependCompleted}}
	}
	labels := maps.Clone(p.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelPod] = p.Metadata.Name
	t := Task{
		APIVersion: APIVersion,
		Kind:       KindTask,
		Metadata:   Metadata{Name: p.Metadata.Name + "-" + c.Name, Labels: labels},
		Spec:       s,
		Source:     m.ds.file,
	}
	// What the task's own validation finds, said in the pod's words.
	for _, fe := range validateBody(&t) {
		f := tr.field(fe.field)
		if f == "" || m.covered(f) {
			continue
		}
		m.errorf(f, "%s", tr.msg(fe.msg))
	}
	t.Spec = t.Spec.withDefaults()
	pt := parsedTask{task: t, doc: m.ds.doc, nameLine: m.ds.lineOf(cp + ".name"), nameField: cp + ".name"}
	if after != "" {
		pt.depLines = []int{pt.nameLine}
	}
	for i, port := range t.Spec.Ports {
		f := fmt.Sprintf("%s.ports[%d].hostPort", cp, i)
		if port.HostPort == 0 {
			f = fmt.Sprintf("%s.ports[%d]", cp, i)
		}
		pt.portLine = append(pt.portLine, m.ds.lineOf(f))
		pt.portField = append(pt.portField, fmt.Sprintf("%s.ports[%d].hostPort", cp, i))
	}
	return pt
}

// podPaths turns a task's field paths into the pod's.
type podPaths struct {
	cp string            // the container's path
	to map[string]string // task path -> pod path; "" for a problem said already
}

// field returns the pod's path of task field f: the nearest mapped parent,
// with the rest of f after it; the container's own path if none.
func (tr *podPaths) field(f string) string {
	for p := f; p != ""; p = parentPath(p) {
		if to, ok := tr.to[p]; ok {
			if to == "" {
				return ""
			}
			return to + f[len(p):]
		}
	}
	return tr.cp
}

var podMsgPathRE = regexp.MustCompile(`spec\.(env|mounts|ports)\[[0-9]+\]`)

// msg rewrites the task paths a validation message names.
func (tr *podPaths) msg(s string) string {
	return podMsgPathRE.ReplaceAllStringFunc(s, func(p string) string {
		if f := tr.field(p); f != "" {
			return f
		}
		return p
	})
}

// env copies the environment, expanding $(VAR) as Kubernetes does: in a
// value, by the variables listed before it; in command and args, by all.
func (m *podMapper) env(c *PodContainer, s *Spec) {
	vars := map[string]string{}
	for _, e := range c.Env {
		v := podExpand(e.Value, vars)
		s.Env = append(s.Env, EnvVar{Name: e.Name, Value: v})
		vars[e.Name] = v
	}
	for _, a := range c.Command {
		s.Command = append(s.Command, podExpand(a, vars))
	}
	for _, a := range c.Args {
		s.Args = append(s.Args, podExpand(a, vars))
	}
}

// podExpand expands $(NAME) in s by vars, as the kubelet does: a name
// vars lacks stays as written, "$$" is a literal "$", and any other "$"
// is kept.
func podExpand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// user maps runAsUser and runAsGroup (the container's, else the pod's)
// to the task's "uid" or "uid:gid".
func (m *podMapper) user(c *PodContainer, cp string, s *Spec, tr *podPaths) {
	var uid, gid *int64
	uf, gf := "", ""
	if sc := m.p.Spec.SecurityContext; sc != nil {
		uid, uf = sc.RunAsUser, "spec.securityContext.runAsUser"
		gid, gf = sc.RunAsGroup, "spec.securityContext.runAsGroup"
	}
	if sc := c.SecurityContext; sc != nil {
		m.checkID(cp+".securityContext.runAsUser", sc.RunAsUser)
		m.checkID(cp+".securityContext.runAsGroup", sc.RunAsGroup)
		if sc.RunAsUser != nil {
			uid, uf = sc.RunAsUser, cp+".securityContext.runAsUser"
		}
		if sc.RunAsGroup != nil {
			gid, gf = sc.RunAsGroup, cp+".securityContext.runAsGroup"
		}
	}
	switch {
	case uid == nil && gid == nil:
	case uid == nil:
		m.errorf(gf, "%s: runAsGroup without runAsUser (the image's user would need its /etc/passwd, which is not read): set runAsUser too", notYet)
	case *uid < 0 || *uid > math.MaxInt32 || (gid != nil && (*gid < 0 || *gid > math.MaxInt32)):
		// Reported by checkID.
	case gid == nil:
		s.User = strconv.FormatInt(*uid, 10)
	default:
		s.User = strconv.FormatInt(*uid, 10) + ":" + strconv.FormatInt(*gid, 10)
	}
	tr.to["spec.user"] = uf
}

// resources maps the cpu and memory limits, and warns that requests are
// ignored.
func (m *podMapper) resources(c *PodContainer, cp string, s *Spec) {
	r := c.Resources
	if r == nil {
		return
	}
	rp := cp + ".resources"
	var res Resources
	for _, k := range slices.Sorted(maps.Keys(r.Limits)) {
		q := r.Limits[k]
		switch k {
		case "cpu":
			res.CPU = &q
		case "memory":
			res.Memory = &q
		default:
			m.errorf(rp+".limits."+k, "%s: only the cpu and memory limits are applied here", notHere)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.Requests)) {
		q := r.Requests[k]
		f := rp + ".requests." + k
		if q.Sign() < 0 {
			m.errorf(f, "must not be negative, got %q", q.String())
			continue
		}
		if lim, ok := r.Limits[k]; ok && q.Cmp(lim) > 0 {
			m.errorf(f, "must be less than or equal to the %s limit (%s), as Kubernetes requires, got %q", k, lim.String(), q.String())
		}
	}
	if len(r.Requests) > 0 {
		m.warnf(rp+".requests", "ignored on this node: requests reserve capacity for a cluster's scheduler, and there is none here; the limits are applied")
	}
	if res.CPU != nil || res.Memory != nil {
		s.Resources = &res
	}
}

// mounts maps the volume mounts: a hostPath is a bind mount, a memory
// emptyDir a tmpfs.
func (m *podMapper) mounts(c *PodContainer, cp string, s *Spec, tr *podPaths) {
	for j, vm := range c.VolumeMounts {
		mp := fmt.Sprintf("%s.volumeMounts[%d]", cp, j)
		if vm.Name == "" {
			m.errorf(mp+".name", "required: the name of a volume of spec.volumes")
			continue
		}
		k, ok := m.volumes[vm.Name]
		if !ok {
			if !slices.ContainsFunc(m.p.Spec.Volumes, func(v PodVolume) bool { return v.Name == vm.Name }) {
				m.errorf(mp+".name", "no volume %q in spec.volumes", vm.Name)
			}
			continue // the volume's own problem is reported
		}
		vol := m.p.Spec.Volumes[k]
		vp := fmt.Sprintf("spec.volumes[%d]", k)
		tp := fmt.Sprintf("spec.mounts[%d]", len(s.Mounts))
		tr.to[tp] = mp
		tr.to[tp+".target"] = mp + ".mountPath"
		mt := Mount{Target: vm.MountPath, ReadOnly: vm.ReadOnly}
		switch {
		case vol.Secret != nil:
			// Read-only whatever readOnly says, as in Kubernetes.
			mt.Type, mt.Source, mt.ReadOnly = MountPodSecret, vol.Secret.SecretName, true
			tr.to[tp+".source"] = vp + ".secret.secretName"
		case vol.HostPath != nil:
			mt.Type, mt.Source = MountBind, vol.HostPath.Path
			tr.to[tp+".source"] = vp + ".hostPath.path"
		case vol.EmptyDir != nil && vol.EmptyDir.Medium == "Memory":
			mt.Type, mt.Size = MountTmpfs, cloneQuantity(vol.EmptyDir.SizeLimit)
			tr.to[tp+".size"] = vp + ".emptyDir.sizeLimit"
		default:
			mt.Type, mt.Source = MountPodDir, vol.Name
			tr.to[tp+".source"] = vp + ".name"
		}
		m.uses[vol.Name] = append(m.uses[vol.Name], mp)
		s.Mounts = append(s.Mounts, mt)
	}
}

// IANA service names, as Kubernetes checks a port's name.
var (
	podPortNameRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	podPortLetterRE  = regexp.MustCompile(`[a-z]`)
	podMaxPortNameLn = 15
)

// network maps hostNetwork and the ports: with hostNetwork the host's
// network, whose ports the container binds itself (they are listed, as in
// Kubernetes); without, the bridge, ports published.
func (m *podMapper) network(c *PodContainer, cp string, s *Spec) {
	hostNet := m.p.Spec.HostNetwork
	s.Network = NetworkBridge
	if hostNet {
		s.Network = NetworkHost
	}
	names := map[string]string{}
	for j, port := range c.Ports {
		pp := fmt.Sprintf("%s.ports[%d]", cp, j)
		if port.Name != "" {
			switch first, dup := names[port.Name]; {
			case len(port.Name) > podMaxPortNameLn || !podPortNameRE.MatchString(port.Name) ||
				strings.Contains(port.Name, "--") || !podPortLetterRE.MatchString(port.Name):
				m.errorf(pp+".name", "must be an IANA service name (at most 15 lower-case letters, digits and '-', with a letter, no '--', starting and ending with a letter or digit), got %q", port.Name)
			case dup:
				m.errorf(pp+".name", "duplicate port name %q, first at %s", port.Name, first)
			default:
				names[port.Name] = pp + ".name"
			}
		}
		if port.Protocol == "SCTP" {
			m.errorf(pp+".protocol", "%s: SCTP", notHere)
		}
		if !hostNet {
			s.Ports = append(s.Ports, Port{ContainerPort: port.ContainerPort, HostPort: port.HostPort, Protocol: port.Protocol, HostIP: port.HostIP})
			continue
		}
		var v validator
		v.port(pp+".containerPort", port.ContainerPort)
		if port.Protocol != "SCTP" {
			enum(&v, pp+".protocol", port.Protocol)
		}
		for _, fe := range v.errs {
			m.errorf(fe.field, "%s", fe.msg)
		}
		if port.HostPort != 0 && port.HostPort != port.ContainerPort {
			m.errorf(pp+".hostPort", "must equal containerPort (%d) with hostNetwork: true, as in Kubernetes: the container binds the host's port itself, got %d", port.ContainerPort, port.HostPort)
		}
		if port.HostIP != "" {
			m.errorf(pp+".hostIP", "has no effect with hostNetwork: true (the container binds the host's addresses itself): remove it")
		}
	}
}

// securityContext maps the container's security context. Every process
// here runs with no-new-privileges, so allowPrivilegeEscalation can only
// be false.
func (m *podMapper) securityContext(c *PodContainer, cp string, s *Spec) {
	sc := c.SecurityContext
	if sc == nil {
		return
	}
	sp := cp + ".securityContext"
	out := SecurityContext{}
	if sc.ReadOnlyRootFilesystem != nil {
		out.ReadOnlyRootFilesystem = *sc.ReadOnlyRootFilesystem
	}
	if sc.Privileged != nil {
		out.Privileged = *sc.Privileged
	}
	if caps := sc.Capabilities; caps != nil && (len(caps.Add) > 0 || len(caps.Drop) > 0) {
		out.Capabilities = &Capabilities{Add: slices.Clone(caps.Add), Drop: slices.Clone(caps.Drop)}
	}
	if ape := sc.AllowPrivilegeEscalation; ape != nil {
		switch {
		case *ape:
			m.errorf(sp+".allowPrivilegeEscalation", "%s: true (every process here runs with no-new-privileges; false is the default)", notHere)
		case out.Privileged:
			m.errorf(sp+".allowPrivilegeEscalation", "false cannot go with privileged: true (Kubernetes refuses it)")
		case out.Capabilities != nil && slices.ContainsFunc(out.Capabilities.Add, func(n string) bool { x, _ := normalizeCap(n); return x == "CAP_SYS_ADMIN" }):
			m.errorf(sp+".allowPrivilegeEscalation", "false cannot go with adding SYS_ADMIN (Kubernetes refuses it)")
		}
	}
	if out != (SecurityContext{}) {
		s.SecurityContext = &out
	}
}

// lifecycle maps lifecycle.stopSignal, written as Kubernetes writes it
// (SIGTERM, not term) and, as Kubernetes requires, with spec.os.name.
func (m *podMapper) lifecycle(c *PodContainer, cp string, init bool, s *Spec) {
	lc := c.Lifecycle
	if lc == nil {
		return
	}
	if init {
		m.errorf(cp+".lifecycle", "may not be set for an init container (as in Kubernetes)")
		return
	}
	if lc.StopSignal == "" {
		return
	}
	f := cp + ".lifecycle.stopSignal"
	if n, ok := normalizeSignal(lc.StopSignal); !ok || n != lc.StopSignal {
		m.errorf(f, "must be a signal name as Kubernetes writes it, such as SIGTERM, SIGINT or SIGQUIT, got %q", lc.StopSignal)
		return
	}
	if m.p.Spec.OS == nil {
		m.errorf(f, "needs spec.os.name: linux (Kubernetes refuses a stop signal without it)")
	}
	s.StopSignal = lc.StopSignal
}

// Kubernetes' probe defaults (a zero means the default, as there).
const (
	podProbePeriod    = 10
	podProbeTimeout   = 1
	podProbeFailures  = 3
	podProbeSuccesses = 1
)

// probes maps livenessProbe onto the task's health check, with the
// startupProbe as its start period and the readinessProbe as the check
// itself where they say the same; a container without livenessProbe has
// no health check at all (not the image's HEALTHCHECK, which Kubernetes
// ignores).
func (m *podMapper) probes(c *PodContainer, cp string, init bool, tr *podPaths) *HealthCheck {
	lp, sp, rp := cp+".livenessProbe", cp+".startupProbe", cp+".readinessProbe"
	if init {
		for i, pr := range []*PodProbe{c.LivenessProbe, c.StartupProbe, c.ReadinessProbe} {
			if pr != nil {
				m.errorf([]string{lp, sp, rp}[i], "may not be set for an init container (as in Kubernetes)")
			}
		}
		return &HealthCheck{Disabled: true}
	}
	live := c.LivenessProbe
	if live == nil {
		if c.StartupProbe != nil {
			m.errorf(sp, "%s: a startupProbe without a livenessProbe (here a startup probe is the start period of the liveness probe)", notYet)
		}
		rd := c.ReadinessProbe
		if rd == nil {
			return &HealthCheck{Disabled: true}
		}
		// A readiness probe alone: a health check that restarts
		// nothing, gating rollouts and dependsOn: healthy.
		h, ok := m.probe(c, rp, rd)
		if !ok {
			return &HealthCheck{Disabled: true} // refused: the task is not used
		}
		h.OnUnhealthy = OnUnhealthyNone
		for _, f := range [][2]string{{"exec", ".exec"}, {"http", ".httpGet"}, {"tcp", ".tcpSocket"}, {"interval", ".periodSeconds"},
			{"timeout", ".timeoutSeconds"}, {"retries", ".failureThreshold"}, {"startPeriod", ".initialDelaySeconds"}} {
			tr.to["spec.healthCheck."+f[0]] = rp + f[1]
		}
		return h
	}
	h, ok := m.probe(c, lp, live)
	if !ok {
		h = &HealthCheck{Disabled: true} // refused: the task is not used
	}
	tr.to["spec.healthCheck.exec"] = lp + ".exec"
	tr.to["spec.healthCheck.http"] = lp + ".httpGet"
	tr.to["spec.healthCheck.tcp"] = lp + ".tcpSocket"
	tr.to["spec.healthCheck.interval"] = lp + ".periodSeconds"
	tr.to["spec.healthCheck.timeout"] = lp + ".timeoutSeconds"
	tr.to["spec.healthCheck.retries"] = lp + ".failureThreshold"
	tr.to["spec.healthCheck.startPeriod"] = lp + ".initialDelaySeconds"
	if st := c.StartupProbe; st != nil {
		if why := startupMismatch(c, live, st); why != "" {
			m.errorf(sp, "%s: %s (a startup probe here is the start period of the livenessProbe: the same handler, periodSeconds and timeoutSeconds, "+
				"a failureThreshold at least the livenessProbe's, and no initialDelaySeconds on the livenessProbe)", notYet, why)
		} else if ok {
			// Failures within the start period do not count and a
			// success ends it; past it, failureThreshold failures in
			// a row: the container is killed when Kubernetes kills it.
			period := orInt(live.PeriodSeconds, podProbePeriod)
			extra := orInt(st.FailureThreshold, podProbeFailures) - orInt(live.FailureThreshold, podProbeFailures)
			h.StartPeriod = &Duration{time.Duration(st.InitialDelaySeconds+extra*period) * time.Second}
			tr.to["spec.healthCheck.startPeriod"] = sp
		}
	}
	if rd := c.ReadinessProbe; rd != nil && !sameProbe(c, live, rd) {
		m.errorf(rp, "%s: a readinessProbe other than the livenessProbe (a container has one health check here: a livenessProbe, which also gates rollouts and dependsOn, or a readinessProbe alone, which restarts nothing)", notYet)
	}
	return h
}

// probe maps one probe onto a health check.
func (m *podMapper) probe(c *PodContainer, pp string, pr *PodProbe) (*HealthCheck, bool) {
	ok := true
	var kinds []string
	if pr.Exec != nil {
		kinds = append(kinds, "exec")
	}
	if pr.HTTPGet != nil {
		kinds = append(kinds, "httpGet")
	}
	if pr.TCPSocket != nil {
		kinds = append(kinds, "tcpSocket")
	}
	switch {
	case len(kinds) > 1:
		m.errorf(pp, "may not specify more than one handler, got %s", strings.Join(kinds, " and "))
		return nil, false
	case len(kinds) == 0:
		if !m.hasOtherKeys(pp, "initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold") {
			m.errorf(pp, "needs exactly one handler: exec, httpGet or tcpSocket")
		}
		return nil, false
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"initialDelaySeconds", pr.InitialDelaySeconds}, {"timeoutSeconds", pr.TimeoutSeconds},
		{"periodSeconds", pr.PeriodSeconds}, {"successThreshold", pr.SuccessThreshold}, {"failureThreshold", pr.FailureThreshold}} {
		if f.n < 0 || f.n > math.MaxInt32 {
			m.errorf(pp+"."+f.name, "must be from 0 to %d, got %d", math.MaxInt32, f.n)
			ok = false
		}
	}
	if n := pr.SuccessThreshold; n != 0 && n != podProbeSuccesses {
		m.errorf(pp+".successThreshold", "must be 1, as Kubernetes requires of this probe, got %d", n)
		ok = false
	}
	h := &HealthCheck{
		Interval:    &Duration{time.Duration(orInt(pr.PeriodSeconds, podProbePeriod)) * time.Second},
		Timeout:     &Duration{time.Duration(orInt(pr.TimeoutSeconds, podProbeTimeout)) * time.Second},
		Retries:     orInt(pr.FailureThreshold, podProbeFailures),
		StartPeriod: &Duration{time.Duration(pr.InitialDelaySeconds) * time.Second},
	}
	switch {
	case pr.Exec != nil:
		h.Exec = &ExecProbe{Command: slices.Clone(pr.Exec.Command)}
	case pr.HTTPGet != nil:
		g := pr.HTTPGet
		port, pok := m.probePort(c, pp+".httpGet.port", g.Port)
		ok = ok && pok && m.probeHost(pp+".httpGet.host", g.Host)
		switch g.Scheme {
		case "", "HTTP":
		case "HTTPS":
			m.errorf(pp+".httpGet.scheme", "%s: HTTPS (the probe speaks plain HTTP)", notYet)
			ok = false
		default:
			m.errorf(pp+".httpGet.scheme", "must be HTTP or HTTPS, got %q", g.Scheme)
			ok = false
		}
		h.HTTP = &HTTPProbe{Port: port, Path: g.Path}
	case pr.TCPSocket != nil:
		port, pok := m.probePort(c, pp+".tcpSocket.port", pr.TCPSocket.Port)
		ok = ok && pok && m.probeHost(pp+".tcpSocket.host", pr.TCPSocket.Host)
		h.TCP = &TCPProbe{Port: port}
	}
	return h, ok
}

// probePort resolves a probe's port: a number, or the name of a port of
// the container.
func (m *podMapper) probePort(c *PodContainer, f string, ref PodPortRef) (int, bool) {
	if ref.Name == "" {
		return ref.Number, true // the task's validation checks the range
	}
	for _, p := range c.Ports {
		if p.Name == ref.Name {
			return p.ContainerPort, true
		}
	}
	m.errorf(f, "no port named %q in the container's ports", ref.Name)
	return 0, false
}

// probeHost accepts the host the probe dials here: none, or the loopback
// under hostNetwork (where the container's address is the host's).
func (m *podMapper) probeHost(f, host string) bool {
	switch {
	case host == "":
		return true
	case m.p.Spec.HostNetwork && (host == "127.0.0.1" || host == "localhost"):
		return true
	}
	m.errorf(f, "%s: %q (the probe dials the container's own address: leave host out, or 127.0.0.1 with hostNetwork: true)", notYet, host)
	return false
}

// startupMismatch says why a startup probe is not the start period of the
// liveness probe, or "".
func startupMismatch(c *PodContainer, live, st *PodProbe) string {
	switch {
	case !reflect.DeepEqual(podHandler(c, live), podHandler(c, st)):
		return "its handler differs from the livenessProbe's"
	case orInt(live.PeriodSeconds, podProbePeriod) != orInt(st.PeriodSeconds, podProbePeriod):
		return "its periodSeconds differs from the livenessProbe's"
	case orInt(live.TimeoutSeconds, podProbeTimeout) != orInt(st.TimeoutSeconds, podProbeTimeout):
		return "its timeoutSeconds differs from the livenessProbe's"
	case orInt(st.FailureThreshold, podProbeFailures) < orInt(live.FailureThreshold, podProbeFailures):
		return "its failureThreshold is below the livenessProbe's"
	case live.InitialDelaySeconds != 0:
		return "the livenessProbe has initialDelaySeconds too"
	case st.InitialDelaySeconds < 0 || st.FailureThreshold < 0 || st.SuccessThreshold < 0:
		return "negative numbers"
	}
	return ""
}

// sameProbe reports whether two probes say the same, defaults applied.
func sameProbe(c *PodContainer, a, b *PodProbe) bool {
	norm := func(p *PodProbe) PodProbe {
		n := *p
		n.Exec, n.HTTPGet, n.TCPSocket = nil, nil, nil
		n.PeriodSeconds = orInt(p.PeriodSeconds, podProbePeriod)
		n.TimeoutSeconds = orInt(p.TimeoutSeconds, podProbeTimeout)
		n.FailureThreshold = orInt(p.FailureThreshold, podProbeFailures)
		n.SuccessThreshold = orInt(p.SuccessThreshold, podProbeSuccesses)
		return n
	}
	return norm(a) == norm(b) && reflect.DeepEqual(podHandler(c, a), podHandler(c, b))
}

// podHandler is what a probe of container c does, with defaults applied
// and ports by number.
func podHandler(c *PodContainer, p *PodProbe) PodProbe {
	byNumber := func(ref PodPortRef) PodPortRef {
		for _, port := range c.Ports {
			if ref.Name != "" && port.Name == ref.Name {
				return PodPortRef{Number: port.ContainerPort}
			}
		}
		return ref
	}
	h := PodProbe{Exec: p.Exec}
	if g := p.HTTPGet; g != nil {
		n := *g
		n.Port = byNumber(n.Port)
		if n.Scheme == "" {
			n.Scheme = "HTTP"
		}
		if n.Path == "" {
			n.Path = "/"
		}
		h.HTTPGet = &n
	}
	if t := p.TCPSocket; t != nil {
		n := *t
		n.Port = byNumber(n.Port)
		h.TCPSocket = &n
	}
	return h
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}
