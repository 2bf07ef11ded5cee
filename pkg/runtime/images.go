package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"

	"github.com/warren/reconciler/pkg/desired"
)

// NormalizeImage turns a manifest image reference into the name containerd
// stores images under (docker.io/library/nginx:latest for nginx).
func NormalizeImage(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("parse image reference %q: %w", ref, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

// ErrImageNotPresent is returned (wrapped) when a task with
// imagePullPolicy Never asks for an image containerd does not have.
var ErrImageNotPresent = errors.New("image not present")

// image returns the task's image, unpacked for the snapshotter, following
// the pull policy:
//
//   - Always: pulled from its registry every time (a new digest wins);
//   - IfNotPresent (and empty): the local image, else one imported from the
//     images directory, else pulled;
//   - Never: the local image, else one imported from the images directory,
//     else ErrImageNotPresent. Never pulls.
func (r *Runtime) image(ctx context.Context, ref string, policy desired.PullPolicy) (containerd.Image, error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return nil, err
	}
	var img containerd.Image
	if policy == desired.PullAlways && !r.justPulled(name) {
		img, err = r.pull(ctx, name)
		if err != nil {
			return nil, err
		}
	} else {
		img, err = r.client.GetImage(ctx, name)
		if errdefs.IsNotFound(err) {
			if ierr := r.importArchives(ctx); ierr != nil {
				r.log.Error(ierr, "import image archives", "dir", r.imagesDir)
			}
			img, err = r.client.GetImage(ctx, name)
		}
		if errdefs.IsNotFound(err) {
			if policy == desired.PullNever {
				return nil, fmt.Errorf("image %s: %w and imagePullPolicy is Never (import it, or put its archive in the images directory %s)", name, ErrImageNotPresent, r.imagesDir)
			}
			img, err = r.pull(ctx, name)
			if err != nil {
				return nil, err
			}
		} else if err != nil {
			return nil, fmt.Errorf("get image %s: %w", name, err)
		}
	}
	unpacked, err := img.IsUnpacked(ctx, r.snapshotter)
	if err != nil {
		return nil, fmt.Errorf("check image %s: %w", name, err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, r.snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %s: %w", name, err)
		}
	}
	return img, nil
}

// Pull pulls ref from its registry (credentials from the registry config),
// unpacks it, and returns the digest of what the reference resolves to now.
func (r *Runtime) Pull(ctx context.Context, ref string) (string, error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return "", err
	}
	img, err := r.pull(ctx, name)
	if err != nil {
		return "", err
	}
	return img.Target().Digest.String(), nil
}

// Prepare checks what Create needs of t without creating anything: the node
// policy allows the spec, the files its secrets and bind mounts name are
// there (and its age-encrypted secrets decrypt), and its image is ready
// (imported, pulled or unpacked, as its pull policy says). The controller calls it before it stops a container to
// replace it (reconcile.Preparer), so that a spec that cannot run stops
// nothing. A refusal of the policy is a *PolicyError, as from Create. What
// only containerd or runc can tell (a snapshot that fails, a mount the
// kernel refuses) still shows only when the container is created and
// started.
func (r *Runtime) Prepare(ctx context.Context, t desired.Task) error {
	if err := r.policy.Check(t.Spec); err != nil {
		return err
	}
	if err := r.secrets.check(t.Spec.Secrets); err != nil {
		return err // a missing file, an age file that does not decrypt
	}
	for i, m := range t.Spec.Mounts {
		if m.Type != desired.MountBind {
			continue
		}
		if _, err := os.Stat(m.Source); err != nil {
			return fmt.Errorf("spec.mounts[%d].source: %w", i, err)
		}
	}
	ctx, release, err := r.lease(ctx)
	if err != nil {
		return err
	}
	defer release()
	name, err := NormalizeImage(t.Spec.Image)
	if err != nil {
		return err
	}
	if _, err := r.image(ctx, t.Spec.Image, t.Spec.ImagePullPolicy); err != nil {
		return err
	}
	if t.Spec.ImagePullPolicy == desired.PullAlways {
		// Just pulled: the create that follows need not pull again.
		r.pulledMu.Lock()
		r.pulled[name] = time.Now()
		r.pulledMu.Unlock()
	}
	return nil
}

// pulledFresh is how long after Prepare pulled an image the create that
// follows uses it as it is rather than pull again.
const pulledFresh = time.Minute

// justPulled reports (once) whether Prepare pulled image name moments ago.
func (r *Runtime) justPulled(name string) bool {
	r.pulledMu.Lock()
	defer r.pulledMu.Unlock()
	at, ok := r.pulled[name]
	delete(r.pulled, name)
	return ok && time.Since(at) < pulledFresh
}

