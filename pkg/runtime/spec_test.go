package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	goruntime "runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/warren/reconciler/pkg/desired"
)

func TestCPULimits(t *testing.T) {
	tests := []struct {
		cpu           string
		quota         int64
		period, share uint64
	}{
		{"1", 100000, 100000, 1024},
		{"500m", 50000, 100000, 512},
		{"2.5", 250000, 100000, 2560},
		{"1m", 1000, 100000, 2}, // kernel minimums: 1 ms quota, 2 shares
		{"100m", 10000, 100000, 102},
		{"1000", 100000000, 100000, 262144}, // shares capped
	}
	for _, tc := range tests {
		quota, period, shares := cpuLimits(resource.MustParse(tc.cpu))
		if quota != tc.quota || period != tc.period || shares != tc.share {
			t.Errorf("cpuLimits(%s) = %d/%d shares %d, want %d/%d shares %d", tc.cpu, quota, period, shares, tc.quota, tc.period, tc.share)
		}
	}
}

func TestParseUser(t *testing.T) {
	tests := []struct {
		in       string
		uid, gid uint32
		hasGID   bool
		wantErr  bool
	}{
		{in: "0", uid: 0},
		{in: "1000", uid: 1000},
		{in: "101:102", uid: 101, gid: 102, hasGID: true},
		{in: "nginx", wantErr: true},
		{in: "1:x", wantErr: true},
		{in: "-1", wantErr: true},
		{in: "4294967296", wantErr: true},
		{in: "1:2:3", wantErr: true},
	}
	for _, tc := range tests {
		uid, gid, hasGID, err := parseUser(tc.in)
		if tc.wantErr {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "spec.user" || !fe.Permanent() {
				t.Errorf("parseUser(%q) error = %v, want a permanent spec.user FieldError", tc.in, err)
			}
			continue
		}
		if err != nil || uid != tc.uid || gid != tc.gid || hasGID != tc.hasGID {
			t.Errorf("parseUser(%q) = %d, %d, %v, %v", tc.in, uid, gid, hasGID, err)
		}
	}
}

func TestTmpfsOptions(t *testing.T) {
	size := resource.MustParse("64Mi")
	if got, want := tmpfsOptions(&size, false), []string{"nosuid", "nodev", "mode=1777", "size=67108864"}; !reflect.DeepEqual(got, want) {
		t.Errorf("tmpfsOptions(64Mi) = %v, want %v", got, want)
	}
	if got, want := tmpfsOptions(nil, true), []string{"nosuid", "nodev", "mode=1777", "ro"}; !reflect.DeepEqual(got, want) {
		t.Errorf("tmpfsOptions(nil, ro) = %v, want %v", got, want)
	}
}

func TestMountSpecs(t *testing.T) {
	vols := t.TempDir()
	src := t.TempDir()
	pod := t.TempDir()
	ms, err := mountSpecs([]desired.Mount{
		{Type: desired.MountBind, Source: src, Target: "/b", ReadOnly: true},
		{Type: desired.MountVolume, Source: "cache", Target: "/v"},
		{Type: desired.MountTmpfs, Target: "/t"},
		{Type: desired.MountPodDir, Source: "data", Target: "/e", ReadOnly: true},
	}, vols, pod)
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Source != src || !reflect.DeepEqual(ms[0].Options, []string{"rbind", "rprivate", "ro"}) {
		t.Errorf("bind mount = %+v", ms[0])
	}
	if ms[1].Source != filepath.Join(vols, "cache") || ms[1].Options[2] != "rw" {
		t.Errorf("volume mount = %+v", ms[1])
	}
	if fi, err := os.Stat(filepath.Join(vols, "cache")); err != nil || !fi.IsDir() {
		t.Errorf("volume directory not created: %v", err)
	}
	if ms[2].Type != "tmpfs" || ms[2].Destination != "/t" {
		t.Errorf("tmpfs mount = %+v", ms[2])
	}
	if ms[3].Source != filepath.Join(pod, "volumes", "data") || ms[3].Options[2] != "ro" {
		t.Errorf("emptyDir mount = %+v", ms[3])
	}
	if fi, err := os.Stat(filepath.Join(pod, "volumes", "data")); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("emptyDir directory not made writable by all: %v %v", fi, err)
	}

	for _, tc := range []struct {
		name    string
		m       desired.Mount
		vols    string
		wantErr string
	}{
		{"missing bind source", desired.Mount{Type: desired.MountBind, Source: filepath.Join(src, "nope"), Target: "/b"}, vols, "spec.mounts[0].source: stat"},
		{"relative target", desired.Mount{Type: desired.MountTmpfs, Target: "t"}, vols, "spec.mounts[0].target: must be an absolute path"},
		{"volume name with slash", desired.Mount{Type: desired.MountVolume, Source: "../etc", Target: "/v"}, vols, `invalid volume name "../etc"`},
		{"volume without state dir", desired.Mount{Type: desired.MountVolume, Source: "v", Target: "/v"}, "", "named volumes need a state directory"},
		{"unknown type", desired.Mount{Type: "nfs", Target: "/n"}, vols, `unknown mount type "nfs"`},
		{"emptyDir of no pod", desired.Mount{Type: desired.MountPodDir, Source: "data", Target: "/e"}, vols, "spec.mounts[0].type: an emptyDir is a pod's container's only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := mountSpecs([]desired.Mount{tc.m}, tc.vols, ""); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("mountSpecs = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSecurityOptsUnknownCapability(t *testing.T) {
	for _, tc := range []struct {
		caps    desired.Capabilities
		wantErr string
	}{
		{desired.Capabilities{Add: []string{"NET_BOGUS"}}, `spec.securityContext.capabilities.add[0]: unknown capability "NET_BOGUS"`},
		{desired.Capabilities{Add: []string{"ALL"}}, `capabilities.add[0]: unknown capability "ALL"`},
		{desired.Capabilities{Drop: []string{"CHOWN", "NOPE"}}, `capabilities.drop[1]: unknown capability "NOPE"`},
	} {
		_, err := securityOpts(&desired.SecurityContext{Capabilities: &tc.caps})
		var fe *FieldError
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &fe) {
			t.Errorf("securityOpts(%+v) = %v, want FieldError containing %q", tc.caps, err, tc.wantErr)
		}
	}
	if _, err := securityOpts(&desired.SecurityContext{Capabilities: &desired.Capabilities{Add: []string{"net_admin"}, Drop: []string{"ALL"}}}); err != nil {
		t.Errorf("securityOpts with valid capabilities: %v", err)
	}
}

func TestWriteSecret(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 1234, 2345
	}
	dst := filepath.Join(dir, "dst")
	in, err := openSecret(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := writeSecret(in, dst, uid, gid); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o400 || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("staged secret mode %v owner %d:%d, want 0400 %d:%d", fi.Mode().Perm(), st.Uid, st.Gid, uid, gid)
	}
	if b, _ := os.ReadFile(dst); string(b) != "s3cret" {
		t.Errorf("staged secret content %q", b)
	}
	if _, err := openSecret(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "read secret file") {
		t.Errorf("openSecret of a missing file = %v", err)
	}
	if _, err := openSecret(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("openSecret of a directory = %v", err)
	}
}

