package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"

	"filippo.io/age"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/warren/reconciler/pkg/desired"
)

// FieldError is a manifest field the runtime cannot apply as written (an
// unknown capability, a malformed user). Like PolicyError it is permanent.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Permanent reports that retrying the same manifest cannot succeed.
func (e *FieldError) Permanent() bool { return true }

// specInput is what the OCI spec of a container is built from.
type specInput struct {
	img             containerd.Image
	entrypoint, cmd []string
	spec            desired.Spec
	volumesDir      string // named volumes live in volumesDir/NAME
	secretsDir      string // this container's staged secrets
	secretFiles     secretFiles
	secretSources   []string // the node's allowed secret sources: where a pod's secret volumes are
	imageArch       string   // the image config's architecture (GOARCH names)
	compatABIs      bool     // the node allows its 32-bit syscall ABIs to every task

	// The user of the process, when known for this image and spec.user
	// (see users): the image's files are not read for it. Else remember,
	// if set, records the user found.
	imageConfig ocispec.ImageConfig
	user        *specs.User
	remember    oci.SpecOpts

	net     bridgeFiles // network: bridge only
	sandbox *sandbox    // a pod's container: what it shares with the pod's others
}

// bridgeFiles are what a bridge task's spec points at: its pinned network
// namespace, its /etc/hosts and /etc/resolv.conf (host files, bind
// mounted), and its host name.
type bridgeFiles struct {
	netns, hosts, resolv, hostname string
}

// specOpts builds the OCI spec from the image config and the manifest, one
// option per field, then the secure defaults. command replaces the image's
// ENTRYPOINT and args its CMD, as Docker and Kubernetes do.
func specOpts(in specInput) ([]oci.SpecOpts, error) {
	s := in.spec
	image := oci.WithImageConfig(in.img)
	if in.user != nil {
		image = withImageConfigUser(in.imageConfig, *in.user)
	}
	opts := []oci.SpecOpts{
		image,
		oci.WithProcessArgs(processArgs(in.entrypoint, in.cmd, s.Command, s.Args)...),
	}
	opts = append(opts, networkOpts(s.Network, in.net)...)
	podDir := ""
	if in.sandbox != nil {
		opts = append(opts, sandboxOpts(*in.sandbox)...)
		podDir = in.sandbox.dir
	}
	if len(s.Env) > 0 {
		env := make([]string, 0, len(s.Env))
		for _, e := range s.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		opts = append(opts, oci.WithEnv(env))
	}
	if s.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(s.WorkingDir))
	}
	if s.User != "" && in.user == nil {
		o, err := userOpt(s.User)
		if err != nil {
			return nil, err
		}
		opts = append(opts, o)
	}
	if in.user == nil && in.remember != nil {
		opts = append(opts, in.remember) // the user is final from here on
	}
	opts = append(opts, resourceOpts(s.Resources)...)
	mounts, err := mountSpecs(s.Mounts, in.volumesDir, podDir)
	if err != nil {
		return nil, err
	}
	if len(mounts) > 0 {
		opts = append(opts, oci.WithMounts(mounts))
	}
	sec, err := securityOpts(s.SecurityContext)
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
	if len(s.Secrets) > 0 {
		// Last but seccomp: it reads the final user to own the files.
		opts = append(opts, withSecrets(in.secretsDir, s.Secrets, in.secretFiles))
	}
	if slices.ContainsFunc(s.Mounts, func(m desired.Mount) bool { return m.Type == desired.MountPodSecret }) {
		opts = append(opts, withSecretVolumes(in.secretsDir, s.Mounts, in.secretSources))
	}
	// The default seccomp profile depends on the capabilities: it comes last.
	opts = append(opts, withSeccomp(goruntime.GOARCH, in.imageArch, in.compatABIs))
	return opts, nil
}

