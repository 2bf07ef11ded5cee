package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/go-logr/logr"

	"github.com/warren/reconciler/e2e/imagebuild"
	"github.com/warren/reconciler/pkg/runtime"
)

// Missing says what this machine lacks to run the reconciler against a
// real containerd (root, containerd, runc and the shim, and the extra
// programs named), or "".
func Missing(extra ...string) string {
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	for _, b := range append([]string{"containerd", "runc", "containerd-shim-runc-v2"}, extra...) {
		if _, err := exec.LookPath(b); err != nil {
			return b + " not found on PATH (apt-get install -y containerd runc)"
		}
	}
	return ""
}

// Env is a prepared environment: everything lives under Dir.
type Env struct {
	Dir      string // short temporary directory (unix socket paths are limited)
	Bin      string // the reconciler binary
	Driver   string // the standalone log driver it embeds
	Images   string // directory holding the test image archive
	Archive  string // the test image archive, tagged imagebuild.DefaultRef
	Address  string // the private containerd's socket
	RuncRoot string // runc state of that containerd, apart from any other's
	Pid      int    // of that containerd

	containerd *runtime.Managed
}

// Setup makes a temporary directory named after prefix, builds the
// reconciler and the test image (from the Go package testapp, a path
// relative to the caller's directory) into it and starts a private
// containerd there, logging to stderr. The caller closes it.
func Setup(ctx context.Context, prefix, testapp string) (*Env, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, Bin: filepath.Join(dir, "reconciler"), Driver: filepath.Join(dir, "log-driver"),
		Images: filepath.Join(dir, "images")}
	e.Archive = filepath.Join(e.Images, "testapp.tar")
	if err := Reconciler(ctx, e.Bin, e.Driver, ""); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("build reconciler: %w", err)
	}
	if err := imagebuild.Build(ctx, testapp, imagebuild.DefaultRef, e.Archive, dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	log := logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, nil))
	mc, err := runtime.StartManaged(ctx, filepath.Join(dir, "ctrd"), "containerd", log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e.containerd, e.Address, e.Pid = mc, mc.Address(), mc.Pid()
	e.RuncRoot = runtime.PathsFor(mc.Dir).RuncRoot
	return e, nil
}

// Close stops the containerd and removes the directory.
func (e *Env) Close(ctx context.Context) error {
	err := e.containerd.Stop(ctx)
	if err != nil {
		err = fmt.Errorf("stop containerd: %w", err)
	}
	return errors.Join(err, os.RemoveAll(e.Dir))
}
