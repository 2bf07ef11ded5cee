package runtime

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// bundleExists matches containerd's answer to a task create whose bundle
// directory (under its state directory) is already there.
var bundleExists = regexp.MustCompile(`mkdir (/\S*/io\.containerd\.runtime\.v2\.task/[^/\s]+/[^/\s:]+): file exists`)

// clearStaleBundle removes the bundle directory containerd left behind for
// container id when a start was cut short, if err is containerd refusing a
// new task for it. It reports whether it removed one.
//
// containerd 1.6 makes a task's bundle directory, then starts its shim; a
// start whose caller went away (the reconciler killed mid-start) can leave
// a shim that exits without ever creating the task, and containerd's
// cleanup after it fails (the shim finds no runtime file), so the directory
// stays and every later task of that container ID fails with "mkdir ...:
// file exists" until containerd restarts (containerd removes such bundles
// when it starts). The reconciler does the same removal, and only when it
// is sure nothing uses the directory: it is the bundle of this namespace
// and this container ID, containerd has no task for the ID (the create was
// just refused), no shim of it is alive, and nothing stays mounted in it.
// A reconciler that does not see containerd's state directory (another
// mount namespace) removes nothing, and the error says what to do.
func (r *Runtime) clearStaleBundle(err error, id string) (bool, error) {
	m := bundleExists.FindStringSubmatch(err.Error())
	if m == nil {
		return false, nil
	}
	dir := m[1]
	if filepath.Clean(dir) != dir || filepath.Base(dir) != id || filepath.Base(filepath.Dir(dir)) != r.ns {
		return false, nil
	}
	if _, serr := os.Lstat(dir); serr != nil {
		return false, fmt.Errorf("containerd kept the bundle %s of an interrupted start, which this process cannot see (%v); restart containerd or remove it", dir, serr)
	}
	if pid, alive := shimAlive(dir, id); alive {
		return false, fmt.Errorf("the shim (pid %d) of an interrupted start of %s still runs; its bundle %s stays until it exits", pid, id, dir)
	}
	// What containerd's own bundle delete does: the root file system first.
	if err := mount.UnmountAll(filepath.Join(dir, "rootfs"), 0); err != nil {
		return false, fmt.Errorf("clear the stale bundle %s: %w", dir, err)
	}
	if mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir)); err != nil {
		return false, fmt.Errorf("clear the stale bundle %s: %w", dir, err)
	} else if len(mounts) > 0 {
		return false, fmt.Errorf("the stale bundle %s of an interrupted start still has %s mounted; restart containerd or unmount it", dir, mounts[0].Mountpoint)
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, fmt.Errorf("clear the stale bundle %s: %w", dir, err)
	}
	r.log.Info("cleared the bundle an interrupted start left in containerd's state", "container", id, "bundle", dir)
	return true, nil
}

// shimAlive reports the shim whose pid the bundle records (shim.pid, written
// by the shim when it starts) if that process is alive and is the shim of
// container id (not another process that took its pid).
func shimAlive(dir, id string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "shim.pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if err := unix.Kill(pid, 0); err == unix.ESRCH {
		return pid, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return pid, false // gone meanwhile
	}
	return pid, bytes.Contains(append(cmdline, 0), []byte("\x00-id\x00"+id+"\x00"))
}

// defaultRuncRoot is the runc state directory of containerd's runc shim
// when its options name none.
const defaultRuncRoot = "/run/containerd/runc"

// runcExists is runc's answer to a create whose container ID it still
// holds.
const runcExists = "container with given ID already exists"

// clearStaleRuncState removes what runc still holds of container id when
// err is runc refusing a new task for it. It reports whether it removed
// it.
//
// A task whose delete or start was cut short (the reconciler killed in
// the middle, a shim gone) can leave runc's state of the container behind
// after containerd has forgotten the task: runc then refuses every new
// container of that ID ("container with given ID already exists") for as
// long as the host runs. containerd has no task of the ID (it just tried
// to create one), so whatever runc holds of it is no task of containerd's:
// `runc delete --force` removes it as the shim would have (killing a
// process of it that still runs, unsupervised, and its cgroup). Only in
// this namespace's runc directory, and only for this ID.
func (r *Runtime) clearStaleRuncState(ctx context.Context, err error, id string) (bool, error) {
	if !strings.Contains(err.Error(), runcExists) {
		return false, nil
	}
	root := filepath.Join(cmp.Or(r.runcRoot, defaultRuncRoot), r.ns)
	state := filepath.Join(root, id, "state.json")
	b, rerr := os.ReadFile(state)
	if errors.Is(rerr, fs.ErrNotExist) {
		// Gone already: the shim of the refused create removes runc's
		// state of a container whose process is dead as it cleans up.
		r.log.Info("runc's stale state of an interrupted task is gone; creating the task again", "container", id)
		return true, nil
	}
	if rerr != nil {
		return false, fmt.Errorf("runc holds container %s of an interrupted task, and %s cannot be read here (%v); run runc --root %s delete --force %s", id, state, rerr, root, id)
	}
	var st struct {
		Pid int `json:"init_process_pid"`
	}
	_ = json.Unmarshal(b, &st)
	cmd := exec.CommandContext(ctx, r.runcBinary(), "--root", root, "delete", "--force", id)
	if out, derr := cmd.CombinedOutput(); derr != nil {
		return false, fmt.Errorf("runc delete --force %s: %w: %s", id, derr, bytes.TrimSpace(out))
	}
	r.log.Info("cleared the runc state an interrupted task left", "container", id, "runcRoot", root, "pid", st.Pid)
	return true, nil
}

// runcBinary is the runc the shim runs: "runc" from PATH, as the shim's
// default BinaryName (tests set another).
func (r *Runtime) runcBinary() string {
	return cmp.Or(r.runcBin, "runc")
}