// withSeccomp applies containerd's default seccomp profile (computed from
// the capabilities, so it must come last), keeping in it only the syscall
// ABIs the task can use: the node's native one, plus its 32-bit one when
// the image is built for it (386 on amd64, arm on arm64), or all the
// profile lists when compat is set. Containerd's profile lists every ABI of
// the node (x86_64, x86 and x32 on amd64), as Docker's does: a 64-bit
// workload does not need the others, and leaving them out both shuts a
// kernel surface that exploits have used and makes runc's filter a third of
// the size (it compiles it at every start, so every start is faster;
// docs/benchmarks.md). A 32-bit program inside a 64-bit image is killed by
// SIGSYS at its first syscall; the node flag --allow-compat-syscalls is the
// way out.
func withSeccomp(nodeArch, imageArch string, compat bool) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *oci.Spec) error {
		if err := seccomp.WithDefaultProfile()(ctx, client, c, s); err != nil {
			return err
		}
		if !compat && s.Linux != nil && s.Linux.Seccomp != nil {
			s.Linux.Seccomp.Architectures = seccompArches(nodeArch, imageArch, s.Linux.Seccomp.Architectures)
		}
		return nil
	}
}

// WithSeccompProfile is the seccomp profile the runtime gives a container
// of an image built for imageArch (GOARCH names) on this node, unless the
// node policy allows the compat ABIs: for those who compare with it (the
// benchmark's reference rows). It must come after every option that
// changes the capabilities.
func WithSeccompProfile(imageArch string) oci.SpecOpts {
	return withSeccomp(goruntime.GOARCH, imageArch, false)
}

// nativeABI is the seccomp architecture of a node's own (64-bit) ABI, and
// compatABI the 32-bit one of an image architecture it can also run.
var (
	nativeABI = map[string]specs.Arch{
		"amd64": specs.ArchX86_64, "arm64": specs.ArchAARCH64, "s390x": specs.ArchS390X,
		"ppc64le": specs.ArchPPC64LE, "riscv64": specs.ArchRISCV64, "loong64": specs.ArchLOONGARCH64,
		"mips64": specs.ArchMIPS64, "mips64le": specs.ArchMIPSEL64,
	}
	compatABI = map[[2]string]specs.Arch{
		{"amd64", "386"}: specs.ArchX86, {"arm64", "arm"}: specs.ArchARM, {"s390x", "s390"}: specs.ArchS390,
		{"mips64", "mips"}: specs.ArchMIPS, {"mips64le", "mipsle"}: specs.ArchMIPSEL,
	}
)

// seccompArches narrows the profile's ABIs (all) for an image of imageArch
// on a node of nodeArch. A node the table does not know keeps all.
func seccompArches(nodeArch, imageArch string, all []specs.Arch) []specs.Arch {
	native, ok := nativeABI[nodeArch]
	if !ok || !slices.Contains(all, native) {
		return all
	}
	keep := []specs.Arch{native}
	if a, ok := compatABI[[2]string{nodeArch, imageArch}]; ok && slices.Contains(all, a) {
		keep = append(keep, a)
	}
	return keep
}

// networkOpts: host shares the host's network namespace, /etc/hosts and
// /etc/resolv.conf; none keeps the new network namespace of the default
// spec, in which runc brings up only the loopback interface; bridge joins
// the namespace the network set up (pinned), with its own host name and
// the /etc/hosts and /etc/resolv.conf the runtime keeps for it.
func networkOpts(n desired.NetworkMode, b bridgeFiles) []oci.SpecOpts {
	switch n {
	case desired.NetworkNone:
		return nil
	case desired.NetworkBridge:
		ro := []string{"rbind", "ro", "nosuid", "nodev", "noexec"}
		return []oci.SpecOpts{
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: b.netns}),
			oci.WithHostname(b.hostname),
			oci.WithMounts([]specs.Mount{
				{Destination: "/etc/hosts", Type: "bind", Source: b.hosts, Options: ro},
				{Destination: "/etc/resolv.conf", Type: "bind", Source: b.resolv, Options: ro},
			}),
		}
	}
	return []oci.SpecOpts{
		oci.WithHostNamespace(specs.NetworkNamespace),
		oci.WithHostHostsFile,
		oci.WithHostResolvconf,
	}
}

// parseUser reads "uid" or "uid:gid"; hasGID is false for "uid".
func parseUser(u string) (uid, gid uint32, hasGID bool, err error) {
	us, gs, hasGID := strings.Cut(u, ":")
	uid64, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return 0, 0, false, &FieldError{Field: "spec.user", Reason: fmt.Sprintf("must be \"uid\" or \"uid:gid\" with numeric ids, got %q", u)}
	}
	if !hasGID {
		return uint32(uid64), 0, false, nil
	}
	gid64, err := strconv.ParseUint(gs, 10, 32)
	if err != nil {
		return 0, 0, false, &FieldError{Field: "spec.user", Reason: fmt.Sprintf("must be \"uid\" or \"uid:gid\" with numeric ids, got %q", u)}
	}
	return uint32(uid64), uint32(gid64), true, nil
}

