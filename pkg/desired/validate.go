package desired

import (
	"fmt"
	"maps"
	"math"
	"net"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/api/resource"
)

// fieldError is one validation problem, before it is given a file and line.
type fieldError struct {
	field, msg string
}

// validateTask checks a decoded task, header included.
func validateTask(t *Task) []fieldError {
	return append(validateHeader(t.APIVersion, t.Kind), validateBody(t)...)
}

func validateHeader(apiVersion, kind string) []fieldError {
	var errs []fieldError
	switch apiVersion {
	case APIVersion:
	case "":
		errs = append(errs, fieldError{"apiVersion", fmt.Sprintf("required, must be %q", APIVersion)})
	default:
		errs = append(errs, fieldError{"apiVersion", fmt.Sprintf("must be %q, got %q", APIVersion, apiVersion)})
	}
	switch kind {
	case KindTask:
	case "":
		errs = append(errs, fieldError{"kind", fmt.Sprintf("required, must be %q", KindTask)})
	default:
		errs = append(errs, fieldError{"kind", fmt.Sprintf("must be %q, got %q", KindTask, kind)})
	}
	return errs
}

// validateBody checks metadata and spec. Each check is one small function
// of its own so the schema can grow field by field. It accepts a spec with
// or without defaults applied.
func validateBody(t *Task) []fieldError {
	var v validator
	v.name("metadata.name", t.Metadata.Name)
	v.labels("metadata.labels", t.Metadata.Labels)
	s := &t.Spec
	v.image("spec.image", s.Image)
	enum(&v, "spec.imagePullPolicy", s.ImagePullPolicy)
	v.noNUL("spec.command", s.Command)
	v.noNUL("spec.args", s.Args)
	v.env("spec.env", s.Env)
	v.workingDir("spec.workingDir", s.WorkingDir)
	v.user("spec.user", s.User)
	v.resources("spec.resources", s.Resources)
	v.mounts("spec.mounts", s.Mounts, s.Pod != "")
	v.secrets("spec.secrets", s.Secrets)
	enum(&v, "spec.network", s.Network)
	v.ports("spec.ports", *s)
	v.securityContext("spec.securityContext", s.SecurityContext)
	enum(&v, "spec.restartPolicy", s.RestartPolicy)
	v.restartBackoff("spec.restartBackoff", s)
	enum(&v, "spec.updateStrategy", s.UpdateStrategy)
	v.signal("spec.stopSignal", s.StopSignal)
	v.duration("spec.stopGracePeriod", s.StopGracePeriod)
	v.healthCheck("spec.healthCheck", s.HealthCheck)
	v.dependsOn("spec.dependsOn", t.Metadata.Name, s.DependsOn)
	v.duration("spec.minReady", s.MinReady)
	v.duration("spec.progressDeadline", s.ProgressDeadline)
	if s.MinReadyTime() >= 0 && s.Deadline() > 0 && s.Deadline() <= s.MinReadyTime() {
		v.add("spec.progressDeadline", "must be longer than minReady (%s), got %q: no new container could prove itself in time", s.MinReadyTime(), s.Deadline().String())
	}
	if s.ProgressDeadline != nil && s.ProgressDeadline.Duration == 0 {
		v.add("spec.progressDeadline", "must be positive, got \"0s\"")
	}
	return v.errs
}

type validator struct {
	errs []fieldError
}

func (v *validator) add(field, format string, args ...any) {
	v.errs = append(v.errs, fieldError{field, fmt.Sprintf(format, args...)})
}

// dns1123Label is a DNS-1123 label: task names and volume names.
const dns1123Label = `^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`

var dns1123LabelRE = regexp.MustCompile(dns1123Label)

const dns1123Msg = "must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit)"

func (v *validator) name(field, name string) {
	switch {
	case name == "":
		v.add(field, "required")
	case len(name) > 63 || !dns1123LabelRE.MatchString(name):
		v.add(field, dns1123Msg+", got %q", name)
	}
}

func (v *validator) labels(field string, labels map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		switch {
		case k == "":
			v.add(field, "label keys must not be empty")
		case strings.IndexByte(k, 0) >= 0 || strings.IndexByte(labels[k], 0) >= 0:
			v.add(joinPath(field, k), "must not contain a NUL byte")
		}
	}
}

