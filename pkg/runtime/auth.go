package runtime

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// dockerConfig is the part of a Docker client config.json the reconciler
// reads: static credentials per registry. Credential helpers (credsStore,
// credHelpers) are not run.
type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

type dockerAuth struct {
	Auth          string `json:"auth"` // base64 of "user:password"
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

// DefaultRegistryConfig is where the registry credentials are read from
// when no path is given: $DOCKER_CONFIG/config.json, else
// ~/.docker/config.json. getenv is os.Getenv in production.
func DefaultRegistryConfig(getenv func(string) string) string {
	if d := getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home := getenv("HOME")
	if home == "" {
		if h, err := os.UserHomeDir(); err == nil {
			home = h
		}
	}
	if home == "" {
		return ""
	}
	return filepath.Join(home, ".docker", "config.json")
}

// loadDockerConfig reads a config.json. A missing file (or an empty path)
// is an empty config: anonymous pulls.
func loadDockerConfig(path string) (*dockerConfig, error) {
	if path == "" {
		return &dockerConfig{}, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &dockerConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read registry config: %w", err)
	}
	var c dockerConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("parse registry config %s: %w", path, err)
	}
	return &c, nil
}

// credentials returns the user name and secret for a registry host, the
// way containerd's resolver wants them: a user name and password, or an
// empty user name and an identity (refresh) token. No entry is anonymous.
func (c *dockerConfig) credentials(host string) (string, string, error) {
	want := registryKey(host)
	for k, a := range c.Auths {
		if registryKey(k) != want {
			continue
		}
		if a.IdentityToken != "" {
			return "", a.IdentityToken, nil
		}
		user, pass := a.Username, a.Password
		if a.Auth != "" {
			b, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return "", "", fmt.Errorf("registry config: auths[%q].auth is not base64", k)
			}
			u, p, ok := strings.Cut(string(b), ":")
			if !ok {
				return "", "", fmt.Errorf("registry config: auths[%q].auth is not \"user:password\"", k)
			}
			user, pass = u, p
		}
		return user, pass, nil
	}
	return "", "", nil
}

// registryKey normalizes a config.json key or a registry host to compare
// them: no scheme, no path, Docker Hub's many names as "docker.io".
func registryKey(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s, _, _ = strings.Cut(s, "/")
	s = strings.ToLower(s)
	switch s {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return s
}
