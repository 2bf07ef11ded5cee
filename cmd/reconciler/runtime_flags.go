package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/warren/reconciler/pkg/runtime"
	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// DefaultSecretSources is where secret files may come from unless the
// operator says otherwise.
const DefaultSecretSources = "/etc/reconciler/secrets"

// nodeFlags are the run-time flags of the daemon that are not about where
// things are: the node policy, registry credentials and log rotation.
type nodeFlags struct {
	allowPrivileged bool
	allowCompat     bool
	allowCaps       listFlag
	bindSources     listFlag
	secretSources   listFlag
	ageIdentity     string
	registryConfig  string
	logMaxSize      string
	logMaxFiles     int
	hostPorts       string
	bridge          string
	bridgeSubnet    string
	cniPluginDirs   listFlag
	netRunDir       string

	maxSize int64               // parsed logMaxSize
	ports   []runtime.PortRange // parsed hostPorts
}

func (n *nodeFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&n.allowPrivileged, "allow-privileged", false, "node policy: allow manifests with securityContext.privileged")
	fs.BoolVar(&n.allowCompat, "allow-compat-syscalls", false, "node policy: keep the node's 32-bit syscall ABIs (x86 and x32 on amd64, arm on arm64) in every task's seccomp profile, for 64-bit images that run 32-bit programs (by default a task gets its image's ABI only)")
	fs.Var(&n.allowCaps, "allow-capabilities", "node policy: capabilities manifests may add (comma-separated or repeated, e.g. NET_ADMIN,SYS_TIME; ALL for any)")
	fs.Var(&n.bindSources, "allowed-bind-sources", "node policy: host directories bind mounts may come from (comma-separated or repeated; default none: no bind mounts)")
	fs.Var(&n.secretSources, "allowed-secret-sources", "node policy: host directories secret files may come from (comma-separated or repeated; default /etc/reconciler/secrets)")
	fs.StringVar(&n.ageIdentity, "age-identity", "", "file of age identities (AGE-SECRET-KEY-1... lines, as age-keygen writes them) that decrypt the *.age secret files of the manifests; read again at each staging; default none: an encrypted secret is an error on its task")
	fs.StringVar(&n.registryConfig, "registry-config", "", "Docker-style config.json with registry credentials (default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json; a missing file means anonymous pulls)")
	fs.StringVar(&n.logMaxSize, "log-max-size", "10Mi", "task log files are rotated at this size (bytes, or a quantity such as 512Ki, 10Mi)")
	fs.IntVar(&n.logMaxFiles, "log-max-files", logfile.DefaultMaxFiles, "task log files kept per container, the current one included")
	fs.StringVar(&n.hostPorts, "allowed-host-ports", runtime.DefaultAllowedHostPorts, "node policy: host ports bridge tasks may publish (ports and ranges, comma-separated)")
	fs.StringVar(&n.bridge, "bridge", runtime.DefaultBridge, "the Linux bridge of network: bridge tasks")
	fs.StringVar(&n.bridgeSubnet, "bridge-subnet", runtime.DefaultBridgeSubnet, "IPv4 subnet of the bridge (the default is used by none of Docker, Podman and nerdctl)")
	fs.Var(&n.cniPluginDirs, "cni-plugin-dirs", "where the CNI plugins are (comma-separated; default /usr/lib/cni,/opt/cni/bin)")
	fs.StringVar(&n.netRunDir, "network-run-dir", "", "where network namespaces are pinned and addresses leased (default /run/reconciler/NAMESPACE; keep it on a tmpfs)")
}

func (n *nodeFlags) check() error {
	q, err := resource.ParseQuantity(n.logMaxSize)
	if err != nil {
		return fmt.Errorf("--log-max-size: %q is not a size such as 10Mi", n.logMaxSize)
	}
	if n.maxSize = q.Value(); n.maxSize < logfile.MinMaxSize {
		return fmt.Errorf("--log-max-size must be at least %d bytes, got %s", logfile.MinMaxSize, n.logMaxSize)
	}
	if n.logMaxFiles < 1 {
		return fmt.Errorf("--log-max-files must be at least 1, got %d", n.logMaxFiles)
	}
	for _, s := range n.bindSources {
		if !filepath.IsAbs(s) {
			return fmt.Errorf("--allowed-bind-sources: %q is not an absolute path", s)
		}
	}
	if len(n.secretSources) == 0 {
		n.secretSources = listFlag{DefaultSecretSources}
	}
	for _, s := range n.secretSources {
		if !filepath.IsAbs(s) {
			return fmt.Errorf("--allowed-secret-sources: %q is not an absolute path", s)
		}
	}
	if n.ageIdentity != "" {
		if err := runtime.CheckAgeIdentity(n.ageIdentity); err != nil {
			return err
		}
	}
	ports, err := runtime.ParsePortRanges(n.hostPorts)
	if err != nil {
		return fmt.Errorf("--allowed-host-ports: %w", err)
	}
	n.ports = ports
	if n.netRunDir != "" && !filepath.IsAbs(n.netRunDir) {
		return fmt.Errorf("--network-run-dir: %q is not an absolute path", n.netRunDir)
	}
	if n.registryConfig == "" {
		n.registryConfig = runtime.DefaultRegistryConfig(os.Getenv)
	}
	return nil
}

// options are the runtime options these flags make. withLogDriver makes the
// shim run a log driver (the daemon's; see logDriverBinary); without it
// (plan) nothing is started or written.
func (n *nodeFlags) options(stateDir, namespace string, withLogDriver bool, log logr.Logger) []runtime.Option {
	runDir := n.netRunDir
	if runDir == "" {
		runDir = filepath.Join(runtime.DefaultNetworkRunDir, namespace)
	}
	opts := []runtime.Option{
		runtime.WithStateDir(stateDir),
		runtime.WithPolicy(runtime.Policy{
			AllowPrivileged:      n.allowPrivileged,
			AllowCapabilities:    n.allowCaps,
			AllowedBindSources:   n.bindSources,
			AllowedSecretSources: n.secretSources,
			AllowCompatSyscalls:  n.allowCompat,
			AllowedHostPorts:     n.ports,
		}),
		runtime.WithRegistryConfig(n.registryConfig),
		runtime.WithAgeIdentity(n.ageIdentity),
		runtime.WithNetwork(runtime.Network{Name: "reconciler-" + namespace, Bridge: n.bridge, Subnet: n.bridgeSubnet,
			PluginDirs: n.cniPluginDirs, RunDir: runDir}),
	}
	if withLogDriver {
		bin, err := logDriverBinary(stateDir, func(err error, msg string) { log.Error(err, msg) })
		if err != nil {
			log.Error(err, "cannot find this binary to run it as the log driver; task logs are written without rotation")
		} else {
			opts = append(opts, runtime.WithLogDriver(bin, n.maxSize, n.logMaxFiles))
		}
	}
	return opts
}

// listFlag is a list flag: comma-separated, repeatable.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Type is the value's name in the usage (pflag.Value).
func (l *listFlag) Type() string { return "list" }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