func (v *validator) image(field, image string) {
	if image == "" {
		v.add(field, "required")
		return
	}
	if _, err := reference.ParseNormalizedNamed(image); err != nil {
		v.add(field, "invalid image reference %q: %v", image, err)
	}
}

// enums lists the values of every enumerated string type of the schema. The
// validator and the JSON Schema both read it.
var enums = map[reflect.Type][]string{
	reflect.TypeFor[PullPolicy]():      {string(PullAlways), string(PullIfNotPresent), string(PullNever)},
	reflect.TypeFor[NetworkMode]():     {string(NetworkHost), string(NetworkNone), string(NetworkBridge)},
	reflect.TypeFor[Protocol]():        {string(ProtocolTCP), string(ProtocolUDP)},
	reflect.TypeFor[RestartPolicy]():   {string(RestartAlways), string(RestartOnFailure), string(RestartNever)},
	reflect.TypeFor[UpdateStrategy]():  {string(UpdateStopFirst), string(UpdateStartFirst)},
	reflect.TypeFor[MountType]():       {string(MountBind), string(MountVolume), string(MountTmpfs)},
	reflect.TypeFor[DependCondition](): {string(DependRunning), string(DependHealthy), string(DependCompleted)},
	reflect.TypeFor[OnUnhealthy]():     {string(OnUnhealthyRestart), string(OnUnhealthyNone)},
}

// enum checks a value of one of the types in enums; "" means the default.
func enum[T ~string](v *validator, field string, val T) {
	s := string(val)
	if s == "" {
		return
	}
	allowed := enums[reflect.TypeFor[T]()]
	if slices.Contains(allowed, s) {
		return
	}
	for _, a := range allowed {
		if strings.EqualFold(a, s) {
			v.add(field, "must be one of %s, got %q; did you mean %q?", strings.Join(allowed, ", "), s, a)
			return
		}
	}
	v.add(field, "must be one of %s, got %q", strings.Join(allowed, ", "), s)
}

func (v *validator) noNUL(field string, list []string) {
	for i, s := range list {
		if strings.IndexByte(s, 0) >= 0 {
			v.add(fmt.Sprintf("%s[%d]", field, i), "must not contain a NUL byte")
		}
	}
}

const envName = `^[A-Za-z_][A-Za-z0-9_]*$`

var envNameRE = regexp.MustCompile(envName)

func (v *validator) env(field string, env []EnvVar) {
	first := map[string]int{}
	for i, e := range env {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case e.Name == "":
			v.add(f+".name", "required")
		case !envNameRE.MatchString(e.Name):
			v.add(f+".name", "must be a valid environment variable name, got %q", e.Name)
		default:
			if j, dup := first[e.Name]; dup {
				v.add(f+".name", "duplicate environment variable %q, first at %s[%d]", e.Name, field, j)
			} else {
				first[e.Name] = i
			}
		}
		if strings.IndexByte(e.Value, 0) >= 0 {
			v.add(f+".value", "must not contain a NUL byte")
		}
	}
}

func (v *validator) workingDir(field, dir string) {
	switch {
	case dir == "":
	case !strings.HasPrefix(dir, "/"):
		v.add(field, "must be an absolute path, got %q", dir)
	case strings.IndexByte(dir, 0) >= 0:
		v.add(field, "must not contain a NUL byte")
	}
}

// userPattern is "uid" or "uid:gid", numeric.
const userPattern = `^[0-9]+(:[0-9]+)?$`

func (v *validator) user(field, user string) {
	if user == "" {
		return
	}
	uid, gid, hasGID := strings.Cut(user, ":")
	ids := []string{uid}
	if hasGID {
		ids = append(ids, gid)
	}
	for _, id := range ids {
		if id == "" || strings.Trim(id, "0123456789") != "" {
			v.add(field, `must be numeric, "uid" or "uid:gid" such as "1000" or "1000:1000", got %q: user and group names would need the image's /etc/passwd and /etc/group, which are not read`, user)
			return
		}
		if _, err := strconv.ParseUint(id, 10, 32); err != nil {
			v.add(field, "ids must be at most %d, got %q", uint32(math.MaxUint32), user)
			return
		}
	}
}

