package runtime

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/warren/reconciler/pkg/desired"
)

// Policy is the node policy: what manifests may ask for beyond the secure
// defaults. It is set by the operator (daemon flags), never by a manifest.
// The zero Policy allows nothing: no privileged mode, no added capability,
// no bind mount.
type Policy struct {
	AllowPrivileged bool
	// AllowCapabilities are the capabilities a manifest may add, by name
	// ("NET_ADMIN" or "CAP_NET_ADMIN"); "ALL" allows any.
	AllowCapabilities []string
	// AllowedBindSources are host path prefixes a bind mount's source may
	// be under (whole path components: /srv allows /srv/site, not /srvx).
	AllowedBindSources []string
	// AllowedSecretSources are host path prefixes a secret's file may be
	// under. A secret copies a host file into the task, so an unrestricted
	// one would let a manifest read any file of the node (/etc/shadow).
	// A secret whose file is a plain name ("db.age") names a file of the
	// manifests directory instead: that directory is allowed for such
	// names only (see WithManifestsDir).
	AllowedSecretSources []string
	// AllowCompatSyscalls keeps every syscall ABI of the node in the tasks'
	// seccomp profile (x86 and x32 besides x86_64 on amd64, arm besides
	// arm64), as Docker's default does. Without it a task gets its image's
	// ABI only (see withSeccomp).
	AllowCompatSyscalls bool
	// AllowedHostPorts are the host ports a bridge task may publish
	// (spec.ports[].hostPort); none when empty.
	AllowedHostPorts []PortRange
}

// PortRange is a range of ports, both ends included.
type PortRange struct{ From, To int }

// DefaultAllowedHostPorts is the daemon's default: the web ports and the
// unprivileged ones. The others (22 above all) stay the host's unless the
// operator says otherwise: a published port takes the host's traffic on it.
const DefaultAllowedHostPorts = "80,443,1024-65535"

// ParsePortRanges reads "80,443,1024-65535".
func ParsePortRanges(s string) ([]PortRange, error) {
	var out []PortRange
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		from, to, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(from)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(to)
		}
		if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
			return nil, fmt.Errorf("%q is not a port or a range of ports such as 1024-65535", part)
		}
		out = append(out, PortRange{a, b})
	}
	return out, nil
}

// PolicyError is a manifest field the node policy refuses. It is permanent:
// retrying cannot help until the manifest or the daemon's flags change.
type PolicyError struct {
	Field string // manifest path, e.g. spec.securityContext.privileged
	Flag  string // the daemon flag that would allow it, with its value
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("%s: denied by node policy (start the reconciler with %s)", e.Field, e.Flag)
}

// Permanent reports that retrying the same manifest cannot succeed.
func (e *PolicyError) Permanent() bool { return true }

// Check returns the first field of s the policy refuses, as a *PolicyError,
// or nil. Bind sources are compared after resolving symlinks, so a link
// inside an allowed directory cannot point outside it.
func (p Policy) Check(s desired.Spec) error {
	if sc := s.SecurityContext; sc != nil {
		if sc.Privileged && !p.AllowPrivileged {
			return &PolicyError{Field: "spec.securityContext.privileged", Flag: "--allow-privileged"}
		}
		if sc.Capabilities != nil && !sc.Privileged {
			for i, c := range sc.Capabilities.Add {
				if !p.capabilityAllowed(c) {
					return &PolicyError{
						Field: fmt.Sprintf("spec.securityContext.capabilities.add[%d]", i),
						Flag:  "--allow-capabilities=" + strings.TrimPrefix(normalizeCap(c), "CAP_"),
					}
				}
			}
		}
	}
	for i, sec := range s.Secrets {
		if sec.InManifestsDir() {
			// A file of the manifests directory, which is an allowed
			// source of such names only: resolved in it when staged,
			// and refused if it leads out of it (secretFiles.path).
			continue
		}
		if !underAny(sec.File, p.AllowedSecretSources) {
			return &PolicyError{
				Field: fmt.Sprintf("spec.secrets[%d].file", i),
				Flag:  "--allowed-secret-sources=" + filepath.Dir(filepath.Clean(sec.File)) + " (or a parent directory)",
			}
		}
	}
	for i, pt := range s.Ports {
		if pt.HostPort == 0 || slices.ContainsFunc(p.AllowedHostPorts, func(r PortRange) bool { return pt.HostPort >= r.From && pt.HostPort <= r.To }) {
			continue
		}
		return &PolicyError{Field: fmt.Sprintf("spec.ports[%d].hostPort", i), Flag: fmt.Sprintf("--allowed-host-ports including %d", pt.HostPort)}
	}
	for i, m := range s.Mounts {
		if m.Type == desired.MountPodSecret && len(p.AllowedSecretSources) == 0 {
			return &PolicyError{Field: fmt.Sprintf("spec.mounts[%d].source", i), Flag: "--allowed-secret-sources=DIR (a directory holding the directory " + m.Source + ")"}
		}
		if m.Type != desired.MountBind {
			continue
		}
		if !p.bindAllowed(m.Source) {
			return &PolicyError{
				Field: fmt.Sprintf("spec.mounts[%d].source", i),
				Flag:  "--allowed-bind-sources=" + filepath.Clean(m.Source) + " (or a parent directory)",
			}
		}
	}
	return nil
}

func (p Policy) capabilityAllowed(c string) bool {
	c = normalizeCap(c)
	for _, a := range p.AllowCapabilities {
		if a = normalizeCap(a); a == "CAP_ALL" || a == c {
			return true
		}
	}
	return false
}

func (p Policy) bindAllowed(src string) bool { return underAny(src, p.AllowedBindSources) }

// underAny reports whether src is under one of the dirs, comparing paths
// with symlinks resolved, so a link inside an allowed directory cannot point
// outside it.
func underAny(src string, dirs []string) bool {
	src = filepath.Clean(src)
	if real, err := filepath.EvalSymlinks(src); err == nil {
		src = real
	}
	for _, a := range dirs {
		if a == "" {
			continue
		}
		a = filepath.Clean(a)
		if real, err := filepath.EvalSymlinks(a); err == nil {
			a = real
		}
		if pathUnder(src, a) {
			return true
		}
	}
	return false
}

// pathUnder reports whether path is dir or below it, by whole components.
func pathUnder(path, dir string) bool {
	if dir == "/" {
		return strings.HasPrefix(path, "/")
	}
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// normalizeCap spells a capability name as the OCI spec does: CAP_NET_ADMIN.
func normalizeCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

func normalizeCaps(cs []string) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		if n := normalizeCap(c); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
