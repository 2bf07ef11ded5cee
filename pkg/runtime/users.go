package runtime

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// users remembers the user the process of a container gets, per image and
// manifest user. Finding it reads the image's /etc/passwd and /etc/group,
// which containerd's spec options do by mounting the new container's root
// file system read-only: a snapshot call, a mount and an unmount for every
// container created, the largest part of the reconciler's own CPU in a
// burst of creates after gRPC. The answer depends only on the image (its
// digest fixes its config and layers) and on the manifest's user, so the
// second container of a pair takes it from here, without the mount.
//
// It holds at most maxUsers pairs and forgets them all when full (nodes
// run a few images; a forgotten pair costs one mount).
type users struct {
	mu sync.Mutex
	m  map[userKey]specs.User
}

type userKey struct{ image, user string }

const maxUsers = 256

func (u *users) get(k userKey) (specs.User, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	v, ok := u.m[k]
	v.AdditionalGids = slices.Clone(v.AdditionalGids)
	return v, ok
}

func (u *users) put(k userKey, v specs.User) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil || len(u.m) >= maxUsers {
		u.m = map[userKey]specs.User{}
	}
	v.AdditionalGids = slices.Clone(v.AdditionalGids)
	u.m[k] = v
}

// rememberUser is the spec option, after those that set the user, that
// records it for k.
func (u *users) rememberUser(k userKey) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process != nil {
			u.put(k, s.Process.User)
		}
		return nil
	}
}

// withImageConfigUser does for a Linux image what oci.WithImageConfig does
// (environment, arguments and working directory from the image config)
// but sets the user to user, already resolved, instead of reading the
// image's files for it.
func withImageConfigUser(config ocispec.ImageConfig, user specs.User) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil {
			s.Process = &specs.Process{}
		}
		env := config.Env
		if len(env) == 0 {
			env = defaultUnixEnv
		}
		s.Process.Env = replaceOrAppendEnv(env, s.Process.Env)
		s.Process.Args = slices.Concat(config.Entrypoint, config.Cmd)
		s.Process.Cwd = config.WorkingDir
		if s.Process.Cwd == "" {
			s.Process.Cwd = "/"
		}
		s.Process.User = user
		return nil
	}
}

// defaultUnixEnv is containerd's environment for an image that sets none.
var defaultUnixEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// replaceOrAppendEnv is containerd's merge of an image's environment
// (defaults) with the spec's (overrides), as oci.WithImageConfig does it: an
// override replaces the value of its name among the defaults or is
// appended; a name without "=" unsets it.
func replaceOrAppendEnv(defaults, overrides []string) []string {
	at := make(map[string]int, len(defaults))
	out := make([]string, 0, len(defaults)+len(overrides))
	for _, e := range defaults {
		k, _, _ := strings.Cut(e, "=")
		at[k] = len(out)
		out = append(out, e)
	}
	for _, v := range overrides {
		k, _, set := strings.Cut(v, "=")
		i, exists := at[k]
		switch {
		case !set && exists:
			out[i] = ""
		case set && exists:
			out[i] = v
		case set:
			out = append(out, v) // as containerd: a name appended twice is twice
		}
	}
	return slices.DeleteFunc(out, func(e string) bool { return e == "" })
}