func (v *validator) resources(field string, r *Resources) {
	if r == nil {
		return
	}
	if q := r.CPU; q != nil {
		switch {
		case q.Sign() <= 0:
			v.add(field+".cpu", "quantities must be positive, got %q", q.String())
		case q.Cmp(resource.MustParse("1m")) < 0:
			v.add(field+".cpu", "must be at least 1m (a thousandth of a core), got %q", q.String())
		case q.Cmp(maxCPU) > 0:
			v.add(field+".cpu", "must be at most %s cores, got %q", maxCPU.String(), q.String())
		}
	}
	v.bytes(field+".memory", r.Memory)
	if r.Pids != nil && *r.Pids <= 0 {
		v.add(field+".pids", "must be positive, got %d", *r.Pids)
	}
}

var (
	maxCPU   = *resource.NewQuantity(1_000_000, resource.DecimalSI)
	maxBytes = *resource.NewQuantity(math.MaxInt64, resource.BinarySI)
)

// bytes checks a quantity of bytes: positive and whole.
func (v *validator) bytes(field string, q *resource.Quantity) {
	switch {
	case q == nil:
	case q.Sign() <= 0:
		v.add(field, "quantities must be positive, got %q", q.String())
	case q.Cmp(maxBytes) > 0:
		v.add(field, "must be at most %d bytes, got %q", int64(math.MaxInt64), q.String())
	case q.MilliValue()%1000 != 0:
		hint := ""
		if strings.HasSuffix(q.String(), "m") {
			hint = fmt.Sprintf(` ("m" is milli: did you mean %q?)`, strings.TrimSuffix(q.String(), "m")+"Mi")
		}
		v.add(field, "must be a whole number of bytes, got %q%s", q.String(), hint)
	}
}

// absClean checks a path that must be absolute and clean.
func (v *validator) absClean(field, p string) bool {
	switch {
	case p == "":
		v.add(field, "required")
	case strings.IndexByte(p, 0) >= 0:
		v.add(field, "must not contain a NUL byte")
	case !strings.HasPrefix(p, "/"):
		v.add(field, "must be an absolute path, got %q", p)
	case path.Clean(p) != p:
		v.add(field, "must be a clean path (no \"..\", \".\", \"//\" or trailing \"/\"): %q, not %q", path.Clean(p), p)
	default:
		return true
	}
	return false
}

// under reports whether p is dir or inside it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

func (v *validator) mounts(field string, mounts []Mount, pod bool) {
	targets := map[string]int{}
	for i, m := range mounts {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case m.Type == "":
			v.add(f+".type", "required, must be one of %s", strings.Join(enums[reflect.TypeFor[MountType]()], ", "))
		case (m.Type == MountPodDir || m.Type == MountPodSecret) && pod:
			if m.Source == "" {
				v.add(f+".source", "required: the volume's name")
			}
		default:
			enum(v, f+".type", m.Type)
		}
		if v.absClean(f+".target", m.Target) {
			switch {
			case m.Target == "/":
				v.add(f+".target", "must not be the root directory")
			case under(m.Target, "/proc"), under(m.Target, "/sys"):
				v.add(f+".target", "must not be under /proc or /sys, got %q", m.Target)
			case under(m.Target, SecretsDir):
				v.add(f+".target", "must not be under %s, which holds the task's secrets, got %q", SecretsDir, m.Target)
			default:
				if j, dup := targets[m.Target]; dup {
					v.add(f+".target", "duplicate mount target %q, first at %s[%d]", m.Target, field, j)
				} else {
					targets[m.Target] = i
				}
			}
		}
		switch m.Type {
		case MountTmpfs:
			if m.Source != "" {
				v.add(f+".source", "must be empty for a tmpfs mount, got %q", m.Source)
			}
			v.bytes(f+".size", m.Size)
		case MountVolume:
			switch {
			case m.Source == "":
				v.add(f+".source", "required: the volume's name")
			case len(m.Source) > 63 || !dns1123LabelRE.MatchString(m.Source):
				v.add(f+".source", "volume names "+dns1123Msg+", got %q", m.Source)
			}
		case MountBind:
			v.absClean(f+".source", m.Source)
		}
		if m.Size != nil && m.Type != MountTmpfs {
			v.add(f+".size", "only a tmpfs mount has a size")
		}
	}
}

// secretName is a file name: letters, digits, '.', '-', '_'; not "." or
// ".." (the rule of a Kubernetes Secret's keys).
const secretName = `^[-._a-zA-Z0-9]+$`

