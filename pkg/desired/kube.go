package desired

// The Kubernetes equivalent of a task, for `reconciler convert`: a v1 Pod,
// or an apps/v1 Deployment of one replica wrapping it. Own minimal types
// with the Kubernetes field names, so that the daemon does not link
// k8s.io/api; every task field is either mapped or named in a warning.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	yaml3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// The kinds [ToKubernetes] makes.
const (
	KubeKindPod        = "Pod"
	KubeKindDeployment = "Deployment"
)

// KubeAppLabel is the label a Deployment selects its pods by: app: TASK,
// unless the task's labels give "app" a value already.
const KubeAppLabel = "app"

// KubeWarning is a field of a task that has no Kubernetes equivalent, or
// whose equivalent behaves differently: what became of it and what to use
// instead.
type KubeWarning struct {
	Task  string // metadata.name
	Field string // e.g. "spec.restartBackoff"
	Msg   string
}

// String formats as `web: spec.restartBackoff: no Kubernetes equivalent ...`.
func (w KubeWarning) String() string { return w.Task + ": " + w.Field + ": " + w.Msg }

// KubeObjectMeta is the metadata of a Kubernetes object.
type KubeObjectMeta struct {
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// KubePod is a v1 Pod.
type KubePod struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Metadata   KubeObjectMeta `json:"metadata"`
	Spec       KubePodSpec    `json:"spec"`
}

// KubeDeployment is an apps/v1 Deployment.
type KubeDeployment struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   KubeObjectMeta     `json:"metadata"`
	Spec       KubeDeploymentSpec `json:"spec"`
}

// KubeDeploymentSpec is a Deployment's spec.
type KubeDeploymentSpec struct {
	Replicas                int                    `json:"replicas"`
	Selector                KubeLabelSelector      `json:"selector"`
	Strategy                KubeDeploymentStrategy `json:"strategy"`
	MinReadySeconds         int64                  `json:"minReadySeconds,omitempty"`
	ProgressDeadlineSeconds int64                  `json:"progressDeadlineSeconds,omitempty"`
	Template                KubePodTemplate        `json:"template"`
}

// KubeLabelSelector selects pods by labels.
type KubeLabelSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

// KubeDeploymentStrategy is Recreate or RollingUpdate.
type KubeDeploymentStrategy struct {
	Type          string             `json:"type"`
	RollingUpdate *KubeRollingUpdate `json:"rollingUpdate,omitempty"`
}

// KubeRollingUpdate bounds a rolling update; both are written out, 0
// included (Kubernetes' defaults are 25%).
type KubeRollingUpdate struct {
	MaxSurge       int `json:"maxSurge"`
	MaxUnavailable int `json:"maxUnavailable"`
}

// KubePodTemplate is a Deployment's pod template.
type KubePodTemplate struct {
	Metadata KubeObjectMeta `json:"metadata"`
	Spec     KubePodSpec    `json:"spec"`
}

// KubePodSpec is a Pod's spec.
type KubePodSpec struct {
	Containers                    []KubeContainer `json:"containers"`
	Volumes                       []KubeVolume    `json:"volumes,omitempty"`
	RestartPolicy                 string          `json:"restartPolicy"`
	TerminationGracePeriodSeconds *int64          `json:"terminationGracePeriodSeconds,omitempty"`
	HostNetwork                   bool            `json:"hostNetwork,omitempty"`
	OS                            *KubePodOS      `json:"os,omitempty"`
}

// KubePodOS names the pod's operating system (lifecycle.stopSignal needs it).
type KubePodOS struct {
	Name string `json:"name"`
}

