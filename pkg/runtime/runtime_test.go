package runtime

import (
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/go-logr/logr"
)

func TestProcessArgs(t *testing.T) {
	ep, cmd := []string{"/entry"}, []string{"--default"}
	tests := []struct {
		name          string
		command, args []string
		want          []string
	}{
		{name: "image defaults", want: []string{"/entry", "--default"}},
		{name: "args replace CMD", args: []string{"-x"}, want: []string{"/entry", "-x"}},
		{name: "command replaces ENTRYPOINT and CMD", command: []string{"/bin/sh"}, want: []string{"/bin/sh"}},
		{name: "command and args", command: []string{"/bin/sh"}, args: []string{"-c", "true"}, want: []string{"/bin/sh", "-c", "true"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := processArgs(ep, cmd, tc.command, tc.args); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("processArgs = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"": syscall.SIGTERM, "SIGTERM": syscall.SIGTERM, "quit": syscall.SIGQUIT, "SIGKILL": syscall.SIGKILL} {
		got, err := parseSignal(in)
		if err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseSignal("SIGNOPE"); err == nil || !strings.Contains(err.Error(), `unknown signal "SIGNOPE"`) {
		t.Errorf("parseSignal(SIGNOPE) error = %v", err)
	}
}

func TestNormalizeImage(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                           "docker.io/library/nginx:latest",
		"nginx:1.27":                      "docker.io/library/nginx:1.27",
		"localhost/reconciler/testapp:v1": "localhost/reconciler/testapp:v1",
		"127.0.0.1:5000/app@sha256:" + strings.Repeat("a", 64): "127.0.0.1:5000/app@sha256:" + strings.Repeat("a", 64),
	} {
		got, err := NormalizeImage(in)
		if err != nil || got != want {
			t.Errorf("NormalizeImage(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := NormalizeImage("nginx:bad tag!"); err == nil {
		t.Error("NormalizeImage accepted an invalid reference")
	}
}

func TestStartManagedRefusesLongSocketPath(t *testing.T) {
	dir := "/tmp/" + strings.Repeat("d", 120)
	_, err := StartManaged(t.Context(), dir, "containerd", logr.Discard())
	if err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("StartManaged with a long path: %v, want a socket path error", err)
	}
}

func TestStartManagedMissingBinary(t *testing.T) {
	_, err := StartManaged(t.Context(), t.TempDir(), "no-such-containerd-binary", logr.Discard())
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y containerd runc") {
		t.Fatalf("StartManaged without a binary: %v, want an install hint", err)
	}
}

func TestConfigTOML(t *testing.T) {
	p := PathsFor("/x")
	got := configTOML(p)
	for _, want := range []string{`root = "/x/root"`, `state = "/x/state"`, `address = "/x/containerd.sock"`, `address = "/x/containerd.sock.ttrpc"`, `disabled_plugins = ["io.containerd.grpc.v1.cri"]`} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %s:\n%s", want, got)
		}
	}
}