var secretNameRE = regexp.MustCompile(secretName)

// secretFilePattern is the schema's pattern of a secret's file: an
// absolute path, or a file name not starting with '.' (validation says
// more: see [SecretFileName]).
const secretFilePattern = `^(/|[-_a-zA-Z0-9][-._a-zA-Z0-9]*$)`

func (v *validator) secrets(field string, secrets []Secret) {
	first := map[string]int{}
	for i, s := range secrets {
		f := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case s.Name == "":
			v.add(f+".name", "required")
		case len(s.Name) > 253 || !secretNameRE.MatchString(s.Name) || s.Name == "." || s.Name == "..":
			v.add(f+".name", `must be a file name of at most 253 letters, digits, '.', '-' and '_' (not "." or ".."), got %q`, s.Name)
		default:
			if j, dup := first[s.Name]; dup {
				v.add(f+".name", "duplicate secret %q, first at %s[%d]", s.Name, field, j)
			} else {
				first[s.Name] = i
			}
		}
		v.secretFile(f+".file", s.File)
	}
}

// secretFile: an absolute, clean host path, or a plain file name of the
// manifests directory (see [SecretFileName]).
func (v *validator) secretFile(field, p string) {
	if p == "" || strings.HasPrefix(p, "/") {
		v.absClean(field, p)
		return
	}
	switch {
	case strings.Contains(p, "/"), p == ".", p == "..":
		v.add(field, `must be an absolute host path, or the plain name of a file of the manifests directory (no "/", ".." or "."), got %q`, p)
	case !Ignored(p):
		v.add(field, "must not name a manifest of the directory, got %q", p)
	case !SecretFileName(p):
		v.add(field, `a file of the manifests directory must be named with at most 253 letters, digits, '.', '-' and '_', not starting with '.' (e.g. "db-password.age"), got %q`, p)
	}
}

func (v *validator) securityContext(field string, c *SecurityContext) {
	if c == nil || c.Capabilities == nil {
		return
	}
	field += ".capabilities"
	added := map[string]bool{}
	for i, name := range c.Capabilities.Add {
		f := fmt.Sprintf("%s.add[%d]", field, i)
		n, ok := normalizeCap(name)
		switch {
		case n == "ALL":
			v.add(f, `"ALL" may only be dropped; add the capabilities the task needs by name`)
		case !ok:
			v.add(f, "unknown capability %q; known are the Linux capabilities such as NET_BIND_SERVICE or CAP_NET_ADMIN", name)
		default:
			added[n] = true
		}
	}
	for i, name := range c.Capabilities.Drop {
		f := fmt.Sprintf("%s.drop[%d]", field, i)
		n, ok := normalizeCap(name)
		switch {
		case n == "ALL":
		case !ok:
			v.add(f, "unknown capability %q; known are \"ALL\" and the Linux capabilities such as NET_RAW or CAP_SYS_ADMIN", name)
		case added[n]:
			v.add(f, "capability %q is both added and dropped", name)
		}
	}
}

func (v *validator) restartBackoff(field string, s *Spec) {
	b := s.RestartBackoff
	if b == nil {
		return
	}
	v.positive(field+".initial", b.Initial)
	v.positive(field+".max", b.Max)
	v.positive(field+".resetAfter", b.ResetAfter)
	initial, max, _ := s.Backoff()
	if initial > 0 && max > 0 && initial > max {
		f := field + ".initial"
		if b.Initial == nil {
			f = field + ".max"
		}
		v.add(f, "initial (%s) must not be longer than max (%s)", initial, max)
	}
}

func (v *validator) positive(field string, d *Duration) {
	if d != nil && d.Duration <= 0 {
		v.add(field, "must be positive, got %q", d.Duration.String())
	}
}

