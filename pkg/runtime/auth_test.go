package runtime

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDockerConfigCredentials(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	cfgJSON := `{
  "auths": {
    "127.0.0.1:5000": {"auth": "` + b64("alice:pw:with:colons") + `"},
    "https://index.docker.io/v1/": {"username": "bob", "password": "hub"},
    "ghcr.io": {"identitytoken": "tok"},
    "bad.example": {"auth": "%%%"},
    "nocolon.example": {"auth": "` + b64("nocolon") + `"}
  },
  "credsStore": "desktop"
}`
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(cfgJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadDockerConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host, user, secret, wantErr string
	}{
		{host: "127.0.0.1:5000", user: "alice", secret: "pw:with:colons"},
		{host: "registry-1.docker.io", user: "bob", secret: "hub"},
		{host: "docker.io", user: "bob", secret: "hub"},
		{host: "ghcr.io", user: "", secret: "tok"},
		{host: "quay.io"}, // anonymous
		{host: "bad.example", wantErr: "not base64"},
		{host: "nocolon.example", wantErr: `not "user:password"`},
	}
	for _, tc := range tests {
		u, s, err := cfg.credentials(tc.host)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("credentials(%s) error = %v, want %q", tc.host, err, tc.wantErr)
			}
			continue
		}
		if err != nil || u != tc.user || s != tc.secret {
			t.Errorf("credentials(%s) = %q, %q, %v; want %q, %q", tc.host, u, s, err, tc.user, tc.secret)
		}
	}
}

func TestLoadDockerConfig(t *testing.T) {
	dir := t.TempDir()
	if c, err := loadDockerConfig(filepath.Join(dir, "missing.json")); err != nil || len(c.Auths) != 0 {
		t.Errorf("missing file = %+v, %v; want empty config", c, err)
	}
	if c, err := loadDockerConfig(""); err != nil || len(c.Auths) != 0 {
		t.Errorf("no path = %+v, %v; want empty config", c, err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadDockerConfig(bad); err == nil || !strings.Contains(err.Error(), "parse registry config "+bad) {
		t.Errorf("bad file error = %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "isdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := loadDockerConfig(filepath.Join(dir, "isdir")); err == nil || !strings.Contains(err.Error(), "read registry config") {
		t.Errorf("directory as config error = %v", err)
	}
}

func TestDefaultRegistryConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if got := DefaultRegistryConfig(env(map[string]string{"DOCKER_CONFIG": "/cfg", "HOME": "/home/u"})); got != "/cfg/config.json" {
		t.Errorf("with DOCKER_CONFIG: %s", got)
	}
	if got := DefaultRegistryConfig(env(map[string]string{"HOME": "/home/u"})); got != "/home/u/.docker/config.json" {
		t.Errorf("with HOME: %s", got)
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:5000": true, "LOCALHOST:1": true,
		"127.0.0.1": true, "127.0.0.1:5000": true, "127.1.2.3:80": true,
		"[::1]:5000": true, "::1": true,
		"10.0.0.1:5000": false, "registry.example:5000": false, "docker.io": false, "localhost.example.com": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestOCIRefName(t *testing.T) {
	for in, want := range map[string]string{
		"localhost/app:v1": "localhost/app:v1",
		"nginx:1.27":       "docker.io/library/nginx:1.27",
		"v1":               "",
		"Bad:Ref!":         "",
	} {
		if got := ociRefName(in); got != want {
			t.Errorf("ociRefName(%q) = %q, want %q", in, got, want)
		}
	}
}