func TestSeccompArches(t *testing.T) {
	amd64 := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	arm64 := []specs.Arch{specs.ArchARM, specs.ArchAARCH64}
	for _, tc := range []struct {
		node, image string
		all, want   []specs.Arch
	}{
		{"amd64", "amd64", amd64, []specs.Arch{specs.ArchX86_64}},
		{"amd64", "", amd64, []specs.Arch{specs.ArchX86_64}}, // an image without platform: the node's
		{"amd64", "386", amd64, []specs.Arch{specs.ArchX86_64, specs.ArchX86}},
		{"arm64", "arm64", arm64, []specs.Arch{specs.ArchAARCH64}},
		{"arm64", "arm", arm64, []specs.Arch{specs.ArchAARCH64, specs.ArchARM}},
		{"riscv64", "riscv64", []specs.Arch{specs.ArchRISCV64}, []specs.Arch{specs.ArchRISCV64}},
		{"sparc64", "sparc64", []specs.Arch{"SCMP_ARCH_SPARC64"}, []specs.Arch{"SCMP_ARCH_SPARC64"}}, // unknown node: unchanged
		{"amd64", "amd64", nil, nil},                                                                 // a profile without the native ABI: unchanged
	} {
		if got := seccompArches(tc.node, tc.image, tc.all); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("seccompArches(%s, %s) = %v, want %v", tc.node, tc.image, got, tc.want)
		}
	}
}

func TestWithSeccomp(t *testing.T) {
	for _, tc := range []struct {
		compat bool
		want   []specs.Arch
	}{
		{false, []specs.Arch{specs.ArchX86_64}},
		{true, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}}, // containerd's list for amd64
	} {
		s := &oci.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}, Linux: &specs.Linux{}}
		if err := withSeccomp("amd64", "amd64", tc.compat)(t.Context(), nil, nil, s); err != nil {
			t.Fatal(err)
		}
		if s.Linux.Seccomp == nil || len(s.Linux.Seccomp.Syscalls) == 0 {
			t.Fatalf("compat=%v: no seccomp profile applied", tc.compat)
		}
		if goruntime.GOARCH == "amd64" && !reflect.DeepEqual(s.Linux.Seccomp.Architectures, tc.want) {
			t.Errorf("compat=%v: architectures %v, want %v", tc.compat, s.Linux.Seccomp.Architectures, tc.want)
		}
	}
}