func (r *Runtime) pull(ctx context.Context, name string) (img containerd.Image, err error) {
	start := time.Now()
	defer func() { r.metrics.observePull(time.Since(start), err) }()
	resolver, err := r.resolver(ctx)
	if err != nil {
		return nil, fmt.Errorf("pull image %s: %w", name, err)
	}
	r.log.Info("pulling image", "image", name)
	ctx, release, err := r.lease(ctx)
	if err != nil {
		return nil, fmt.Errorf("pull image %s: %w", name, err)
	}
	defer release()
	img, err = r.client.Pull(ctx, name,
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(r.snapshotter),
		containerd.WithResolver(resolver))
	if err != nil {
		return nil, fmt.Errorf("pull image %s: %w%s", name, err, r.pullHint(err))
	}
	r.log.Info("pulled image", "image", name, "digest", img.Target().Digest.String())
	return img, nil
}

// pullHint says where credentials come from when the registry refused them.
func (r *Runtime) pullHint(err error) string {
	var st remoteerrors.ErrUnexpectedStatus
	if errors.As(err, &st) && (st.StatusCode == 401 || st.StatusCode == 403) || errdefs.IsUnauthorized(err) || errdefs.IsPermissionDenied(err) {
		if r.registryConfig == "" {
			return " (no registry config file: pulls are anonymous)"
		}
		return fmt.Sprintf(" (check the credentials for this registry in %s)", r.registryConfig)
	}
	return ""
}

// resolver builds a registry resolver that reads the credentials file at
// each pull, so fixing the file needs no restart. Registries on loopback
// (localhost, 127.0.0.0/8, ::1) are spoken to over plain HTTP; every other
// registry only over TLS.
func (r *Runtime) resolver(_ context.Context) (remotes.Resolver, error) {
	cfg, err := loadDockerConfig(r.registryConfig)
	if err != nil {
		return nil, err
	}
	hosts := docker.ConfigureDefaultRegistries(
		docker.WithPlainHTTP(func(host string) (bool, error) { return isLoopback(host), nil }),
		docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(cfg.credentials))),
	)
	return docker.NewResolver(docker.ResolverOptions{Hosts: hosts}), nil
}

// isLoopback reports whether a registry host (with or without port) is on
// loopback: localhost, 127.0.0.0/8 or ::1.
func isLoopback(hostport string) bool {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// importArchives imports every *.tar in the images directory that is new or
// changed since it was last looked at. A file that fails to import is not
// retried until it changes.
func (r *Runtime) importArchives(ctx context.Context) error {
	if r.imagesDir == "" {
		return nil
	}
	r.importMu.Lock()
	defer r.importMu.Unlock()
	paths, err := filepath.Glob(filepath.Join(r.imagesDir, "*.tar"))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			continue // removed meanwhile
		}
		if t, ok := r.imported[p]; ok && t.Equal(fi.ModTime()) {
			continue
		}
		r.imported[p] = fi.ModTime()
		if err := r.importArchive(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Runtime) importArchive(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	defer f.Close()
	ctx, release, err := r.lease(ctx)
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	defer release()
	imgs, err := r.client.Import(ctx, f, containerd.WithImageRefTranslator(ociRefName))
	if err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	if len(imgs) == 0 {
		return fmt.Errorf("import %s: the archive names no image (an OCI layout needs an io.containerd.image.name or a full org.opencontainers.image.ref.name annotation)", path)
	}
	for _, im := range imgs {
		r.log.Info("imported image", "image", im.Name, "digest", im.Target.Digest.String(), "archive", path)
	}
	return nil
}

// ociRefName names an image of an OCI layout archive after its
// org.opencontainers.image.ref.name annotation when that is a full
// reference; a bare tag ("v1") names nothing, as it has no repository.
func ociRefName(ref string) string {
	if !strings.ContainsAny(ref, "/:@") {
		return ""
	}
	n, err := NormalizeImage(ref)
	if err != nil {
		return ""
	}
	return n
}

// ImportArchive imports one image archive now (tests and `make run` use it to
// preload images).
func (r *Runtime) ImportArchive(ctx context.Context, path string) error {
	return r.importArchive(ctx, path)
}

// ImportArchives imports the archives of the images directory that are new
// or changed since the last look. The daemon calls it (through List) at
// start and at every resync, so an archive dropped in is imported within a
// resync period, before any task asks for it.
func (r *Runtime) ImportArchives(ctx context.Context) error { return r.importArchives(ctx) }

// HasImage reports whether containerd has the image ref in the namespace.
func (r *Runtime) HasImage(ctx context.Context, ref string) (bool, error) {
	name, err := NormalizeImage(ref)
	if err != nil {
		return false, err
	}
	_, err = r.client.GetImage(ctx, name)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}
