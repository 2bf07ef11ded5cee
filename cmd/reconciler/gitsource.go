package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/warren/reconciler/pkg/source"
)

// gitFlags are the flags of the built-in git source (docs/gitops.md).
type gitFlags struct {
	url         string
	ref         string
	paths       listFlag
	interval    time.Duration
	timeout     time.Duration
	maxSize     string
	credentials string
	sshKey      string
	knownHosts  listFlag
	acceptNew   bool
	verify      listFlag
}

func (g *gitFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&g.url, "git", "", "sync the manifests from this git repository (https://, http://, git://, file://, ssh:// or USER@HOST:PATH) instead of --manifests; see docs/gitops.md")
	fs.StringVar(&g.ref, "git-ref", "", "branch, tag or full commit hash to apply (default: the remote's HEAD, its default branch)")
	fs.Var(&g.paths, "git-path", "directories inside the repository whose top-level manifests are applied, flattened into one (comma-separated or repeated; {{hostname}} is this node's host name; default: the root)")
	fs.DurationVar(&g.interval, "git-interval", source.DefaultInterval, "time between two checks of the remote (±10% jitter)")
	fs.DurationVar(&g.timeout, "git-timeout", source.DefaultTimeout, "longest time one sync (ls-remote and fetch) may take")
	fs.StringVar(&g.maxSize, "git-max-size", "100Mi", "largest fetch, in bytes written to disk (and largest sum of the selected manifests)")
	fs.StringVar(&g.credentials, "git-credentials", "", "file read at each sync with HTTP basic auth credentials: USER:PASSWORD, or a token alone, on its first line")
	fs.StringVar(&g.sshKey, "git-ssh-key", "", "private key file for an SSH --git URL (ssh://[USER@]HOST[:PORT]/PATH or USER@HOST:PATH; OpenSSH or PEM, without a passphrase), read at each sync")
	fs.Var(&g.knownHosts, "git-known-hosts", "known_hosts files the SSH server's host key must be in (comma-separated or repeated; default: ~/.ssh/known_hosts of the daemon's user, then /etc/ssh/ssh_known_hosts)")
	fs.BoolVar(&g.acceptNew, "git-accept-new-host-key", false, "trust on first use: add the key of an SSH host that no known_hosts file names to the first of --git-known-hosts, and accept it (a changed key is refused all the same)")
	fs.Var(&g.verify, "git-verify", "apply only commits (or annotated tags) signed by a key of these files, read at each sync: armored OpenPGP public keyrings or SSH allowed-signers files (comma-separated or repeated; only the tip is verified, not its history)")
}

