package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/warren/reconciler/pkg/runtime/logfile"
)

func TestCmdLogs(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, "logs")
	w, err := logfile.Open(dir, "web-0123456789ab", 1<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"one", "two", "three"} {
		if err := w.WriteRecord(time.Now(), "stdout", false, []byte(l)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   string
		stderrIn string
	}{
		{name: "all", args: []string{"web", "--state-dir", state}, stdout: "one\ntwo\nthree\n"},
		{name: "flags first", args: []string{"--tail", "1", "--state-dir", state, "web"}, stdout: "three\n"},
		{name: "flags after the task", args: []string{"web", "--tail", "2", "--state-dir", state}, stdout: "two\nthree\n"},
		{name: "no task", args: []string{"--state-dir", state}, code: exitUsage, stderrIn: "Usage: reconciler logs TASK"},
		{name: "two tasks", args: []string{"web", "db", "--state-dir", state}, code: exitUsage, stderrIn: `unexpected argument "db"`},
		{name: "bad flag", args: []string{"web", "--nope"}, code: exitUsage, stderrIn: "unknown flag: --nope"},
		{name: "unknown task", args: []string{"db", "--state-dir", state}, code: exitFailure, stderrIn: `no logs for task "db"`},
		{name: "no log directory", args: []string{"web", "--state-dir", filepath.Join(state, "nope")}, code: exitFailure, stderrIn: `no logs for task "web"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(append([]string{"logs"}, tc.args...), &out, &errb)
			if code != tc.code || out.String() != tc.stdout || !strings.Contains(errb.String(), tc.stderrIn) {
				t.Errorf("logs %v = %d, stdout %q, stderr %q; want %d, %q, stderr with %q", tc.args, code, out.String(), errb.String(), tc.code, tc.stdout, tc.stderrIn)
			}
		})
	}
}

// TestLogDriverRunsBeforeDaemonInit starts this test binary, which imports
// what the reconciler binary does, as a shim starts a log driver, and reads
// Go's init trace: the driver must run (and exit) before the daemon's heavy
// packages initialise, since the shim waits for it before every start.
func TestLogDriverRunsBeforeDaemonInit(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, logfile.DriverMarker, "v1", "--dir", t.TempDir())
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1", "CONTAINER_ID=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitFailure || !strings.Contains(stderr.String(), "CONTAINER_ID is not set") {
		t.Fatalf("driver mode: %v, stderr:\n%s", err, stderr.String())
	}
	for _, pkg := range []string{"google.golang.org/grpc", "github.com/containerd/containerd/v2/client", "net/http", "github.com/prometheus/client_golang/prometheus"} {
		if strings.Contains(stderr.String(), "init "+pkg+" @") {
			t.Errorf("%s was initialised before the log driver ran", pkg)
		}
	}
}

func TestCmdLogDriverErrors(t *testing.T) {
	t.Setenv("CONTAINER_ID", "")
	for _, tc := range []struct {
		args     []string
		code     int
		stderrIn string
	}{
		{[]string{"log-driver"}, exitUsage, "--dir is required"},
		{[]string{"log-driver", "--bogus"}, exitUsage, "flag provided but not defined"},
		{[]string{"--dir", t.TempDir(), logfile.DriverMarker, "v1"}, exitFailure, "CONTAINER_ID is not set"},
	} {
		var out, errb bytes.Buffer
		if code := runMain(tc.args, &out, &errb); code != tc.code || !strings.Contains(errb.String(), tc.stderrIn) {
			t.Errorf("%v = %d, %q; want %d with %q", tc.args, code, errb.String(), tc.code, tc.stderrIn)
		}
	}
}

func TestNodeFlags(t *testing.T) {
	parse := func(args ...string) (*nodeFlags, error) {
		var n nodeFlags
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		fs.SetOutput(&bytes.Buffer{})
		n.register(fs)
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		return &n, n.check()
	}
	n, err := parse("--allow-capabilities", "NET_ADMIN, SYS_TIME", "--allow-capabilities", "CHOWN",
		"--allowed-bind-sources", "/srv,/data", "--log-max-size", "4Ki", "--log-max-files", "2", "--registry-config", "/x/config.json")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"NET_ADMIN", "SYS_TIME", "CHOWN"}; !reflect.DeepEqual([]string(n.allowCaps), want) {
		t.Errorf("allowCaps = %v, want %v", n.allowCaps, want)
	}
	if want := []string{"/srv", "/data"}; !reflect.DeepEqual([]string(n.bindSources), want) {
		t.Errorf("bindSources = %v", n.bindSources)
	}
	if n.maxSize != 4096 || n.logMaxFiles != 2 || n.registryConfig != "/x/config.json" {
		t.Errorf("parsed %+v", n)
	}
	t.Setenv("DOCKER_CONFIG", "/dc")
	if n, err := parse(); err != nil || n.registryConfig != "/dc/config.json" || n.maxSize != 10<<20 {
		t.Errorf("defaults: %+v, %v", n, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-max-size", "lots"}, `--log-max-size: "lots" is not a size`},
		{[]string{"--log-max-size", "10"}, "--log-max-size must be at least 256 bytes"},
		{[]string{"--log-max-files", "0"}, "--log-max-files must be at least 1"},
		{[]string{"--allowed-bind-sources", "srv"}, `--allowed-bind-sources: "srv" is not an absolute path`},
	} {
		if _, err := parse(tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	// The flags reach run's usage errors: exit 2 with the message.
	var out, errb bytes.Buffer
	if code := runMain([]string{"run", "--log-max-files", "0"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "--log-max-files") {
		t.Errorf("run with a bad log flag = %d, %q", code, errb.String())
	}
}
