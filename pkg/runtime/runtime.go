package runtime

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/go-logr/logr"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/grpc"

	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// DefaultNamespace is the containerd namespace the reconciler works in.
const DefaultNamespace = "warren"

// Runtime is the reconciler's containerd client. It is the only place that
// speaks containerd; everything it takes and returns is in the reconciler's
// own words (desired.Task, observed.Raw).
type Runtime struct {
	client         *containerd.Client
	ns             string
	snapshotter    string
	imagesDir      string
	logDir         string
	logDriver      string // binary run by the shim as the log driver ("" = plain file)
	logMaxSize     int64
	logMaxFiles    int
	stateDir       string // volumes/ and secrets/ live here
	runcRoot       string
	runcBin        string // runc for clearing stale state (bundle.go); "" is runc from PATH
	policy         Policy
	secrets        secretFiles // where secret files are read, how *.age ones are decrypted (age.go)
	registryConfig string      // Docker config.json with registry credentials ("" = anonymous)
	dialOpts       []grpc.DialOption
	log            logr.Logger
	metrics        *Metrics    // nil: none recorded
	stats          *statsCache // per-task usage for the metrics, read at scrape time
	net            *netState   // the bridge of network: bridge tasks; nil: none (network.go)
	podMu          sync.Mutex  // pod sandboxes are made and released one at a time (sandbox.go)

	importMu sync.Mutex
	imported map[string]time.Time // archive path -> mtime when last looked at

	pulledMu sync.Mutex
	pulled   map[string]time.Time // image name -> when Prepare pulled it (PullAlways)

	procMu sync.Mutex
	procs  map[string]specs.Process // container ID -> its process spec, for exec probes (exec.go)

	users users // the process user per image and spec.user (users.go)
	index index // the namespace's containers between full listings (index.go)

	gcMu        sync.Mutex     // guards what Collect needs (collect.go)
	inFlight    map[string]int // container and lease IDs operations of this process work on
	collectDue  bool           // an operation failed: something may be left behind
	lastCollect time.Time
}

// Option configures a Runtime.
type Option func(*Runtime)

// WithNamespace sets the containerd namespace (default "warren").
func WithNamespace(ns string) Option { return func(r *Runtime) { r.ns = ns } }

// WithImagesDir sets a directory of image archives (*.tar, docker-archive or
// OCI layout) that are imported when a task asks for an image containerd does
// not have, and at every full listing (see List) when new or changed.
func WithImagesDir(dir string) Option { return func(r *Runtime) { r.imagesDir = dir } }

// WithLogDir sets where task stdout/stderr files are written.
func WithLogDir(dir string) Option { return func(r *Runtime) { r.logDir = dir } }

// WithLogDriver makes the containerd shim run binary (the reconciler itself)
// as the log driver of every task: it writes the task's stdout and stderr to
// the log directory, rotated at maxSize bytes, keeping maxFiles files, and
// goes on while the reconciler is stopped. Without it, output is appended to
// one file by the shim, with no rotation.
func WithLogDriver(binary string, maxSize int64, maxFiles int) Option {
	return func(r *Runtime) { r.logDriver, r.logMaxSize, r.logMaxFiles = binary, maxSize, maxFiles }
}

// WithStateDir sets the directory that holds named volumes (volumes/NAME)
// and the staged secrets of each container (secrets/ID).
func WithStateDir(dir string) Option { return func(r *Runtime) { r.stateDir = dir } }

// WithPolicy sets the node policy (default: the zero Policy, which allows no
// privileged mode, no added capability and no bind mount).
func WithPolicy(p Policy) Option { return func(r *Runtime) { r.policy = p } }

// WithRegistryConfig sets the Docker-style config.json that registry
// credentials are read from, at each pull. A missing file means anonymous
// pulls. See DefaultRegistryConfig.
func WithRegistryConfig(path string) Option { return func(r *Runtime) { r.registryConfig = path } }

