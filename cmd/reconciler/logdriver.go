package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/warren/reconciler/pkg/runtime/logfile"
)

// driverFile is the name of the standalone log driver in the state directory.
const driverFile = "log-driver"

// logDriverBinary returns the program the shims run as the log driver of
// every task: the standalone driver embedded by `make build`, written into
// stateDir, or else this binary itself (a plain `go build`, or a state
// directory the driver cannot run from, such as one mounted noexec; the
// reason is logged).
//
// The standalone driver is the same code without the daemon's packages to
// load and initialise: a container start waits less for it, and it costs
// less CPU and much less memory while it runs (docs/benchmarks.md).
func logDriverBinary(stateDir string, warn func(err error, msg string)) (string, error) {
	if embeddedDriver != "" {
		path, err := installDriver(stateDir, embeddedDriver)
		// Writing the driver out read every page of it: give them back,
		// they are not needed again (the file is the copy).
		dropPages(embeddedDriver)
		if err == nil {
			return path, nil
		}
		warn(err, "cannot use the embedded log driver; this binary is the log driver instead")
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	return exe, err
}

// installDriver writes program into dir as driverFile (atomically: a
// running shim may start the previous one at the same moment) and checks
// that it runs. The shims run it as root: dir must be this process's and
// writable by nobody else.
func installDriver(dir, program string) (string, error) {
	if err := privateDir(dir); err != nil {
		return "", err
	}
	path := filepath.Join(dir, driverFile)
	// Left by a daemon killed while it wrote one.
	if stale, err := filepath.Glob(filepath.Join(dir, "."+driverFile+"-*")); err == nil {
		for _, f := range stale {
			_ = os.Remove(f)
		}
	}
	f, err := os.CreateTemp(dir, "."+driverFile+"-*")
	if err != nil {
		return "", fmt.Errorf("write the log driver: %w", err)
	}
	tmp := f.Name()
	_, err = f.WriteString(program)
	err = errors.Join(err, f.Chmod(0o755), f.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("write the log driver %s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, path, logfile.DriverMarker, "v1", "--check").CombinedOutput(); err != nil {
		return "", fmt.Errorf("run the log driver %s: %w %s", path, err, out)
	}
	return path, nil
}

// privateDir checks that dir belongs to this process's user and that no
// one else can write to it.
func privateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("write the log driver: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("write the log driver: %s is writable by others or not this user's (mode %v): the shims run the driver as root", dir, fi.Mode().Perm())
	}
	return nil
}
