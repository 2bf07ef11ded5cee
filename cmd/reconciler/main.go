package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"

	"github.com/warren/reconciler/pkg/desired"
	"github.com/warren/reconciler/pkg/runtime"
	"github.com/warren/reconciler/pkg/source"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and found a problem (invalid manifests, daemon error)
	exitUsage   = 2 // bad flags or arguments
)

const usage = `reconciler keeps the containers on this node equal to the manifests in a directory.

Usage:
  reconciler run      [flags]          run the daemon
  reconciler validate PATH... [-o text|json]
                                       check manifest files or directories; exit 1 on errors
  reconciler schema                    print the JSON Schema of a manifest
  reconciler convert  PATH [-o yaml|json] [--kind Pod|Deployment]
                                       print the tasks as Kubernetes Pods or Deployments
  reconciler plan     [flags]          print what run would do now, without doing it
  reconciler status   [TASK|POD] [-o table|wide|json|yaml] [--watch]
                                       show the tasks as the running daemon knows them
  reconciler wait     TASK|POD... --for=running|healthy|completed|deleted [--timeout 60s]
                                       wait until the daemon reports the tasks so
  reconciler sync     [--timeout 3m]   make the daemon sync its git source now
  reconciler logs     TASK|POD [-c CONTAINER] [-f] [--tail N] [--state-dir DIR]
                                       print a task's stdout and stderr
  reconciler version  [-o text|json|yaml]
                                       print the version
  reconciler completion bash|zsh|fish|powershell
                                       print the shell's completion script

Run 'reconciler COMMAND -h' for the flags of a command.
`

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

// runMain runs the command line args and returns the exit code.
func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	// What other programs start this binary as, with argument lists of
	// their own: never through the command line's parser.
	if isLogDriverCall(args) { // started by a containerd shim as a task's log driver
		return cmdLogDriver(args, stderr)
	}
	switch args[0] {
	case source.HelperArg: // started by the daemon for one git fetch
		return source.HelperMain(os.Stdin, stdout, stderr)
	case "log-driver": // hidden: what the shim runs (see logs.go)
		return cmdLogDriver(args[1:], stderr)
	}
	a := &cli{stdout: stdout, stderr: stderr}
	return a.execute(args)
}

// common holds the flags that run and plan share.
type common struct {
	manifests  string
	images     string
	address    string
	managed    string
	namespace  string
	stateDir   string
	containerd string
	logFormat  string
	insecure   bool // --insecure-manifests-dir
	runcRoot   string
	verbosity  int
	node       nodeFlags // node policy, registry credentials, log rotation
}

func (c *common) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.manifests, "manifests", "/etc/reconciler/manifests", "directory of *.yaml/*.yml task manifests")
	fs.StringVar(&c.images, "images", "", "directory of image archives (*.tar) imported when an image is missing (default: MANIFESTS/images)")
	fs.StringVar(&c.address, "address", "/run/containerd/containerd.sock", "containerd socket")
	fs.StringVar(&c.managed, "containerd", "auto", "auto: use --address if it answers, else start a private containerd under the state dir; external: --address only; managed: always the private one")
	fs.StringVar(&c.namespace, "namespace", runtime.DefaultNamespace, "containerd namespace of the managed containers")
	fs.StringVar(&c.stateDir, "state-dir", "/var/lib/reconciler", "state directory: task logs and the private containerd")
	fs.StringVar(&c.containerd, "containerd-bin", "containerd", "containerd binary for the private daemon")
	fs.StringVar(&c.runcRoot, "runc-root", "", "runc state directory for new containers (default: the shim's, /run/containerd/runc; the private containerd's own under the state dir); set it when several containerd daemons on one host use the same namespace")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&c.insecure, "insecure-manifests-dir", false, "apply manifests even if the directory or a file is writable by group or others or owned by another user than root or this one (development only)")
	fs.IntVarP(&c.verbosity, "v", "v", 0, "log verbosity: 0 transitions and errors; 1 adds each reconcile and resync; 2 adds debug detail")
	c.node.register(fs)
}

func (c *common) check() error {
	switch c.managed {
	case "auto", "external", "managed":
	default:
		return fmt.Errorf("--containerd must be auto, external or managed, got %q", c.managed)
	}
	switch c.logFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format must be text or json, got %q", c.logFormat)
	}
	if c.images == "" {
		c.images = filepath.Join(c.manifests, "images")
	}
	return c.node.check()
}

func (c *common) logger(w io.Writer) logr.Logger {
	// logr's V(n) is slog level -n.
	opts := &slog.HandlerOptions{Level: slog.Level(-c.verbosity)}
	if c.logFormat == "json" {
		return logr.FromSlogHandler(slog.NewJSONHandler(w, opts))
	}
	return logr.FromSlogHandler(slog.NewTextHandler(w, opts))
}

// loaderOptions are the manifests loader's options these flags make.
func (c *common) loaderOptions() []desired.LoaderOption {
	if c.insecure {
		return []desired.LoaderOption{desired.InsecureDir()}
	}
	return nil
}

func (c *common) managedDir() string { return filepath.Join(c.stateDir, "containerd") }

// connect returns a runtime on the configured containerd, with extra
// options after the flags' ones. With start, a private containerd is
// started when allowed and needed; the returned Managed is then non-nil and
// the caller stops it.
func (c *common) connect(ctx context.Context, log logr.Logger, start bool, extra ...runtime.Option) (*runtime.Runtime, *runtime.Managed, error) {
	opts := []runtime.Option{
		runtime.WithNamespace(c.namespace),
		runtime.WithLogDir(filepath.Join(c.stateDir, "logs")),
		runtime.WithLogger(log),
	}
	if start { // the daemon imports archives and runs tasks; plan only looks
		opts = append(opts, runtime.WithImagesDir(c.images))
	}
	opts = append(opts, c.node.options(c.stateDir, c.namespace, start, log)...)
	opts = append(opts, extra...)
	if c.runcRoot != "" {
		opts = append(opts, runtime.WithRuncRoot(c.runcRoot))
	}
	if c.managed != "managed" {
		rt, err := runtime.New(ctx, c.address, opts...)
		if err == nil || c.managed == "external" {
			return rt, nil, err
		}
		log.Info("containerd not reachable, using a private one", "address", c.address, "reason", err.Error())
	}
	paths := runtime.PathsFor(c.managedDir())
	if c.runcRoot == "" {
		opts = append(opts, runtime.WithRuncRoot(paths.RuncRoot))
	}
	if !start {
		rt, err := runtime.New(ctx, paths.Socket, opts...)
		return rt, nil, err
	}
	m, err := runtime.StartManaged(ctx, c.managedDir(), c.containerd, log)
	if err != nil {
		return nil, nil, err
	}
	rt, err := runtime.New(ctx, m.Address(), opts...)
	if err != nil {
		_ = m.Stop(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return rt, m, nil
}

func sortedErrors(m map[string]error) []error {
	files := make([]string, 0, len(m))
	for f := range m {
		files = append(files, f)
	}
	slices.Sort(files)
	out := make([]error, 0, len(files))
	for _, f := range files {
		out = append(out, m[f])
	}
	return out
}
