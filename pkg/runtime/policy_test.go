package runtime

import (
	"errors"
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
}