// userOpt: "uid:gid" is used as given; "uid" takes its group from the
// image's /etc/passwd, or 0 when the image has no entry for it.
func userOpt(u string) (oci.SpecOpts, error) {
	uid, gid, hasGID, err := parseUser(u)
	if err != nil {
		return nil, err
	}
	if hasGID {
		return oci.WithUIDGID(uid, gid), nil
	}
	return oci.WithUserID(uid), nil
}

// CFS period used for cpu limits, as Docker and Kubernetes use it.
const cfsPeriod = 100000

// cpuLimits maps a cpu quantity (cores) to a CFS quota and period and to cpu
// shares (1024 per core), with the kernel's bounds: a quota of at least 1 ms,
// shares between 2 and 262144.
func cpuLimits(q resource.Quantity) (quota int64, period uint64, shares uint64) {
	milli := q.MilliValue()
	quota = milli * cfsPeriod / 1000
	quota = max(quota, 1000)
	sh := milli * 1024 / 1000
	sh = min(max(sh, 2), 262144)
	return quota, cfsPeriod, uint64(sh)
}

// resourceOpts maps resources to cgroup limits. Memory swap is limited to
// the memory limit, so a task cannot swap its way past it.
func resourceOpts(r *desired.Resources) []oci.SpecOpts {
	if r == nil {
		return nil
	}
	var opts []oci.SpecOpts
	if r.CPU != nil && !r.CPU.IsZero() {
		quota, period, shares := cpuLimits(*r.CPU)
		opts = append(opts, oci.WithCPUCFS(quota, period), oci.WithCPUShares(shares))
	}
	if r.Memory != nil && !r.Memory.IsZero() {
		limit := r.Memory.Value()
		opts = append(opts, oci.WithMemoryLimit(uint64(limit)), oci.WithMemorySwap(limit))
	}
	if r.Pids != nil && *r.Pids > 0 {
		opts = append(opts, oci.WithPidsLimit(*r.Pids))
	}
	return opts
}

// mountSpecs turns the manifest's mounts into OCI mounts. A named volume is
// the directory volumesDir/NAME, created on first use and kept when the
// container goes. Bind sources must exist (the node policy has already
// allowed them).
func mountSpecs(ms []desired.Mount, volumesDir, podDir string) ([]specs.Mount, error) {
	var out []specs.Mount
	for i, m := range ms {
		field := fmt.Sprintf("spec.mounts[%d]", i)
		if !filepath.IsAbs(m.Target) {
			return nil, &FieldError{Field: field + ".target", Reason: fmt.Sprintf("must be an absolute path, got %q", m.Target)}
		}
		rw := "rw"
		if m.ReadOnly {
			rw = "ro"
		}
		switch m.Type {
		case desired.MountBind:
			if _, err := os.Stat(m.Source); err != nil {
				return nil, fmt.Errorf("%s.source: %w", field, err)
			}
			out = append(out, specs.Mount{Type: "bind", Source: filepath.Clean(m.Source), Destination: m.Target,
				Options: []string{"rbind", "rprivate", rw}})
		case desired.MountVolume:
			if !validVolumeName(m.Source) {
				return nil, &FieldError{Field: field + ".source", Reason: fmt.Sprintf("invalid volume name %q", m.Source)}
			}
			if volumesDir == "" {
				return nil, fmt.Errorf("%s: named volumes need a state directory", field)
			}
			dir := filepath.Join(volumesDir, m.Source)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("%s: create volume %s: %w", field, m.Source, err)
			}
			out = append(out, specs.Mount{Type: "bind", Source: dir, Destination: m.Target,
				Options: []string{"rbind", "rprivate", rw}})
		case desired.MountPodDir:
			if !validVolumeName(m.Source) {
				return nil, &FieldError{Field: field + ".source", Reason: fmt.Sprintf("invalid volume name %q", m.Source)}
			}
			if podDir == "" {
				return nil, &FieldError{Field: field + ".type", Reason: "an emptyDir is a pod's container's only"}
			}
			// Kubernetes' emptyDir: a directory of the pod's, writable by
			// every user of its containers, gone with the pod.
			dir := filepath.Join(podDir, "volumes", m.Source)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("%s: create emptyDir %s: %w", field, m.Source, err)
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				return nil, fmt.Errorf("%s: emptyDir %s: %w", field, m.Source, err)
			}
			out = append(out, specs.Mount{Type: "bind", Source: dir, Destination: m.Target,
				Options: []string{"rbind", "rprivate", rw}})
		case desired.MountPodSecret:
			continue // staged with the user known (withSecretVolumes)
		case desired.MountTmpfs:
			out = append(out, specs.Mount{Type: "tmpfs", Source: "tmpfs", Destination: m.Target,
				Options: tmpfsOptions(m.Size, m.ReadOnly)})
		default:
			return nil, &FieldError{Field: field + ".type", Reason: fmt.Sprintf("unknown mount type %q", m.Type)}
		}
	}
	return out, nil
}