// WithDialOptions adds gRPC dial options to the containerd connection
// (tests count calls with an interceptor).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(r *Runtime) { r.dialOpts = append(r.dialOpts, opts...) }
}

// WithRuncRoot sets runc's state directory for new containers (default: the
// shim's, /run/containerd/runc). A private containerd needs its own, or two
// daemons with the same namespace and container IDs would share runc state.
func WithRuncRoot(dir string) Option { return func(r *Runtime) { r.runcRoot = dir } }

// WithSnapshotter sets the snapshotter (default: containerd's default).
func WithSnapshotter(name string) Option { return func(r *Runtime) { r.snapshotter = name } }

// WithLogger sets the logger.
func WithLogger(l logr.Logger) Option { return func(r *Runtime) { r.log = l } }

// New connects to the containerd socket at address.
func New(ctx context.Context, address string, opts ...Option) (*Runtime, error) {
	r := &Runtime{ns: DefaultNamespace, log: logr.Discard(), imported: map[string]time.Time{}, pulled: map[string]time.Time{}, inFlight: map[string]int{}}
	for _, o := range opts {
		o(r)
	}
	if !socketServes(address) {
		return nil, fmt.Errorf("connect to containerd at %s: %w", address, ErrNoContainerd)
	}
	copts := []containerd.Opt{containerd.WithDefaultNamespace(r.ns), containerd.WithTimeout(10 * time.Second)}
	r.dialOpts = append(r.dialOpts, r.collectDialOptions()...)
	if r.metrics != nil {
		r.dialOpts = append(r.dialOpts, r.metrics.dialOptions()...)
	}
	copts = append(copts, containerd.WithExtraDialOpts(r.dialOpts))
	c, err := containerd.New(address, copts...)
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", address, err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ok, err := c.IsServing(sctx); err != nil || !ok {
		c.Close()
		return nil, fmt.Errorf("connect to containerd at %s: not serving: %w", address, err)
	}
	// The same connection, with image blobs read through a cache.
	if conn, ok := c.Conn().(*grpc.ClientConn); ok {
		cached, err := containerd.NewWithConn(conn, containerd.WithDefaultNamespace(r.ns),
			containerd.WithServices(containerd.WithContentStore(newBlobCache(c.ContentStore()))))
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("connect to containerd at %s: %w", address, err)
		}
		c = cached
	}
	r.client = c
	if r.snapshotter == "" {
		// Resolved once: left empty, the client would look up the
		// namespace's default at every create and image check.
		label, err := c.GetLabel(namespaces.WithNamespace(sctx, r.ns), defaults.DefaultSnapshotterNSLabel)
		if errdefs.IsNotFound(err) {
			label, err = "", nil // the namespace is not there yet: no label
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("connect to containerd at %s: default snapshotter: %w", address, err)
		}
		r.snapshotter = cmp.Or(label, defaults.DefaultSnapshotter)
	}
	if r.logDir != "" {
		if err := os.MkdirAll(r.logDir, 0o700); err != nil {
			c.Close()
			return nil, fmt.Errorf("create log directory: %w", err)
		}
	}
	if r.stateDir != "" {
		// Output files of exec probes a killed reconciler left.
		_ = os.RemoveAll(r.probeDir())
		_ = os.RemoveAll(filepath.Join(r.stateDir, "fifo")) // of versions that used FIFOs
	}
	r.stats = &statsCache{ttl: DefaultStatsTTL, now: time.Now, read: r.readTaskUsage}
	if r.metrics != nil {
		r.metrics.rt.Store(r)
	}
	return r, nil
}

// Close closes the connection.
func (r *Runtime) Close() error {
	if r.metrics != nil {
		r.metrics.rt.CompareAndSwap(r, nil)
	}
	return r.client.Close()
}

// Namespace is the containerd namespace in use.
func (r *Runtime) Namespace() string { return r.ns }

// LogPath is the file a container's stdout and stderr go to ("" without a log dir).
func (r *Runtime) LogPath(id string) string {
	if r.logDir == "" {
		return ""
	}
	return logfile.Path(r.logDir, id)
}
