package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-logr/logr"
)

// TestClearStaleBundle: the bundle a start cut short left in containerd's
// state is removed only when it is this namespace's bundle of this
// container and no shim of it is alive; anything else is left and said.
func TestClearStaleBundle(t *testing.T) {
	const id = "web-0123456789ab"
	// A shim that is alive: its command line names the container.
	live := exec.Command("sh", "-c", "sleep 60; true", "containerd-shim-runc-v2", "-namespace", "ns", "-id", id, "start")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Process.Kill(); live.Wait() })
	// A process alive under the pid file but not this container's shim.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	// A pid that no process has any more.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name     string
		ns, dir  string // the bundle named in containerd's answer, under the state directory
		make     bool   // the directory is there
		pid      int    // in shim.pid; 0: no file
		msg      string // containerd's answer; "" : the usual one for dir
		cleared  bool
		errWant  string // in the error; "": no error
		dirStays bool
	}{
		{name: "no shim pid", ns: "ns", dir: "ns/" + id, make: true, cleared: true},
		{name: "shim gone", ns: "ns", dir: "ns/" + id, make: true, pid: gone.Process.Pid, cleared: true},
		{name: "pid taken by another process", ns: "ns", dir: "ns/" + id, make: true, pid: other.Process.Pid, cleared: true},
		{name: "shim alive", ns: "ns", dir: "ns/" + id, make: true, pid: live.Process.Pid, errWant: "still runs", dirStays: true},
		{name: "not visible here", ns: "ns", dir: "ns/" + id, errWant: "cannot see"},
		{name: "another namespace", ns: "other", dir: "ns/" + id, make: true, dirStays: true},
		{name: "another container", ns: "ns", dir: "ns/web-ffffffffffff", make: true, dirStays: true},
		{name: "another error", ns: "ns", dir: "ns/" + id, make: true, msg: "failed to start shim: exec: not found", dirStays: true},
		{name: "a path not clean", ns: "ns", dir: "ns/../ns/" + id, make: true, dirStays: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "io.containerd.runtime.v2.task")
			dir := filepath.Join(state, filepath.FromSlash(c.dir))
			if c.make {
				if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}"), 0o600); err != nil {
					t.Fatal(err)
				}
				if c.pid != 0 {
					if err := os.WriteFile(filepath.Join(dir, "shim.pid"), []byte(strconv.Itoa(c.pid)), 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			msg := c.msg
			if msg == "" {
				msg = fmt.Sprintf("failed to start shim: mkdir %s/%s: file exists", state, c.dir)
			}
			r := &Runtime{ns: c.ns, log: logr.Discard()}
			cleared, err := r.clearStaleBundle(errors.New(msg), id)
			if cleared != c.cleared {
				t.Errorf("cleared %v, want %v", cleared, c.cleared)
			}
			if (err == nil) != (c.errWant == "") || (err != nil && !strings.Contains(err.Error(), c.errWant)) {
				t.Errorf("error %v, want one saying %q", err, c.errWant)
			}
			if _, serr := os.Stat(dir); c.make && (serr == nil) != c.dirStays {
				t.Errorf("bundle there afterwards: %v, want %v", serr == nil, c.dirStays)
			}
		})
	}
}

// TestClearStaleRuncState: runc's refusal of a container ID it still holds
// is cleared with runc delete --force, in this namespace's runc directory
// and for this ID only; any other error is left alone, and a state that
// cannot be read or a runc that fails is said.
func TestClearStaleRuncState(t *testing.T) {
	const id = "web-0123456789ab"
	exists := errors.New("failed to create shim task: OCI runtime create failed: runc create failed: container with given ID already exists: unknown")
	for _, c := range []struct {
		name    string
		err     error
		state   bool   // state.json present
		runcOut string // what the fake runc prints; "fail" makes it exit 1
		cleared bool
		wantErr string
		ran     bool
	}{
		{"another error", errors.New("mkdir /x: file exists"), true, "", false, "", false},
		{"runc holds the ID", exists, true, "", true, "", true},
		{"the state gone meanwhile: created again", exists, false, "", true, "", false},
		{"runc fails", exists, true, "fail", false, "runc delete --force " + id, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			root := filepath.Join(dir, "runc")
			if c.state {
				if err := os.MkdirAll(filepath.Join(root, "ns", id), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "ns", id, "state.json"), []byte(`{"init_process_pid": 4242}`), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := filepath.Join(dir, "args")
			script := "#!/bin/sh\necho \"$@\" > " + args + "\n"
			if c.runcOut == "fail" {
				script += "echo no such container; exit 1\n"
			}
			bin := filepath.Join(dir, "fake-runc")
			if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			r := &Runtime{ns: "ns", runcRoot: root, runcBin: bin, log: logr.Discard()}
			cleared, err := r.clearStaleRuncState(t.Context(), c.err, id)
			if cleared != c.cleared || (err == nil) != (c.wantErr == "") || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("= %v, %v; want %v, error with %q", cleared, err, c.cleared, c.wantErr)
			}
			got, rerr := os.ReadFile(args)
			if ran := rerr == nil; ran != c.ran {
				t.Fatalf("runc ran: %v, want %v", ran, c.ran)
			}
			if c.ran {
				if want := fmt.Sprintf("--root %s delete --force %s\n", filepath.Join(root, "ns"), id); string(got) != want {
					t.Errorf("runc %q, want %q", got, want)
				}
			}
		})
	}
}