func (v *validator) healthCheck(field string, h *HealthCheck) {
	if h == nil {
		return
	}
	if h.Disabled {
		if h.Exec != nil || h.HTTP != nil || h.TCP != nil || h.Interval != nil || h.Timeout != nil || h.Retries != 0 || h.StartPeriod != nil || h.OnUnhealthy != "" {
			v.add(field+".disabled", "true turns health checking off: it takes no probe and no timing")
		}
		return
	}
	enum(v, field+".onUnhealthy", h.OnUnhealthy)
	var kinds []string
	if h.Exec != nil {
		kinds = append(kinds, "exec")
		switch {
		case len(h.Exec.Command) == 0:
			v.add(field+".exec.command", "required: the command to run in the container")
		case h.Exec.Command[0] == "":
			v.add(field+".exec.command[0]", "must not be empty")
		}
		v.noNUL(field+".exec.command", h.Exec.Command)
	}
	if h.HTTP != nil {
		kinds = append(kinds, "http")
		v.port(field+".http.port", h.HTTP.Port)
		p := h.HTTP.Path
		switch {
		case p == "":
		case !strings.HasPrefix(p, "/"):
			v.add(field+".http.path", "must start with \"/\", got %q", p)
		case strings.ContainsAny(p, " \t\r\n\x00"):
			v.add(field+".http.path", "must not contain blanks or control characters, got %q", p)
		}
	}
	if h.TCP != nil {
		kinds = append(kinds, "tcp")
		v.port(field+".tcp.port", h.TCP.Port)
	}
	switch len(kinds) {
	case 0:
		v.add(field, "needs exactly one probe: exec, http or tcp")
	case 1:
	default:
		v.add(field, "needs exactly one probe: exec, http or tcp, got %s", strings.Join(kinds, " and "))
	}
	v.positive(field+".interval", h.Interval)
	v.positive(field+".timeout", h.Timeout)
	v.duration(field+".startPeriod", h.StartPeriod)
	if h.Retries < 0 {
		v.add(field+".retries", "must be positive, got %d", h.Retries)
	}
}

