package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren/reconciler/pkg/desired"
)

func TestPolicyCheck(t *testing.T) {
	dir := t.TempDir()
	allowed := filepath.Join(dir, "srv")
	outside := filepath.Join(dir, "etc")
	for _, d := range []string{allowed, outside, allowed + "x"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A link inside the allowed directory pointing outside it.
	link := filepath.Join(allowed, "escape")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	bind := func(src string) func(*desired.Spec) {
		return func(s *desired.Spec) {
			s.Mounts = append(s.Mounts, desired.Mount{Type: desired.MountBind, Source: src, Target: "/data"})
		}
	}
	sc := func(f func(*desired.SecurityContext)) func(*desired.Spec) {
		return func(s *desired.Spec) {
			if s.SecurityContext == nil {
				s.SecurityContext = &desired.SecurityContext{}
			}
			f(s.SecurityContext)
		}
	}
	addCaps := func(caps ...string) func(*desired.Spec) {
		return sc(func(c *desired.SecurityContext) { c.Capabilities = &desired.Capabilities{Add: caps} })
	}
	tests := []struct {
		name    string
		policy  Policy
		mutate  func(*desired.Spec)
		wantErr string // "" = allowed
	}{
		{name: "defaults allowed", mutate: func(*desired.Spec) {}},
		{name: "volume and tmpfs need no policy", mutate: func(s *desired.Spec) {
			s.Mounts = []desired.Mount{{Type: desired.MountVolume, Source: "v", Target: "/v"}, {Type: desired.MountTmpfs, Target: "/t"}}
		}},
		{name: "read-only root needs no policy", mutate: sc(func(c *desired.SecurityContext) { c.ReadOnlyRootFilesystem = true })},
		{name: "dropping needs no policy", mutate: sc(func(c *desired.SecurityContext) { c.Capabilities = &desired.Capabilities{Drop: []string{"ALL"}} })},
		{name: "privileged refused", mutate: sc(func(c *desired.SecurityContext) { c.Privileged = true }),
			wantErr: "spec.securityContext.privileged: denied by node policy (start the reconciler with --allow-privileged)"},
		{name: "privileged allowed", policy: Policy{AllowPrivileged: true}, mutate: sc(func(c *desired.SecurityContext) { c.Privileged = true })},
		{name: "capability refused", mutate: addCaps("NET_ADMIN"),
			wantErr: "spec.securityContext.capabilities.add[0]: denied by node policy (start the reconciler with --allow-capabilities=NET_ADMIN)"},
		{name: "capability allowed, either spelling", policy: Policy{AllowCapabilities: []string{"cap_net_admin"}}, mutate: addCaps("NET_ADMIN")},
		{name: "second capability refused", policy: Policy{AllowCapabilities: []string{"NET_ADMIN"}}, mutate: addCaps("CAP_NET_ADMIN", "SYS_TIME"),
			wantErr: "capabilities.add[1]: denied by node policy (start the reconciler with --allow-capabilities=SYS_TIME)"},
		{name: "ALL allows any capability", policy: Policy{AllowCapabilities: []string{"ALL"}}, mutate: addCaps("SYS_ADMIN")},
		{name: "bind refused by default", mutate: bind(allowed),
			wantErr: "spec.mounts[0].source: denied by node policy (start the reconciler with --allowed-bind-sources=" + allowed},
		{name: "bind under allowed prefix", policy: Policy{AllowedBindSources: []string{allowed}}, mutate: bind(allowed + "/sub")},
		{name: "bind equal to allowed prefix", policy: Policy{AllowedBindSources: []string{allowed + "/"}}, mutate: bind(allowed)},
		{name: "prefix is by component", policy: Policy{AllowedBindSources: []string{allowed}}, mutate: bind(allowed + "x"),
			wantErr: "spec.mounts[0].source: denied"},
		{name: "dot-dot escape refused", policy: Policy{AllowedBindSources: []string{allowed}}, mutate: bind(allowed + "/../etc"),
			wantErr: "spec.mounts[0].source: denied"},
		{name: "symlink escape refused", policy: Policy{AllowedBindSources: []string{allowed}}, mutate: bind(link),
			wantErr: "spec.mounts[0].source: denied"},
		{name: "root allows all", policy: Policy{AllowedBindSources: []string{"/"}}, mutate: bind(outside)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := desired.Spec{Image: "x"}
			tc.mutate(&s)
			err := tc.policy.Check(s)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Check = %v, want allowed", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Check = %v, want error containing %q", err, tc.wantErr)
			}
			var pe *PolicyError
			if !errors.As(err, &pe) || !pe.Permanent() {
				t.Errorf("Check error %T is not a permanent *PolicyError", err)
			}
		})
	}
}

func TestPathUnder(t *testing.T) {
	for _, tc := range []struct {
		path, dir string
		want      bool
	}{
		{"/srv", "/srv", true},
		{"/srv/a", "/srv", true},
		{"/srvx", "/srv", false},
		{"/", "/srv", false},
		{"/anything", "/", true},
	} {
		if got := pathUnder(tc.path, tc.dir); got != tc.want {
			t.Errorf("pathUnder(%q, %q) = %v, want %v", tc.path, tc.dir, got, tc.want)
		}
	}
}