// WithSeccompProfile is the profile a container of the node's own
// architecture gets: the node's native ABI alone.
func TestWithSeccompProfile(t *testing.T) {
	s := &oci.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{}}, Linux: &specs.Linux{}}
	if err := WithSeccompProfile(goruntime.GOARCH)(t.Context(), nil, nil, s); err != nil {
		t.Fatal(err)
	}
	native, known := nativeABI[goruntime.GOARCH]
	if s.Linux.Seccomp == nil || (known && !reflect.DeepEqual(s.Linux.Seccomp.Architectures, []specs.Arch{native})) {
		t.Errorf("profile %+v, want the native ABI %s alone", s.Linux.Seccomp, native)
	}
}

// TestPrepareChecksHostFiles: Prepare refuses a spec whose secret file or
// bind source is missing before it looks at the image (no containerd here).
func TestPrepareChecksHostFiles(t *testing.T) {
	dir := t.TempDir()
	manifests := t.TempDir()
	if err := os.WriteFile(filepath.Join(manifests, "db.age"), []byte("not age"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Runtime{policy: Policy{AllowedSecretSources: []string{dir}, AllowedBindSources: []string{dir}}, pulled: map[string]time.Time{},
		secrets: secretFiles{manifestsDir: manifests}}
	for _, tc := range []struct {
		spec desired.Spec
		want string
	}{
		{desired.Spec{Image: "nginx", Secrets: []desired.Secret{{Name: "token", File: filepath.Join(dir, "missing")}}}, "spec.secrets[0]: read secret file"},
		{desired.Spec{Image: "nginx", Secrets: []desired.Secret{{Name: "token", File: dir}}}, "spec.secrets[0]: secret file " + dir + " is not a regular file"},
		{desired.Spec{Image: "nginx", Mounts: []desired.Mount{{Type: desired.MountBind, Source: filepath.Join(dir, "gone"), Target: "/data"}}}, "gone"},
		{desired.Spec{Image: "nginx", Secrets: []desired.Secret{{Name: "token", File: "token"}}}, "spec.secrets[0].file: no file token in the manifests directory"},
		{desired.Spec{Image: "nginx", Secrets: []desired.Secret{{Name: "db", File: "db.age"}}}, "spec.secrets[0].file: db.age is age-encrypted and the reconciler was started without --age-identity"},
		{desired.Spec{Image: "nginx", SecurityContext: &desired.SecurityContext{Privileged: true}}, "denied by node policy"},
	} {
		err := r.Prepare(t.Context(), desired.Task{Spec: tc.spec})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Prepare(%+v) = %v, want an error containing %q", tc.spec, err, tc.want)
		}
	}
}

func TestJustPulled(t *testing.T) {
	r := &Runtime{pulled: map[string]time.Time{"a": time.Now(), "old": time.Now().Add(-2 * pulledFresh)}}
	if !r.justPulled("a") || r.justPulled("a") {
		t.Error("a fresh pull must count once")
	}
	if r.justPulled("old") || r.justPulled("never") {
		t.Error("an old pull or none must not count")
	}
}

// TestSecretVolumes: a pod's secret volume stages the regular files of the
// secret's directory in the first allowed source that has it (not its dot
// files, directories or links out of it), each 0400 and owned by the
// process's user, mounted read-only; a secret in no source is an error
// that says where it was looked for.
func TestSecretVolumes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	empty, src := t.TempDir(), t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte("not the secret's"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(src, "db")
	for _, p := range []string{dir, filepath.Join(dir, "sub")} {
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{"user": "app", "password": "s3cret", ".hidden": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	staging := t.TempDir()
	mounts := []desired.Mount{{Type: desired.MountTmpfs, Target: "/t"}, {Type: desired.MountPodSecret, Source: "db", Target: "/etc/db", ReadOnly: true}}
	s := &oci.Spec{Process: &specs.Process{User: specs.User{UID: 1000, GID: 1001}}}
	if err := withSecretVolumes(staging, mounts, []string{empty, src})(context.Background(), nil, nil, s); err != nil {
		t.Fatal(err)
	}
	staged := filepath.Join(staging, secretVolumesDir, "1")
	if len(s.Mounts) != 1 || s.Mounts[0].Source != staged || s.Mounts[0].Destination != "/etc/db" || !slices.Contains(s.Mounts[0].Options, "ro") {
		t.Fatalf("mounts %+v", s.Mounts)
	}
	es, _ := os.ReadDir(staged)
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
		fi, _ := os.Stat(filepath.Join(staged, e.Name()))
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != 0o400 || st.Uid != 1000 || st.Gid != 1001 {
			t.Errorf("%s: mode %v, owner %d:%d", e.Name(), fi.Mode(), st.Uid, st.Gid)
		}
	}
	if !slices.Equal(names, []string{"password", "user"}) {
		t.Errorf("staged %v, want [password user]", names)
	}
	err := withSecretVolumes(staging, []desired.Mount{{Type: desired.MountPodSecret, Source: "nope", Target: "/x"}}, []string{empty, src})(context.Background(), nil, nil, &oci.Spec{})
	if err == nil || !strings.Contains(err.Error(), `spec.mounts[0].source: secret "nope": no directory nope in the allowed secret sources (`+empty+", "+src+")") {
		t.Errorf("a missing secret: %v", err)
	}
}
