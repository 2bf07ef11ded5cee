package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	eventtypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/observed"
	"github.com/warren/reconciler/pkg/runtime"
)

// TestRuntimeProcess: command, args, env, workingDir and user as the
// process sees them.
func TestRuntimeProcess(t *testing.T) {
	e := newRT(t, "e2e-rt-proc")
	id := e.run(testenv.Manifest("proc",
		`command: ["/testapp", "-print-security"]`,
		`args: ["-message", "from args"]`,
		testenv.EnvSpec("PRINT_ENV", "true", "COLOR", "blue"),
		"workingDir: /tmp",
		`user: "1234:2345"`))
	e.waitOutput(id, `identity: uid=1234 gid=2345 cwd=/tmp\n`)
	e.waitOutput(id, `message="from args"`)
	e.waitOutput(id, `env: COLOR=blue\n`)

	// "uid" alone: the image has no /etc/passwd, so the group is 0.
	id2 := e.run(testenv.Manifest("uidonly", testenv.EnvSpec("PRINT_SECURITY", "true"), `user: "4321"`))
	e.waitOutput(id2, `identity: uid=4321 gid=0 `)
}

// cgroupValue reads a cgroup v1 file of container id in namespace ns.
func cgroupValue(t *testing.T, controller, ns, id, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, ns, id, file))
	if err != nil {
		t.Fatalf("read cgroup: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// TestRuntimeResources: cpu, memory and pids limits are the cgroup values
// asked for, and a task allocating past its memory limit is OOM-killed.
func TestRuntimeResources(t *testing.T) {
	requireEnv(t)
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: this check reads cgroup v1 files and /sys/fs/cgroup/memory is missing")
		}
		t.Skip("outside CI: this check reads cgroup v1 files; /sys/fs/cgroup/memory is missing")
	}
	e := newRT(t, "e2e-rt-res")
	id := e.run(testenv.Manifest("limited", "resources: {cpu: 500m, memory: 64Mi, pids: 50}"))
	e.waitOutput(id, `testapp: start`)
	for _, c := range []struct{ controller, file, want string }{
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.shares", "512"},
		{"memory", "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
		{"memory", "memory.memsw.limit_in_bytes", strconv.Itoa(64 << 20)},
		{"pids", "pids.max", "50"},
	} {
		if got := cgroupValue(t, c.controller, e.n.ns, id, c.file); got != c.want {
			t.Errorf("%s/%s = %s, want %s", c.controller, c.file, got, c.want)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	events, errs := e.n.client.Subscribe(ctx, fmt.Sprintf(`topic=="/tasks/oom",namespace==%q`, e.n.ns))
	hog := e.run(testenv.Manifest("hog", testenv.EnvSpec("ALLOC_MIB", "256"), "resources: {memory: 32Mi}", "restartPolicy: Never"))
	if code := e.exitStatus(hog); code != 137 {
		t.Errorf("task over its memory limit exited %d, want 137 (SIGKILL by the OOM killer)\n%s", code, e.output(hog))
	}
	for oom := false; !oom; {
		select {
		case env := <-events:
			v, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				t.Fatal(err)
			}
			if o, ok := v.(*eventtypes.TaskOOM); ok {
				oom = o.ContainerID == hog
			}
		case err := <-errs:
			t.Fatalf("events: %v", err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	if strings.Contains(e.output(hog), "allocated") {
		t.Errorf("the hog finished allocating 256 MiB under a 32 MiB limit:\n%s", e.output(hog))
	}
}

// TestRuntimeMounts: a read-only bind refuses writes, a writable bind
// writes through to the host, a named volume outlives its container, and a
// sized tmpfs fills up at its size.
func TestRuntimeMounts(t *testing.T) {
	host := t.TempDir()
	ro, rw := filepath.Join(host, "ro"), filepath.Join(host, "rw")
	for _, d := range []string{ro, rw} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ro, "hello"), []byte("from the host"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newRT(t, "e2e-rt-mounts", runtime.WithPolicy(runtime.Policy{AllowedBindSources: []string{host}}))
	mounts := fmt.Sprintf(`mounts:
    - {type: bind, source: %s, target: /ro, readOnly: true}
    - {type: bind, source: %s, target: /rw}
    - {type: volume, source: e2e-data, target: /data}`, ro, rw)
	id := e.run(testenv.Manifest("mounts", mounts, testenv.EnvSpec("WRITE_FILE", "/ro/x,/rw/y,/data/z", "INSPECT", "/ro/hello")))
	e.waitOutput(id, `write /ro/x: error: .*read-only file system`)
	e.waitOutput(id, `write /rw/y: ok`)
	e.waitOutput(id, `write /data/z: ok`)
	e.waitOutput(id, `inspect /ro/hello: .* content="from the host"`)
	if b, err := os.ReadFile(filepath.Join(rw, "y")); err != nil || string(b) != "written by testapp" {
		t.Errorf("write through the bind mount: %q, %v", b, err)
	}
	if fileExists(filepath.Join(ro, "x")) {
		t.Errorf("a write through the read-only bind mount reached the host")
	}

	// Replace the container (changed spec): the volume's file is still there.
	if err := e.rt.Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	id2 := e.run(testenv.Manifest("mounts", mounts, testenv.EnvSpec("INSPECT", "/data/z")))
	if id2 == id {
		t.Fatal("same container ID after a spec change")
	}
	e.waitOutput(id2, `inspect /data/z: .* content="written by testapp"`)
	if !fileExists(filepath.Join(e.state, "volumes", "e2e-data", "z")) {
		t.Errorf("volume file not under STATE_DIR/volumes/e2e-data")
	}

	// tmpfs with a size: 2 MiB do not fit in 1 MiB, 512 KiB do.
	id3 := e.run(testenv.Manifest("tmpfs", "mounts: [{type: tmpfs, target: /scratch, size: 1Mi}]",
		testenv.EnvSpec("WRITE_FILE", "/scratch/big", "WRITE_BYTES", strconv.Itoa(2<<20))))
	e.waitOutput(id3, `write /scratch/big: error: .*no space left on device`)
	id4 := e.run(testenv.Manifest("tmpfs-ok", "mounts: [{type: tmpfs, target: /scratch, size: 1Mi}]",
		testenv.EnvSpec("WRITE_FILE", "/scratch/small", "WRITE_BYTES", strconv.Itoa(512<<10))))
	e.waitOutput(id4, `write /scratch/small: ok`)
}

// TestRuntimeSecrets: a secret's content appears at /run/secrets/NAME,
// read-only, mode 0400, owned by the task's user; it is in no label, no
// spec and no runtime log line; its staged copy goes with the container.
func TestRuntimeSecrets(t *testing.T) {
	const value = "s3cr3t-value-e2e"
	src := filepath.Join(t.TempDir(), "api.key")
	if err := os.WriteFile(src, []byte(value), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newRT(t, "e2e-rt-secrets", runtime.WithPolicy(runtime.Policy{AllowedSecretSources: []string{filepath.Dir(src)}}))
	id := e.run(testenv.Manifest("secret",
		`user: "1234:2345"`,
		fmt.Sprintf("secrets: [{name: api-key, file: %s}]", src),
		testenv.EnvSpec("INSPECT", "/run/secrets/api-key", "WRITE_FILE", "/run/secrets/api-key")))
	e.waitOutput(id, `inspect /run/secrets/api-key: mode=0400 uid=1234 gid=2345 content="`+value+`"`)
	e.waitOutput(id, `write /run/secrets/api-key: error: `)

	c, err := e.n.client.LoadContainer(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprint(info.Labels), value) || strings.Contains(string(info.Spec.GetValue()), value) {
		t.Errorf("the secret's content is in the container's labels or spec")
	}
	if strings.Contains(e.out.String(), value) {
		t.Errorf("the secret's content is in the runtime's log")
	}
	staged := filepath.Join(e.state, "secrets", id)
	if !fileExists(filepath.Join(staged, "api-key")) {
		t.Fatalf("no staged secret under %s", staged)
	}
	if err := e.rt.Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if fileExists(staged) {
		t.Errorf("staged secrets %s left after Delete", staged)
	}
}

// TestRuntimeNetwork: host shares the host's network; none has loopback
// only, so a connection to a host listener fails.
func TestRuntimeNetwork(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := l.Addr().String()
	e := newRT(t, "e2e-rt-net")
	host := e.run(testenv.Manifest("nethost", "network: host", testenv.EnvSpec("CONNECT", addr, "PRINT_HOSTNAME", "true", "INSPECT", "/etc/resolv.conf")))
	none := e.run(testenv.Manifest("netnone", "network: none", testenv.EnvSpec("CONNECT", addr, "INSPECT", "/proc/net/dev")))
	e.waitOutput(host, `connect `+addr+`: ok`)
	// The host's name and resolver are usable from a host-network task.
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	e.waitOutput(host, `hostname: `+regexp.QuoteMeta(hostname)+` <nil>`)
	if resolv, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		m := e.waitOutput(host, `inspect /etc/resolv.conf: .*content="(.*)"`)
		if got := strings.ReplaceAll(m[1], `\n`, "\n"); strings.TrimSpace(got) != strings.TrimSpace(string(resolv)) {
			t.Errorf("resolv.conf in a host-network task:\n%s\nwant the host's:\n%s", got, resolv)
		}
	}
	e.waitOutput(none, `connect `+addr+`: error: .*connection refused`)
	m := e.waitOutput(none, `inspect /proc/net/dev: .*content="(.*)"`)
	ifaces := strings.Split(strings.TrimSpace(strings.ReplaceAll(m[1], `\n`, "\n")), "\n")[2:]
	if len(ifaces) != 1 || !strings.HasPrefix(strings.TrimSpace(ifaces[0]), "lo:") {
		t.Errorf("network none has interfaces %q, want loopback only", ifaces)
	}
}

// capEff parses the CapEff line testapp prints.
func capEff(t *testing.T, e *rtEnv, id string) uint64 {
	t.Helper()
	m := e.waitOutput(id, `status: CapEff: ([0-9a-f]+)`)
	v, err := strconv.ParseUint(m[1], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const (
	capChown    = 0
	capNetAdmin = 12
	capNetRaw   = 13
	capSysAdmin = 21
)

// TestRuntimeSecureDefaults: in a default task NET_RAW is not effective,
// seccomp is in filter mode (2), no-new-privileges is set and /proc/sys is
// read-only; readOnlyRootFilesystem refuses writes; capabilities are
// dropped and added as asked when the node policy allows.
func TestRuntimeSecureDefaults(t *testing.T) {
	e := newRT(t, "e2e-rt-sec", runtime.WithPolicy(runtime.Policy{AllowCapabilities: []string{"NET_ADMIN"}}))
	def := e.run(testenv.Manifest("default", testenv.EnvSpec("PRINT_SECURITY", "true", "WRITE_FILE", "/proc/sys/kernel/domainname,/rootfile")))
	caps := capEff(t, e, def)
	if caps&(1<<capNetRaw) != 0 {
		t.Errorf("CapEff %x has NET_RAW", caps)
	}
	if caps&(1<<capChown) == 0 || caps&(1<<capSysAdmin) != 0 {
		t.Errorf("CapEff %x is not containerd's default set", caps)
	}
	e.waitOutput(def, `status: Seccomp: 2\n`)
	// Only the image's syscall ABI is in the profile (x86_64 alone on
	// amd64, not x86 and x32), as recorded in the spec containerd keeps.
	c, err := e.n.client.LoadContainer(t.Context(), def)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.Spec(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if native := map[string]specs.Arch{"amd64": specs.ArchX86_64, "arm64": specs.ArchAARCH64}[goruntime.GOARCH]; native != "" {
		if got := spec.Linux.Seccomp.Architectures; !slices.Equal(got, []specs.Arch{native}) {
			t.Errorf("seccomp architectures %v, want [%s]", got, native)
		}
	}
	e.waitOutput(def, `status: NoNewPrivs: 1\n`)
	e.waitOutput(def, `write /proc/sys/kernel/domainname: error: .*read-only file system`)
	e.waitOutput(def, `write /rootfile: ok`)

	ro := e.run(testenv.Manifest("readonly", "securityContext: {readOnlyRootFilesystem: true}", testenv.EnvSpec("WRITE_FILE", "/rootfile")))
	e.waitOutput(ro, `write /rootfile: error: .*read-only file system`)

	only := e.run(testenv.Manifest("netadmin", "securityContext: {capabilities: {drop: [ALL], add: [NET_ADMIN]}}", testenv.EnvSpec("PRINT_SECURITY", "true")))
	if caps := capEff(t, e, only); caps != 1<<capNetAdmin {
		t.Errorf("drop ALL + add NET_ADMIN: CapEff %x, want %x", caps, uint64(1<<capNetAdmin))
	}

	// Refused by the node policy: a permanent error naming the field and the flag.
	for _, tc := range []struct{ spec, want string }{
		{"securityContext: {privileged: true}", "spec.securityContext.privileged: denied by node policy (start the reconciler with --allow-privileged)"},
		{"securityContext: {capabilities: {add: [SYS_ADMIN]}}", "spec.securityContext.capabilities.add[0]: denied by node policy (start the reconciler with --allow-capabilities=SYS_ADMIN)"},
		{"mounts: [{type: bind, source: /etc, target: /host-etc}]", "spec.mounts[0].source: denied by node policy (start the reconciler with --allowed-bind-sources=/etc (or a parent directory))"},
	} {
		id, err := e.create(testenv.Manifest("refused", tc.spec))
		var perm interface{ Permanent() bool }
		if err == nil || err.Error() != "create container "+id+": "+tc.want || !errors.As(err, &perm) || !perm.Permanent() {
			t.Errorf("create with %s: %v, want a permanent %q", tc.spec, err, tc.want)
		}
		if _, err := e.n.client.LoadContainer(t.Context(), id); err == nil {
			t.Errorf("a refused container %s exists", id)
		}
	}
}

// TestRuntimePolicyDaemon: the daemon does not run a privileged manifest
// without --allow-privileged and logs why; with it, the task runs with
// every capability.
func TestRuntimePolicyDaemon(t *testing.T) {
	n := newNode(t, "e2e-rt-policy")
	dir := t.TempDir()
	d := startReconciler(t, n.ns, dir)
	testenv.WriteFile(t, dir, "priv.yaml", testenv.Manifest("priv", "securityContext: {privileged: true}", testenv.EnvSpec("PRINT_SECURITY", "true")))
	d.WaitLog("spec.securityContext.privileged: denied by node policy (start the reconciler with --allow-privileged)", converge)
	if cs := n.containers("priv"); len(cs) != 0 {
		t.Errorf("a refused privileged task has containers: %+v", cs)
	}
	d.Stop()

	startReconciler(t, n.ns, dir, "--allow-privileged")
	var c ctr
	testenv.WaitFor(t, converge, "priv running with --allow-privileged", func() (ok bool) { c, ok = n.running("priv"); return ok })
	if c.Labels[observed.LabelImageDigest] == "" {
		t.Errorf("no image digest label on %s", c.ID)
	}
}

// TestRuntimeUserRemembered: the process user that containerd finds in an
// image's /etc/passwd and /etc/group (mounting the new container's root
// file system) for the first container of an image and spec.user is the
// one the runtime gives the next container of the same pair from memory,
// without the mount; so are the environment, arguments and working
// directory, which it then takes from the image config itself.
func TestRuntimeUserRemembered(t *testing.T) {
	const ref = "localhost/e2e/users:v1"
	images := t.TempDir()
	base := testImage(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/false\napp:x:1000:1000::/:/bin/false\nother:x:4321:4000::/:/bin/false\n",
		"etc/group":  "root:x:0:\napp:x:1000:\nextra:x:3000:app\nmore:x:3001:app,other\n",
	} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	conf := cf.Config
	conf.User = "app"
	conf.Env = []string{"PATH=/", "FROM_IMAGE=yes", "OVERRIDDEN=image"}
	conf.WorkingDir = "/tmp"
	if img, err = mutate.Config(img, conf); err != nil {
		t.Fatal(err)
	}
	if err := imagebuild.WriteArchive(filepath.Join(images, "users.tar"), ref, img); err != nil {
		t.Fatal(err)
	}
	// containerd's reading of the image asks for the snapshot's mounts.
	var mounts atomic.Int32
	count := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if strings.HasSuffix(method, ".Snapshots/Mounts") {
			mounts.Add(1)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	e := newRT(t, "e2e-rt-users", runtime.WithImagesDir(images), runtime.WithDialOptions(grpc.WithChainUnaryInterceptor(count)))
	specOf := func(name, user string) *oci.Spec {
		t.Helper()
		spec := []string{"imagePullPolicy: Never", testenv.EnvSpec("OVERRIDDEN", "manifest")}
		if user != "" {
			spec = append(spec, fmt.Sprintf("user: %q", user))
		}
		id, err := e.create(testenv.WithImage(testenv.Manifest(name, spec...), ref))
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		c, err := e.n.client.LoadContainer(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Spec(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for i, tc := range []struct {
		user string
		want specs.User // as containerd finds it in the image's files
	}{
		{"", specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1000, 3000, 3001}}},
		// spec.user replaces the image's user, with its group only.
		{"4321", specs.User{UID: 4321, GID: 4000, AdditionalGids: []uint32{4000}}},
		{"1234:2345", specs.User{UID: 1234, GID: 2345, AdditionalGids: []uint32{2345}}},
	} {
		before := mounts.Load()
		first := specOf(fmt.Sprintf("users-%d-a", i), tc.user)
		between := mounts.Load()
		second := specOf(fmt.Sprintf("users-%d-b", i), tc.user)
		if between == before || mounts.Load() != between {
			t.Errorf("user %q: %d and %d snapshot mount lookups for the two creates, want some and none", tc.user, between-before, mounts.Load()-between)
		}
		if !reflect.DeepEqual(first.Process.User, tc.want) {
			t.Errorf("user %q: the first container's user is %+v, want %+v (containerd's reading of the image)", tc.user, first.Process.User, tc.want)
		}
		for _, d := range []struct {
			field     string
			got, want any
		}{
			{"user", second.Process.User, first.Process.User},
			{"env", second.Process.Env, first.Process.Env},
			{"args", second.Process.Args, first.Process.Args},
			{"cwd", second.Process.Cwd, first.Process.Cwd},
		} {
			if !reflect.DeepEqual(d.got, d.want) {
				t.Errorf("user %q: the second container's %s is %v, the first's %v", tc.user, d.field, d.got, d.want)
			}
		}
	}
}