func TestPolicySecretSources(t *testing.T) {
	allowed := t.TempDir()
	other := t.TempDir()
	if err := os.Symlink("/etc/shadow", filepath.Join(allowed, "sneaky")); err != nil {
		t.Fatal(err)
	}
	p := Policy{AllowedSecretSources: []string{allowed}}
	tests := []struct {
		file string
		ok   bool
	}{
		{filepath.Join(allowed, "tls.key"), true},
		{filepath.Join(allowed, "sub", "tls.key"), true},
		{filepath.Join(other, "tls.key"), false},
		{"/etc/shadow", false},
		{filepath.Join(allowed, "sneaky"), false}, // a link out of the allowed directory
	}
	for _, tc := range tests {
		err := p.Check(desired.Spec{Secrets: []desired.Secret{{Name: "k", File: tc.file}}})
		if (err == nil) != tc.ok {
			t.Errorf("secret %s: %v, want allowed=%v", tc.file, err, tc.ok)
		}
		var pe *PolicyError
		if err != nil && (!errors.As(err, &pe) || pe.Field != "spec.secrets[0].file" || !strings.Contains(err.Error(), "--allowed-secret-sources=")) {
			t.Errorf("secret %s: error %v", tc.file, err)
		}
	}
	if err := (Policy{}).Check(desired.Spec{Secrets: []desired.Secret{{Name: "k", File: "/etc/reconciler/secrets/x"}}}); err == nil {
		t.Error("the zero policy allowed a secret")
	}
	// A pod's secret volume needs a secret source; which one has it is
	// found when it is staged (TestSecretVolumes).
	vol := desired.Spec{Mounts: []desired.Mount{{Type: desired.MountPodSecret, Source: "db", Target: "/etc/db"}}}
	var pe *PolicyError
	if err := (Policy{}).Check(vol); !errors.As(err, &pe) || pe.Field != "spec.mounts[0].source" || !strings.Contains(err.Error(), "--allowed-secret-sources=") {
		t.Errorf("a secret volume with no secret source: %v", err)
	}
	if err := p.Check(vol); err != nil {
		t.Errorf("a secret volume with a secret source: %v", err)
	}
	// A file of the manifests directory is allowed by any policy: the
	// directory is an allowed source of such names (checked when staged).
	if err := (Policy{}).Check(desired.Spec{Secrets: []desired.Secret{{Name: "k", File: "db.age"}}}); err != nil {
		t.Errorf("a file of the manifests directory: %v", err)
	}
}

func TestPolicyHostPorts(t *testing.T) {
	ranges, err := ParsePortRanges(DefaultAllowedHostPorts)
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{AllowedHostPorts: ranges}
	for _, c := range []struct {
		port int
		want string
	}{
		{0, ""}, {80, ""}, {443, ""}, {1024, ""}, {65535, ""},
		{22, "spec.ports[0].hostPort: denied by node policy (start the reconciler with --allowed-host-ports including 22)"},
		{1023, "spec.ports[0].hostPort: denied by node policy (start the reconciler with --allowed-host-ports including 1023)"},
	} {
		err := p.Check(desired.Spec{Network: desired.NetworkBridge, Ports: []desired.Port{{ContainerPort: 80, HostPort: c.port}}})
		if got := fmt.Sprint(err); (c.want == "" && err != nil) || (c.want != "" && got != c.want) {
			t.Errorf("host port %d: %v, want %q", c.port, err, c.want)
		}
	}
	for _, bad := range []string{"0", "80-70", "x", "1-70000", "22-"} {
		if _, err := ParsePortRanges(bad); err == nil {
			t.Errorf("ParsePortRanges(%q) accepted", bad)
		}
	}
}

func TestFilterResolvConf(t *testing.T) {
	in := "# comment\nsearch example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\noptions edns0\n"
	out, kept, dropped := filterResolvConf([]byte(in))
	if want := "# comment\nsearch example.com\nnameserver 10.0.0.2\noptions edns0\n"; string(out) != want || kept != 1 || dropped != 2 {
		t.Errorf("filterResolvConf = %q, %d kept, %d dropped", out, kept, dropped)
	}
}

func TestHostsFile(t *testing.T) {
	others := map[string]string{"db": "10.47.0.2", "app": "10.47.0.3", "web": "10.47.0.4"}
	const head = "# written by the reconciler: the tasks on its bridge, kept current\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	for _, tc := range []struct{ hostname, own string }{
		{"", "10.47.0.3\tapp\n"},
		{"app", "10.47.0.3\tapp\n"},
		{"shop", "10.47.0.3\tshop app\n"}, // a pod's container: the pod's host name first
	} {
		got := string(hostsFile("app", "10.47.0.3", others, tc.hostname))
		if want := head + tc.own + "10.47.0.2\tdb\n10.47.0.4\tweb\n"; got != want {
			t.Errorf("hostsFile with host name %q:\n%s\nwant\n%s", tc.hostname, got, want)
		}
	}
}

func TestConflist(t *testing.T) {
	b, err := Network{Name: "n", Bridge: "br", Subnet: "10.47.0.0/22", RunDir: "/run/x"}.conflist()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"subnet":"10.47.0.0/22"`, `"gateway":"10.47.0.1"`, `"dataDir":"/run/x/ipam"`, `"type":"portmap"`, `"bridge":"br"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("conflist %s lacks %s", b, want)
		}
	}
	if _, err := (Network{Subnet: "fd00::/64"}).conflist(); err == nil {
		t.Error("an IPv6 subnet accepted")
	}
}