// ports checks a bridge task's ports: each valid, a container port and
// protocol once, a host port and protocol once on overlapping host
// addresses, and none for another network or under start-first (the new
// container could not take the host port the old one holds).
func (v *validator) ports(field string, s Spec) {
	if len(s.Ports) == 0 {
		return
	}
	if s.Network != NetworkBridge {
		v.add(field, "only for network: bridge (the task's network is %q)", orDefault(string(s.Network), string(DefaultNetwork)))
		return
	}
	seen := map[string]int{}
	for i, p := range s.Ports {
		f := fmt.Sprintf("%s[%d]", field, i)
		v.port(f+".containerPort", p.ContainerPort)
		enum(v, f+".protocol", p.Protocol)
		proto := orDefault(string(p.Protocol), string(ProtocolTCP))
		key := fmt.Sprintf("c/%d/%s", p.ContainerPort, proto)
		if j, dup := seen[key]; dup {
			v.add(f+".containerPort", "%d/%s is already at %s[%d]", p.ContainerPort, proto, field, j)
		}
		seen[key] = i
		if p.HostIP != "" {
			if ip := net.ParseIP(p.HostIP); ip == nil {
				v.add(f+".hostIP", "must be an IP address, got %q", p.HostIP)
			}
			if p.HostPort == 0 {
				v.add(f+".hostIP", "is only for a published port: set hostPort")
			}
		}
		if p.HostPort == 0 {
			continue
		}
		v.port(f+".hostPort", p.HostPort)
		if s.UpdateStrategy == UpdateStartFirst {
			v.add(f+".hostPort", "a published port needs updateStrategy: stop-first (under start-first the new container would need the host port the old one holds)")
		}
		hkey := fmt.Sprintf("h/%d/%s", p.HostPort, proto)
		if j, dup := seen[hkey]; dup {
			v.add(f+".hostPort", "%d/%s is already published at %s[%d]", p.HostPort, proto, field, j)
		}
		seen[hkey] = i
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (v *validator) port(field string, port int) {
	if port < 1 || port > 65535 {
		v.add(field, "must be a port from 1 to 65535, got %d", port)
	}
}

func (v *validator) signal(field, sig string) {
	if sig == "" {
		return
	}
	if _, ok := normalizeSignal(sig); !ok {
		v.add(field, "unknown signal %q, must be a signal name such as SIGTERM, SIGINT, SIGQUIT or SIGKILL", sig)
	}
}

func (v *validator) duration(field string, d *Duration) {
	if d != nil && d.Duration < 0 {
		v.add(field, "must not be negative, got %q", d.Duration.String())
	}
}

// signals are the Linux signal names a task may be stopped with. It is a
// table rather than golang.org/x/sys/unix so that validation gives the same
// answer on every platform the binary is built for.
var signals = map[string]bool{
	"SIGHUP": true, "SIGINT": true, "SIGQUIT": true, "SIGILL": true, "SIGTRAP": true,
	"SIGABRT": true, "SIGBUS": true, "SIGFPE": true, "SIGKILL": true,
	"SIGUSR1": true, "SIGSEGV": true, "SIGUSR2": true, "SIGPIPE": true, "SIGALRM": true,
	"SIGTERM": true, "SIGSTKFLT": true, "SIGCHLD": true, "SIGCONT": true, "SIGSTOP": true,
	"SIGTSTP": true, "SIGTTIN": true, "SIGTTOU": true, "SIGURG": true, "SIGXCPU": true,
	"SIGXFSZ": true, "SIGVTALRM": true, "SIGPROF": true, "SIGWINCH": true, "SIGIO": true,
	"SIGPWR": true, "SIGSYS": true,
}

// normalizeSignal turns "term", "TERM" or "SIGTERM" into "SIGTERM".
func normalizeSignal(s string) (string, bool) {
	n := strings.ToUpper(s)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	return n, signals[n]
}

// capabilities are the Linux capabilities (as of Linux 6.x), by their
// "CAP_" names. A fixed table, like signals, so that validation does not
// depend on the machine.
var capabilities = map[string]bool{
	"CAP_CHOWN": true, "CAP_DAC_OVERRIDE": true, "CAP_DAC_READ_SEARCH": true, "CAP_FOWNER": true,
	"CAP_FSETID": true, "CAP_KILL": true, "CAP_SETGID": true, "CAP_SETUID": true, "CAP_SETPCAP": true,
	"CAP_LINUX_IMMUTABLE": true, "CAP_NET_BIND_SERVICE": true, "CAP_NET_BROADCAST": true,
	"CAP_NET_ADMIN": true, "CAP_NET_RAW": true, "CAP_IPC_LOCK": true, "CAP_IPC_OWNER": true,
	"CAP_SYS_MODULE": true, "CAP_SYS_RAWIO": true, "CAP_SYS_CHROOT": true, "CAP_SYS_PTRACE": true,
	"CAP_SYS_PACCT": true, "CAP_SYS_ADMIN": true, "CAP_SYS_BOOT": true, "CAP_SYS_NICE": true,
	"CAP_SYS_RESOURCE": true, "CAP_SYS_TIME": true, "CAP_SYS_TTY_CONFIG": true, "CAP_MKNOD": true,
	"CAP_LEASE": true, "CAP_AUDIT_WRITE": true, "CAP_AUDIT_CONTROL": true, "CAP_SETFCAP": true,
	"CAP_MAC_OVERRIDE": true, "CAP_MAC_ADMIN": true, "CAP_SYSLOG": true, "CAP_WAKE_ALARM": true,
	"CAP_BLOCK_SUSPEND": true, "CAP_AUDIT_READ": true, "CAP_PERFMON": true, "CAP_BPF": true,
	"CAP_CHECKPOINT_RESTORE": true,
}

// normalizeCap turns "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" into
// "CAP_NET_ADMIN", and any spelling of "all" into "ALL".
func normalizeCap(s string) (string, bool) {
	n := strings.ToUpper(s)
	if n == "ALL" || n == "CAP_ALL" {
		return "ALL", true
	}
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	return n, capabilities[n]
}

// normalizeCaps normalizes a list of capability names, sorted, without
// duplicates; unknown names are kept as written. Nil stays nil.
func normalizeCaps(names []string) []string {
	if names == nil {
		return nil
	}
	out := make([]string, 0, len(names))
	for _, name := range names {
		if n, ok := normalizeCap(name); ok {
			name = n
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (v *validator) dependsOn(field, self string, deps []Dependency) {
	seen := map[string]int{}
	for i, d := range deps {
		f := fmt.Sprintf("%s[%d]", field, i)
		v.name(f+".task", d.Task)
		enum(v, f+".condition", d.Condition)
		switch first, dup := seen[d.Task]; {
		case d.Task == "":
		case d.Task == self:
			v.add(f+".task", "a task cannot depend on itself")
		case dup:
			v.add(f+".task", "%q is already a dependency (%s[%d])", d.Task, field, first)
		default:
			seen[d.Task] = i
		}
	}
}