// KubeContainer is one container of a pod.
type KubeContainer struct {
	Name            string               `json:"name"`
	Image           string               `json:"image"`
	ImagePullPolicy string               `json:"imagePullPolicy,omitempty"`
	Command         []string             `json:"command,omitempty"`
	Args            []string             `json:"args,omitempty"`
	WorkingDir      string               `json:"workingDir,omitempty"`
	Env             []KubeEnvVar         `json:"env,omitempty"`
	Ports           []KubeContainerPort  `json:"ports,omitempty"`
	Resources       *KubeResources       `json:"resources,omitempty"`
	VolumeMounts    []KubeVolumeMount    `json:"volumeMounts,omitempty"`
	SecurityContext *KubeSecurityContext `json:"securityContext,omitempty"`
	StartupProbe    *KubeProbe           `json:"startupProbe,omitempty"`
	LivenessProbe   *KubeProbe           `json:"livenessProbe,omitempty"`
	ReadinessProbe  *KubeProbe           `json:"readinessProbe,omitempty"`
	Lifecycle       *KubeLifecycle       `json:"lifecycle,omitempty"`
}

// KubeEnvVar is an environment variable with a plain value.
type KubeEnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value,omitempty"`
}

// KubeContainerPort is a port of a container.
type KubeContainerPort struct {
	ContainerPort int    `json:"containerPort"`
	HostPort      int    `json:"hostPort,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// KubeResources holds a container's limits (quantities as strings).
type KubeResources struct {
	Limits map[string]string `json:"limits,omitempty"`
}

// KubeVolumeMount mounts a volume of the pod in the container.
type KubeVolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// KubeVolume is a volume of a pod: a hostPath or an emptyDir.
type KubeVolume struct {
	Name     string        `json:"name"`
	HostPath *KubeHostPath `json:"hostPath,omitempty"`
	EmptyDir *KubeEmptyDir `json:"emptyDir,omitempty"`
}

// KubeHostPath is a path of the node.
type KubeHostPath struct {
	Path string `json:"path"`
}

// KubeEmptyDir is a directory that lives as long as the pod; medium Memory
// is a tmpfs.
type KubeEmptyDir struct {
	Medium    string `json:"medium,omitempty"`
	SizeLimit string `json:"sizeLimit,omitempty"`
}

// KubeSecurityContext is a container's security context.
type KubeSecurityContext struct {
	RunAsUser                *int64            `json:"runAsUser,omitempty"`
	RunAsGroup               *int64            `json:"runAsGroup,omitempty"`
	Privileged               *bool             `json:"privileged,omitempty"`
	AllowPrivilegeEscalation *bool             `json:"allowPrivilegeEscalation,omitempty"`
	ReadOnlyRootFilesystem   *bool             `json:"readOnlyRootFilesystem,omitempty"`
	Capabilities             *KubeCapabilities `json:"capabilities,omitempty"`
}

// KubeCapabilities are capability names without "CAP_", as Kubernetes
// writes them.
type KubeCapabilities struct {
	Add  []string `json:"add,omitempty"`
	Drop []string `json:"drop,omitempty"`
}

// KubeProbe is a liveness, readiness or startup probe.
type KubeProbe struct {
	Exec                *KubeExecAction      `json:"exec,omitempty"`
	HTTPGet             *KubeHTTPGetAction   `json:"httpGet,omitempty"`
	TCPSocket           *KubeTCPSocketAction `json:"tcpSocket,omitempty"`
	InitialDelaySeconds int64                `json:"initialDelaySeconds,omitempty"`
	PeriodSeconds       int64                `json:"periodSeconds"`
	TimeoutSeconds      int64                `json:"timeoutSeconds"`
	FailureThreshold    int                  `json:"failureThreshold"`
}

// KubeExecAction runs a command in the container.
type KubeExecAction struct {
	Command []string `json:"command"`
}

// KubeHTTPGetAction GETs a path on a port.
type KubeHTTPGetAction struct {
	Host string `json:"host,omitempty"`
	Path string `json:"path"`
	Port int    `json:"port"`
}

// KubeTCPSocketAction connects to a port.
type KubeTCPSocketAction struct {
	Host string `json:"host,omitempty"`
	Port int    `json:"port"`
}

// KubeLifecycle holds the container's stop signal (Kubernetes 1.33+).
type KubeLifecycle struct {
	StopSignal string `json:"stopSignal,omitempty"`
}

// ToKubernetes returns the Kubernetes equivalent of t as kind
// ([KubeKindPod] or [KubeKindDeployment], any case): a *[KubePod] or a
// *[KubeDeployment]. It is an error only for another kind.
func ToKubernetes(t Task, kind string) (any, []KubeWarning, error) {
	switch {
	case strings.EqualFold(kind, KubeKindPod):
		p, w := ToPod(t)
		return &p, w, nil
	case strings.EqualFold(kind, KubeKindDeployment):
		d, w := ToDeployment(t)
		return &d, w, nil
	}
	return nil, nil, fmt.Errorf("kind must be %s or %s, got %q", KubeKindPod, KubeKindDeployment, kind)
}

// ToPod returns the v1 Pod that runs t's container as the reconciler runs
// it, and a warning for each field that has no Kubernetes equivalent
// (dropped) or whose equivalent needs something of the cluster (kept),
// in the order of the fields. t is a task as [Parse] returns it; defaults
// missing from it are filled in first.
func ToPod(t Task) (KubePod, []KubeWarning) {
	c := newKubeConverter(t)
	spec := c.podSpec(false)
	c.podOnly()
	return KubePod{
		APIVersion: "v1",
		Kind:       KubeKindPod,
		Metadata:   KubeObjectMeta{Name: t.Metadata.Name, Labels: c.labels},
		Spec:       spec,
	}, c.warnings
}

// ToDeployment returns the apps/v1 Deployment of one replica whose pod
// template is [ToPod]'s pod, with the task's rollout: stop-first is the
// Recreate strategy, start-first a RollingUpdate of one extra pod;
// minReady is minReadySeconds, progressDeadline progressDeadlineSeconds,
// and the health check is also the readiness probe, so that a new pod
// proves itself as a new container of the task does. The selector is
// app: TASK, added to the template's labels (a task label "app" is kept
// and selected by instead).
func ToDeployment(t Task) (KubeDeployment, []KubeWarning) {
	c := newKubeConverter(t)
	spec := c.podSpec(true)
	s := c.spec
	if s.RestartPolicy != RestartAlways {
		c.warn("spec.restartPolicy", "%s has no Deployment equivalent (a Deployment's pods always restart); converted to Always: convert this task with --kind Pod, or make it a Job", s.RestartPolicy)
		spec.RestartPolicy = string(RestartAlways)
	}
	tmplLabels := maps.Clone(c.labels)
	if tmplLabels == nil {
		tmplLabels = map[string]string{}
	}
	if _, ok := tmplLabels[KubeAppLabel]; !ok {
		tmplLabels[KubeAppLabel] = t.Metadata.Name
	}
	strategy := KubeDeploymentStrategy{Type: "Recreate"}
	if s.UpdateStrategy == UpdateStartFirst {
		strategy = KubeDeploymentStrategy{Type: "RollingUpdate", RollingUpdate: &KubeRollingUpdate{MaxSurge: 1, MaxUnavailable: 0}}
	}
	minReady := c.seconds("spec.minReady", s.MinReadyTime(), "minReadySeconds")
	deadline := c.seconds("spec.progressDeadline", s.Deadline(), "progressDeadlineSeconds")
	if deadline <= minReady { // rounding made them equal; Kubernetes wants it longer
		deadline = minReady + 1
	}
	c.warn("spec.progressDeadline", "%s is progressDeadlineSeconds: %d; a Deployment that misses it is marked failed (condition Progressing=False) but not rolled back as the reconciler does: roll back with kubectl rollout undo", s.Deadline(), deadline)
	return KubeDeployment{
		APIVersion: "apps/v1",
		Kind:       KubeKindDeployment,
		Metadata:   KubeObjectMeta{Name: t.Metadata.Name, Labels: c.labels},
		Spec: KubeDeploymentSpec{
			Replicas:                1,
			Selector:                KubeLabelSelector{MatchLabels: map[string]string{KubeAppLabel: tmplLabels[KubeAppLabel]}},
			Strategy:                strategy,
			MinReadySeconds:         minReady,
			ProgressDeadlineSeconds: deadline,
			Template:                KubePodTemplate{Metadata: KubeObjectMeta{Labels: tmplLabels}, Spec: spec},
		},
	}, c.warnings
}

// KubeYAML returns obj (a [KubePod], a [KubeDeployment] or a list of
// them) as one YAML document, its keys in the order of the types' fields,
// indented by two spaces.
func KubeYAML(obj any) ([]byte, error) {
	j, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var n yaml3.Node
	if err := yaml3.Unmarshal(j, &n); err != nil {
		return nil, err
	}
	kubePlainStyle(&n) // JSON's flow mappings and quoted strings, in block style
	var b bytes.Buffer
	enc := yaml3.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// kubePlainStyle drops the styles of a document decoded from JSON, and
// double-quotes each string that a YAML 1.1 reader, as kubectl's is,
// would read as something else ("yes", "on", "n": booleans there), so
// that kubectl and this package's parser read the same values.
func kubePlainStyle(n *yaml3.Node) {
	n.Style = 0
	if n.Kind == yaml3.ScalarNode && n.Tag == "!!str" && !strings.Contains(n.Value, "\n") {
		var v any
		if err := yaml.Unmarshal([]byte(n.Value), &v); err != nil || v != any(n.Value) || n.Value == "<<" { // "<<" is a merge as a key
			n.Style = yaml3.DoubleQuotedStyle
		}
	}
	for _, c := range n.Content {
		kubePlainStyle(c)
	}
}

// kubeConverter holds the task being converted and the warnings so far.
type kubeConverter struct {
	name     string
	spec     Spec
	labels   map[string]string
	warnings []KubeWarning
}

func newKubeConverter(t Task) *kubeConverter {
	c := &kubeConverter{name: t.Metadata.Name, spec: t.Spec.withDefaults()}
	for _, k := range slices.Sorted(maps.Keys(t.Metadata.Labels)) {
		v := t.Metadata.Labels[k]
		if msg := kubeLabelProblem(k, v); msg != "" {
			c.warn("metadata.labels."+k, "%s; dropped", msg)
			continue
		}
		if c.labels == nil {
			c.labels = map[string]string{}
		}
		c.labels[k] = v
	}
	return c
}

func (c *kubeConverter) warn(field, format string, args ...any) {
	c.warnings = append(c.warnings, KubeWarning{Task: c.name, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// podSpec maps the spec, with a readiness probe for a Deployment.
func (c *kubeConverter) podSpec(deployment bool) KubePodSpec {
	s := c.spec
	ctr := KubeContainer{
		Name:            c.name,
		Image:           s.Image,
		ImagePullPolicy: string(s.ImagePullPolicy),
		Command:         kubeEscapeAll(s.Command),
		Args:            kubeEscapeAll(s.Args),
		WorkingDir:      s.WorkingDir,
	}
	for _, e := range s.Env {
		ctr.Env = append(ctr.Env, KubeEnvVar{Name: e.Name, Value: kubeEscape(e.Value)})
	}
	pod := KubePodSpec{RestartPolicy: string(s.RestartPolicy)}

	switch s.Network {
	case NetworkHost:
		pod.HostNetwork = true
		c.warn("spec.network", "host (the default) is hostNetwork: true; Pod Security's baseline level refuses it: write network: bridge (the pod network) unless the task needs the host's network")
	case NetworkNone:
		c.warn("spec.network", "none has no Kubernetes equivalent (a pod always has the pod network); dropped: a NetworkPolicy that denies all ingress and egress comes closest")
	case NetworkBridge:
		c.warn("spec.network", "bridge is the pod network; other tasks reach this one by its name, which in Kubernetes takes a Service named %s", c.name)
	}
	for i, p := range s.Ports {
		ctr.Ports = append(ctr.Ports, KubeContainerPort{ContainerPort: p.ContainerPort, HostPort: p.HostPort, Protocol: string(p.Protocol), HostIP: p.HostIP})
		if p.HostPort != 0 {
			c.warn(fmt.Sprintf("spec.ports[%d].hostPort", i), "kept; the node's --allowed-host-ports has no Kubernetes equivalent: Pod Security's baseline level refuses host ports, and a Service of type NodePort or LoadBalancer is the usual way in")
		}
	}

	if r := s.Resources; r != nil {
		limits := map[string]string{}
		if r.CPU != nil {
			limits["cpu"] = r.CPU.String()
		}
		if r.Memory != nil {
			limits["memory"] = r.Memory.String()
		}
		if len(limits) > 0 {
			ctr.Resources = &KubeResources{Limits: limits}
		}
		if r.Pids != nil {
			c.warn("spec.resources.pids", "no per-pod field in Kubernetes (the kubelet's podPidsLimit caps every pod of a node alike); dropped")
		}
	}

	c.mounts(&pod, &ctr)
	for i, sec := range s.Secrets {
		what, from := "the node's file "+sec.File, sec.File
		if sec.InManifestsDir() {
			what = "the file " + sec.File + " of the manifests directory"
		}
		if sec.Encrypted() {
			from = "CLEARTEXT (age -d -i IDENTITY -o CLEARTEXT " + sec.File + ")"
		}
		c.warn(fmt.Sprintf("spec.secrets[%d]", i), "%s at %s has no Kubernetes equivalent (a pod cannot read a node's file as a secret); dropped: put it in a Secret (kubectl create secret generic %s --from-file=%s=%s) and mount it with a secret volume at %s", what, sec.Target(), c.name, sec.Name, from, SecretsDir)
	}

	ctr.SecurityContext = c.securityContext()

	if h := s.HealthCheck; h != nil && !h.Disabled && h.OnUnhealthy == OnUnhealthyNone {
		// A check that restarts nothing is a readiness probe, its start
		// period the delay before its first probe.
		_, ready := c.probes(h)
		if sp := h.StartPeriod.Duration; sp > 0 && ready != nil {
			ready.InitialDelaySeconds = c.seconds("spec.healthCheck.startPeriod", sp, "initialDelaySeconds")
		}
		ctr.ReadinessProbe = ready
	} else if h != nil && !h.Disabled {
		ctr.StartupProbe, ctr.LivenessProbe = c.probes(h)
		if deployment {
			ready := *ctr.LivenessProbe
			ctr.ReadinessProbe = &ready
		}
	}

	if s.RestartBackoff != nil {
		c.warn("spec.restartBackoff", "no Kubernetes equivalent (the kubelet's crash-loop backoff is the node's, 10s doubling to 5m); dropped")
	}
	grace := c.seconds("spec.stopGracePeriod", s.StopGrace(), "terminationGracePeriodSeconds")
	pod.TerminationGracePeriodSeconds = &grace
	if sig := s.StopSig(); sig != DefaultStopSignal {
		ctr.Lifecycle = &KubeLifecycle{StopSignal: sig}
		pod.OS = &KubePodOS{Name: "linux"} // Kubernetes refuses a stop signal without it
		c.warn("spec.stopSignal", "%s is lifecycle.stopSignal, a Kubernetes 1.33+ alpha field (feature gate ContainerStopSignals, which also needs spec.os.name: linux); a cluster without the gate drops it: set STOPSIGNAL %s in the image instead", sig, sig)
	}
	if len(s.DependsOn) > 0 {
		var deps []string
		for _, d := range s.DependsOn {
			deps = append(deps, fmt.Sprintf("%s (%s)", d.Task, d.Condition))
		}
		c.warn("spec.dependsOn", "no Kubernetes equivalent (a pod starts without waiting for other pods); dropped: it waited for %s; an init container that waits for them, or a retry in the program, comes closest", strings.Join(deps, ", "))
	}
	pod.Containers = []KubeContainer{ctr}
	return pod
}

// podOnly warns of the rollout fields a Pod has no place for.
func (c *kubeConverter) podOnly() {
	s := c.spec
	if s.UpdateStrategy == UpdateStartFirst {
		c.warn("spec.updateStrategy", "start-first has no Pod equivalent (a changed Pod is deleted, then created); dropped: --kind Deployment makes it a RollingUpdate")
	}
	if s.MinReadyTime() != DefaultMinReady {
		c.warn("spec.minReady", "a Pod has no rollout; dropped: --kind Deployment makes it minReadySeconds")
	}
	if s.Deadline() != DefaultProgressDeadline {
		c.warn("spec.progressDeadline", "a Pod has no rollout; dropped: --kind Deployment makes it progressDeadlineSeconds")
	}
}

// mounts maps bind mounts to hostPath volumes and tmpfs to memory
// emptyDirs, named after their type and index in spec.mounts; named
// volumes are dropped.
func (c *kubeConverter) mounts(pod *KubePodSpec, ctr *KubeContainer) {
	for i, m := range c.spec.Mounts {
		field := fmt.Sprintf("spec.mounts[%d]", i)
		vol := KubeVolume{Name: fmt.Sprintf("%s-%d", m.Type, i)}
		switch m.Type {
		case MountBind:
			vol.HostPath = &KubeHostPath{Path: m.Source}
			c.warn(field, "bind mount of %s is a hostPath volume; the node's --allowed-bind-sources has no Kubernetes equivalent: Pod Security's baseline level refuses hostPath volumes, and %s must exist on the node the pod runs on", m.Source, m.Source)
		case MountTmpfs:
			vol.EmptyDir = &KubeEmptyDir{Medium: "Memory"}
			if m.Size != nil {
				vol.EmptyDir.SizeLimit = m.Size.String()
			}
		case MountVolume:
			c.warn(field, "named volume %s at %s has no Pod equivalent (it outlives every container on this node); dropped: create a PersistentVolumeClaim and mount it at %s (volumes[].persistentVolumeClaim.claimName)", m.Source, m.Target, m.Target)
			continue
		default:
			continue
		}
		pod.Volumes = append(pod.Volumes, vol)
		ctr.VolumeMounts = append(ctr.VolumeMounts, KubeVolumeMount{Name: vol.Name, MountPath: m.Target, ReadOnly: m.ReadOnly})
	}
}

// kubeBaselineCaps are the capabilities Pod Security's baseline level lets a
// container add.
var kubeBaselineCaps = map[string]bool{
	"AUDIT_WRITE": true, "CHOWN": true, "DAC_OVERRIDE": true, "FOWNER": true, "FSETID": true, "KILL": true,
	"MKNOD": true, "NET_BIND_SERVICE": true, "SETFCAP": true, "SETGID": true, "SETPCAP": true, "SETUID": true, "SYS_CHROOT": true,
}

// securityContext maps the user and securityContext, with the secure
// defaults every task gets: no-new-privileges (allowPrivilegeEscalation:
// false, which Kubernetes refuses beside privileged) and no NET_RAW.
func (c *kubeConverter) securityContext() *KubeSecurityContext {
	s := c.spec
	sc := &KubeSecurityContext{}
	if s.User != "" {
		uid, gid, hasGid := strings.Cut(s.User, ":")
		if u, ok := kubeID(uid); ok {
			sc.RunAsUser = &u
		}
		if g, ok := kubeID(gid); hasGid && ok {
			sc.RunAsGroup = &g
		}
		if sc.RunAsUser == nil || (hasGid && sc.RunAsGroup == nil) {
			c.warn("spec.user", "%q is not numeric ids, which Kubernetes needs (runAsUser, runAsGroup); dropped", s.User)
		}
	}
	var add, drop []string
	privileged := false
	if t := s.SecurityContext; t != nil {
		privileged = t.Privileged
		if t.ReadOnlyRootFilesystem {
			sc.ReadOnlyRootFilesystem = ptr(true)
		}
		if t.Capabilities != nil {
			add = kubeCaps(t.Capabilities.Add)
			drop = kubeCaps(t.Capabilities.Drop)
		}
	}
	if privileged {
		sc.Privileged = ptr(true)
		c.warn("spec.securityContext.privileged", "kept; the node's --allow-privileged has no Kubernetes equivalent: the namespace's Pod Security level must be privileged")
	} else {
		sc.AllowPrivilegeEscalation = ptr(false)
	}
	if !privileged && !slices.Contains(drop, "ALL") && !slices.Contains(add, "NET_RAW") && !slices.Contains(drop, "NET_RAW") {
		drop = append(drop, "NET_RAW") // the task's default set lacks it; a container runtime's has it
		slices.Sort(drop)
	}
	var beyond []string
	for _, a := range add {
		if !kubeBaselineCaps[a] {
			beyond = append(beyond, a)
		}
	}
	if len(beyond) > 0 && !privileged {
		c.warn("spec.securityContext.capabilities.add", "kept; the node's --allow-capabilities has no Kubernetes equivalent: Pod Security's baseline level refuses %s, so the namespace's level must be privileged", strings.Join(beyond, ", "))
	}
	if len(add) > 0 || len(drop) > 0 {
		sc.Capabilities = &KubeCapabilities{Add: add, Drop: drop}
	}
	return sc
}

// probes maps the health check: the liveness probe, and a startup probe
// when it has a start period (failures within it do not count, and a
// success ends it early, which is a startup probe's behaviour).
func (c *kubeConverter) probes(h *HealthCheck) (startup, liveness *KubeProbe) {
	host := ""
	if c.spec.Network == NetworkHost {
		host = "127.0.0.1" // the reconciler probes the host's loopback; the kubelet the node's address
	}
	p := &KubeProbe{
		PeriodSeconds:    c.seconds("spec.healthCheck.interval", h.Interval.Duration, "periodSeconds"),
		TimeoutSeconds:   c.seconds("spec.healthCheck.timeout", h.Timeout.Duration, "timeoutSeconds"),
		FailureThreshold: h.Retries,
	}
	switch {
	case h.Exec != nil:
		p.Exec = &KubeExecAction{Command: slices.Clone(h.Exec.Command)}
	case h.HTTP != nil:
		p.HTTPGet = &KubeHTTPGetAction{Host: host, Path: h.HTTP.Path, Port: h.HTTP.Port}
	case h.TCP != nil:
		p.TCPSocket = &KubeTCPSocketAction{Host: host, Port: h.TCP.Port}
	default:
		return nil, nil
	}
	if sp := h.StartPeriod.Duration; sp > 0 {
		s := *p
		// Probes within the start period, then retries more failures.
		s.FailureThreshold = int((sp+h.Interval.Duration-1)/h.Interval.Duration) + h.Retries
		startup = &s
	}
	return startup, p
}

// seconds returns d in whole seconds, rounded up, and warns when that
// changed it.
func (c *kubeConverter) seconds(field string, d time.Duration, kubeField string) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if time.Duration(s)*time.Second != d {
		c.warn(field, "%s rounded up to %ds: %s counts whole seconds", d, s, kubeField)
	}
	return s
}

func kubeID(s string) (int64, bool) {
	var n int64
	if s == "" || len(s) > 10 {
		return 0, false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
		n = n*10 + int64(r-'0')
	}
	return n, true
}

// kubeCaps writes capability names as Kubernetes does, without "CAP_".
func kubeCaps(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, strings.TrimPrefix(n, "CAP_"))
	}
	return out
}

// kubeEscape escapes s from the kubelet's expansion of $(VAR) in command,
// args and env values, which a task does not do. The kubelet reads "$$"
// as "$" and "$(NAME)" as a variable, so a run of two or more '$', or one
// before '(', is doubled: the container sees s as written.
func kubeEscape(s string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := i
		for j < len(s) && s[j] == '$' {
			j++
		}
		run := s[i:j]
		if len(run) > 1 || (j < len(s) && s[j] == '(') {
			run += run
		}
		b.WriteString(run)
		i = j
	}
	return b.String()
}

func kubeEscapeAll(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = kubeEscape(s)
	}
	return out
}

var (
	kubeLabelName   = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	kubeLabelPrefix = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// kubeLabelProblem says why k: v is not a valid Kubernetes label, or "".
func kubeLabelProblem(k, v string) string {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		prefix, name = "", k
	}
	switch {
	case hasPrefix && (len(prefix) > 253 || !kubeLabelPrefix.MatchString(prefix)):
		return fmt.Sprintf("the key's prefix %q is not a DNS subdomain, which a Kubernetes label key needs", prefix)
	case len(name) > 63 || !kubeLabelName.MatchString(name):
		return fmt.Sprintf("the key %q is not a Kubernetes label name (at most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit)", k)
	case v != "" && (len(v) > 63 || !kubeLabelName.MatchString(v)):
		return fmt.Sprintf("the value %q is not a Kubernetes label value (at most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit)", v)
	}
	return ""
}