// config turns the flags into the source's Config under stateDir; ok is
// false when --git is not set.
func (g *gitFlags) config(stateDir string, hostname func() (string, error)) (cfg source.Config, ok bool, err error) {
	if g.url == "" {
		if g.ref != "" || len(g.paths) > 0 || g.credentials != "" {
			return cfg, false, errors.New("--git-ref, --git-path and --git-credentials need --git")
		}
		if g.sshKey != "" || len(g.knownHosts) > 0 || g.acceptNew {
			return cfg, false, errors.New("--git-ssh-key, --git-known-hosts and --git-accept-new-host-key need --git")
		}
		if len(g.verify) > 0 {
			return cfg, false, errors.New("--git-verify needs --git")
		}
		return cfg, false, nil
	}
	q, err := resource.ParseQuantity(g.maxSize)
	if err != nil || q.Value() <= 0 {
		return cfg, false, fmt.Errorf("--git-max-size: %q is not a size such as 100Mi", g.maxSize)
	}
	host := ""
	if h, err := hostname(); err == nil {
		host = h
	}
	paths, err := source.ExpandPaths(g.paths, host)
	if err != nil {
		return cfg, false, err
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return cfg, false, err
	}
	cfg = source.Config{
		URL: g.url, Ref: g.ref, Paths: paths, Interval: g.interval, Timeout: g.timeout,
		MaxSize: q.Value(), Credentials: g.credentials, Dir: filepath.Join(abs, "git"),
		// /proc/self/exe is this binary even when an upgrade has replaced
		// the file since the daemon started.
		Helper: []string{"/proc/self/exe", source.HelperArg},
	}
	// Absolute, so that the errors name the very files that were read.
	if cfg.SSHKey, err = absPath(g.sshKey); err != nil {
		return cfg, false, fmt.Errorf("--git-ssh-key: %w", err)
	}
	for _, f := range g.knownHosts {
		if f, err = absPath(f); err != nil {
			return cfg, false, fmt.Errorf("--git-known-hosts: %w", err)
		}
		cfg.KnownHosts = append(cfg.KnownHosts, f)
	}
	cfg.AcceptNewHostKey = g.acceptNew
	for _, f := range g.verify {
		// Absolute, so that the errors name the very file that was read.
		if f, err = filepath.Abs(f); err != nil {
			return cfg, false, fmt.Errorf("--git-verify: %w", err)
		}
		cfg.Verify = append(cfg.Verify, f)
	}
	if g.interval <= 0 {
		return cfg, false, fmt.Errorf("--git-interval must be positive, got %s", g.interval)
	}
	if err := cfg.Check(); err != nil {
		return cfg, false, err
	}
	return cfg, true, nil
}

// absPath is filepath.Abs but for "", which stays "".
func absPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	return filepath.Abs(p)
}

// sighupSyncs makes SIGHUP ask src to sync now, until ctx is done.
func sighupSyncs(ctx context.Context, src *source.Source, log logr.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: syncing the git source now")
			_ = src.SyncNow(ctx) // its error is logged and on the status
		}
	}
}

// handleSync is POST /sync: sync the git source now and answer with its
// status once done.
func (a *apiServer) handleSync(w http.ResponseWriter, r *http.Request) {
	if a.source == nil {
		writeJSON(w, http.StatusConflict, map[string]string{"error": "the daemon has no git source (run it with --git)"})
		return
	}
	err := a.source.SyncNow(r.Context())
	st := a.source.Status()
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": err.Error(), "source": st})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"source": st})
}

func (a *cli) syncCommand() *cobra.Command {
	var cf clientFlags
	var timeout time.Duration
	cmd := a.command("sync [--timeout 3m]", "make the daemon sync its git source now",
		"Asks the running daemon to sync its git source now (as SIGHUP does) and prints the applied commit, or the error (exit 1).",
		noArgs, func(cmd *cobra.Command, _ []string) int { return a.sync(cmd, &cf, timeout) })
	cf.register(cmd.Flags())
	cmd.Flags().DurationVar(&timeout, "timeout", 3*time.Minute, "how long to wait for the sync")
	return cmd
}

// sync is `sync` once its flags are parsed.
func (a *cli) sync(cmd *cobra.Command, cf *clientFlags, timeout time.Duration) int {
	stdout, stderr := a.stdout, a.stderr
	client, err := cf.client(cmd)
	if err != nil {
		return a.usageError(cmd, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client.http.Timeout = timeout
	var resp struct {
		Error  string        `json:"error"`
		Source source.Status `json:"source"`
	}
	code, err := client.post(ctx, "/sync", &resp)
	switch {
	case err != nil:
		fmt.Fprintln(stderr, "reconciler sync:", err)
		return exitFailure
	case code != http.StatusOK:
		fmt.Fprintln(stderr, "reconciler sync:", resp.Error)
		if resp.Source.Commit != "" {
			fmt.Fprintf(stderr, "still applied: %s (%s)\n", resp.Source.Commit, resp.Source.RefName)
		}
		return exitFailure
	}
	fmt.Fprintf(stdout, "applied %s (%s) since %s\n", resp.Source.Commit, resp.Source.RefName, resp.Source.AppliedAt.Local().Format(time.RFC3339))
	return exitOK
}