func tmpfsOptions(size *resource.Quantity, readOnly bool) []string {
	opts := []string{"nosuid", "nodev", "mode=1777"}
	if size != nil && !size.IsZero() {
		opts = append(opts, "size="+strconv.FormatInt(size.Value(), 10))
	}
	if readOnly {
		opts = append(opts, "ro")
	}
	return opts
}

func validVolumeName(n string) bool {
	if n == "" || n == "." || n == ".." || len(n) > 253 {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// securityOpts applies the secure defaults and the security context:
// NET_RAW dropped, no new privileges, containerd's default masked and
// read-only paths (from the default spec), then the manifest's capability
// drops and adds, privileged mode and a read-only root filesystem. The node
// policy has already been checked.
func securityOpts(sc *desired.SecurityContext) ([]oci.SpecOpts, error) {
	opts := []oci.SpecOpts{
		oci.WithDroppedCapabilities([]string{"CAP_NET_RAW"}),
		oci.WithNoNewPrivileges,
	}
	if sc == nil {
		return opts, nil
	}
	if sc.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	} else if c := sc.Capabilities; c != nil {
		drop, add := normalizeCaps(c.Drop), normalizeCaps(c.Add)
		known := cap.Known()
		for i, d := range drop {
			if d != "CAP_ALL" && !slices.Contains(known, d) {
				return nil, &FieldError{Field: fmt.Sprintf("spec.securityContext.capabilities.drop[%d]", i), Reason: fmt.Sprintf("unknown capability %q", c.Drop[i])}
			}
		}
		for i, a := range add {
			if a == "CAP_ALL" || !slices.Contains(known, a) {
				return nil, &FieldError{Field: fmt.Sprintf("spec.securityContext.capabilities.add[%d]", i), Reason: fmt.Sprintf("unknown capability %q", c.Add[i])}
			}
		}
		if slices.Contains(drop, "CAP_ALL") {
			opts = append(opts, oci.WithCapabilities(nil))
		} else if len(drop) > 0 {
			opts = append(opts, oci.WithDroppedCapabilities(drop))
		}
		if len(add) > 0 {
			opts = append(opts, oci.WithAddedCapabilities(add))
		}
	}
	if sc.ReadOnlyRootFilesystem {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	return opts, nil
}

// withSecrets stages each secret's content in dir, owned by the process's
// user with mode 0400, and bind-mounts it read-only at /run/secrets/NAME.
// The content is that of a host file, or of a file of the manifests
// directory, decrypted first when its name ends in ".age" (see
// secretFiles). It is taken when the container is created; it never goes
// into the spec, labels, logs or errors, and the clear text of an
// encrypted file is written nowhere but in dir.
func withSecrets(dir string, secrets []desired.Secret, files secretFiles) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if dir == "" {
			return fmt.Errorf("spec.secrets: secrets need a state directory")
		}
		uid, gid := 0, 0
		if s.Process != nil {
			uid, gid = int(s.Process.User.UID), int(s.Process.User.GID)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("spec.secrets: %w", err)
		}
		var ids []age.Identity // read at the first encrypted secret
		for i, sec := range secrets {
			if !validVolumeName(sec.Name) {
				return &FieldError{Field: fmt.Sprintf("spec.secrets[%d].name", i), Reason: fmt.Sprintf("invalid secret name %q", sec.Name)}
			}
			content, err := files.content(i, sec, &ids)
			if err != nil {
				return err
			}
			dst := filepath.Join(dir, sec.Name)
			err = writeSecret(content, dst, uid, gid)
			content.Close()
			if err != nil {
				return fmt.Errorf("spec.secrets[%d]: %w", i, err)
			}
			s.Mounts = append(s.Mounts, specs.Mount{Type: "bind", Source: dst, Destination: SecretsDir + "/" + sec.Name,
				Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"}})
		}
		return nil
	}
}

// secretVolumesDir is where a container's secret volumes are staged,
// under its secrets' directory: a name no secret can have.
const secretVolumesDir = "@volumes"

// withSecretVolumes stages each secret volume of mounts (a Kubernetes
// secret volume of a pod) as withSecrets stages a secret: every regular
// file of the directory of the secret's name in an allowed secret source,
// owned by the process's user with mode 0400, in a directory of the
// container's own, mounted read-only at the mount's target. The files are
// read when the container is created, as a secret's are.
func withSecretVolumes(dir string, mounts []desired.Mount, sources []string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if dir == "" {
			return fmt.Errorf("spec.mounts: secret volumes need a state directory")
		}
		uid, gid := 0, 0
		if s.Process != nil {
			uid, gid = int(s.Process.User.UID), int(s.Process.User.GID)
		}
		for i, m := range mounts {
			if m.Type != desired.MountPodSecret {
				continue
			}
			field := fmt.Sprintf("spec.mounts[%d]", i)
			src, err := secretVolumeSource(m.Source, sources)
			if err != nil {
				return fmt.Errorf("%s.source: %w", field, err)
			}
			dst := filepath.Join(dir, secretVolumesDir, strconv.Itoa(i))
			if err := os.RemoveAll(dst); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
			if err := os.MkdirAll(dst, 0o700); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
			entries, err := os.ReadDir(src)
			if err != nil {
				return fmt.Errorf("%s.source: secret %q: %w", field, m.Source, err)
			}
			for _, e := range entries {
				path := filepath.Join(src, e.Name())
				if real, err := filepath.EvalSymlinks(path); err != nil || !under(real, src) {
					continue // a dangling link, or one out of the secret
				}
				fi, err := os.Stat(path)
				if err != nil || !fi.Mode().IsRegular() || strings.HasPrefix(e.Name(), ".") {
					continue // keys are the secret's regular files
				}
				content, err := openSecret(path)
				if err != nil {
					return fmt.Errorf("%s.source: secret %q: %w", field, m.Source, err)
				}
				err = writeSecret(content, filepath.Join(dst, e.Name()), uid, gid)
				content.Close()
				if err != nil {
					return fmt.Errorf("%s.source: secret %q: %w", field, m.Source, err)
				}
			}
			if err := os.Chmod(dst, 0o500); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
			if err := os.Chown(dst, uid, gid); err != nil {
				return fmt.Errorf("%s: %w", field, err)
			}
			s.Mounts = append(s.Mounts, specs.Mount{Type: "bind", Source: dst, Destination: m.Target,
				Options: []string{"rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"}})
		}
		return nil
	}
}

// secretVolumeSource is the directory of secret name: name in the first
// allowed secret source that has it, symlinks resolved, and still in that
// source.
func secretVolumeSource(name string, sources []string) (string, error) {
	if !validVolumeName(name) {
		return "", fmt.Errorf("invalid secret name %q", name)
	}
	if len(sources) == 0 {
		return "", fmt.Errorf("secret %q: the node allows no secret source (--allowed-secret-sources)", name)
	}
	for _, src := range sources {
		root, err := filepath.EvalSymlinks(src)
		if err != nil {
			continue
		}
		dir, err := filepath.EvalSymlinks(filepath.Join(src, name))
		if err != nil {
			continue
		}
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() && under(dir, root) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("secret %q: no directory %s in the allowed secret sources (%s)", name, name, strings.Join(sources, ", "))
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// SecretsDir is where secrets appear in the container.
const SecretsDir = "/run/secrets"

// openSecret opens the secret file src, which must be a regular file.
func openSecret(src string) (*os.File, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("read secret file: %w", err)
	}
	fi, err := in.Stat()
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("read secret file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		in.Close()
		return nil, fmt.Errorf("secret file %s is not a regular file", src)
	}
	return in, nil
}

// writeSecret writes content to dst (replacing it) with mode 0400 and owner
// uid:gid. A failed write leaves no partial file.
func writeSecret(content io.Reader, dst string, uid, gid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".secret-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, content); err != nil {
		tmp.Close()
		return fmt.Errorf("copy secret file: %w", err)
	}
	if err := tmp.Chmod(0o400); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chown(uid, gid); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
