package testenv

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestManifest(t *testing.T) {
	got := Manifest("web", EnvSpec("A", "1", "B", "two words"), "", "stopGracePeriod: 2s")
	want := "apiVersion: warren/v1\nkind: Task\nmetadata:\n  name: web\nspec:\n  image: localhost/reconciler/testapp:v1\n" +
		"  env:\n    - {name: A, value: \"1\"}\n    - {name: B, value: \"two words\"}\n  stopGracePeriod: 2s\n"
	if got != want {
		t.Errorf("Manifest:\n%s\nwant:\n%s", got, want)
	}
	if got := WithImage(Manifest("x"), "r.example/x:1"); !strings.Contains(got, "\n  image: r.example/x:1\n") {
		t.Errorf("WithImage:\n%s", got)
	}
}

func TestRunArgs(t *testing.T) {
	got := Run{Address: "/a.sock", Containerd: "external", Namespace: "ns", StateDir: "/s", Resync: 2 * time.Second, Flags: []string{"-v", "1"}}.Args()
	want := []string{"run", "--address", "/a.sock", "--containerd", "external", "--namespace", "ns", "--state-dir", "/s", "--resync", "2s", "-v", "1"}
	if !slices.Equal(got, want) {
		t.Errorf("Args = %q, want %q", got, want)
	}
}

// TestDaemonOutput: both streams kept in order and passed to Lines, waits
// end on a line, on the exit and on the timeout, Stop ends the process.
func TestDaemonOutput(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	d, err := Start("sh", []string{"-c", "echo one; echo two >&2; echo \"$X\"; sleep 30"}, Options{
		Env: []string{"X=three"}, Grace: 5 * time.Second,
		Lines: func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.AwaitLog(ctx, "three", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := d.Output(); got != "one\ntwo\nthree\n" {
		t.Errorf("Output = %q", got)
	}
	if got := d.Tail(2); got != "two\nthree" {
		t.Errorf("Tail(2) = %q", got)
	}
	mu.Lock()
	if !slices.Equal(lines, []string{"one", "two", "three"}) {
		t.Errorf("Lines got %q", lines)
	}
	mu.Unlock()
	if err := d.AwaitLog(ctx, "four", 100*time.Millisecond); err == nil || errors.Is(err, ErrExited) {
		t.Errorf("AwaitLog of a line never written: %v, want a timeout", err)
	}
	began := time.Now()
	d.Stop()
	if d.Alive() || time.Since(began) > 4*time.Second {
		t.Errorf("Stop: alive %v after %s", d.Alive(), time.Since(began))
	}
	if err := d.AwaitLog(ctx, "four", time.Second); !errors.Is(err, ErrExited) {
		t.Errorf("AwaitLog after the exit: %v, want ErrExited", err)
	}
}

func TestSplitRule(t *testing.T) {
	got := SplitRule(`CNI-ISOLATION-STAGE-1 -i rcbr1 ! -o rcbr1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge)" -j CNI-ISOLATION-STAGE-2`)
	want := []string{"CNI-ISOLATION-STAGE-1", "-i", "rcbr1", "!", "-o", "rcbr1", "-m", "comment", "--comment",
		"CNI firewall plugin rules (ingressPolicy: same-bridge)", "-j", "CNI-ISOLATION-STAGE-2"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("splitRule:\n got %q\nwant %q", got, want)
	}
}
