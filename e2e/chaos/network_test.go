package chaos

import (
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/e2e/invariants"
	"github.com/warren/reconciler/e2e/testenv"
)

// bridgeNet is a world's bridge network: its own Linux bridge, subnet and
// run directory (never the defaults, never another world's or another
// run's), and the CNI network name the reconciler derives from the
// namespace.
type bridgeNet struct {
	bridge, subnet, runDir, name string
}

// useBridge gives the world a bridge network of its own: the daemon's
// flags, and the checker's network rule (no pin, port file, lease or
// iptables rule of a container that does not exist). At the end the
// pins are unmounted, the network's nat rules dropped and the bridge
// deleted. Call it before start.
func (w *world) useBridge() {
	w.t.Helper()
	h := fnv.New32a()
	h.Write([]byte(env.run))
	n := h.Sum32()
	k := slices.Index(kinds, w.kind) + 1 // 0 for the checker's world
	// Bridge "rcc" + 5 digits: the run's hash, the kind's rank last
	// (worlds of one run never share one). Subnet 10.150-199.X.0/24,
	// apart from the e2e tests' 10.200-249: X's last digit is the kind's
	// rank, so that worlds of one run never share one either.
	bn := &bridgeNet{
		bridge: fmt.Sprintf("rcc%04d%d", n%10000, k%10),
		subnet: fmt.Sprintf("10.%d.%d.0/24", 150+n%50, (n/50)%25*10+uint32(k%10)),
		runDir: filepath.Join(env.dir, "n-"+w.kind),
		name:   "reconciler-" + w.ns,
	}
	w.net = bn
	w.flags = append(w.flags, "--bridge", bn.bridge, "--bridge-subnet", bn.subnet, "--network-run-dir", bn.runDir)
	w.check.NetworkRunDir, w.check.NetworkName = bn.runDir, bn.name
	// Runs after the daemon stops (registered before start).
	w.t.Cleanup(func() {
		testenv.UnpinAll(bn.runDir)
		if err := testenv.DropNATRules(bn.name); err != nil {
			w.t.Log(err)
		}
		_ = exec.Command("ip", "link", "delete", bn.bridge).Run()
		_ = os.RemoveAll(bn.runDir)
	})
}

// bridgeSpec is the spec of a bridge task serving HTTP on :8080, published
// on 127.0.0.1:port; / answers "NAME-vVERSION".
func bridgeSpec(name string, v, port int) []string {
	return []string{
		"network: bridge",
		fmt.Sprintf("args: [-listen, ':8080', -message, %s-v%d]", name, v),
		fmt.Sprintf("ports: [{containerPort: 8080, hostPort: %d, hostIP: 127.0.0.1}]", port),
	}
}

// addBridged makes names bridge tasks, each with a free host port of its
// own (their files are written by setTask, burst or addStable).
func (w *world) addBridged(names ...string) {
	w.t.Helper()
	for _, name := range names {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			w.t.Fatal(err)
		}
		w.ports[name] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
}

// unanswered returns a "no-answer" violation for each desired bridge task
// (one with a file now) whose published port does not answer on
// 127.0.0.1 with its version's message.
func (w *world) unanswered() []invariants.Violation {
	var out []invariants.Violation
	for name, port := range w.ports {
		v, ok := w.versions[name]
		if !ok {
			continue
		}
		want := fmt.Sprintf("%s-v%d", name, v)
		got, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil && strings.TrimSpace(got) == want {
			continue
		}
		detail := fmt.Sprintf("127.0.0.1:%d answers %q, want %q", port, strings.TrimSpace(got), want)
		if err != nil {
			detail = fmt.Sprintf("127.0.0.1:%d: %v (want %q)", port, err, want)
		}
		out = append(out, invariants.Violation{Kind: "no-answer", Subject: name, Detail: detail})
	}
	slices.SortFunc(out, func(a, b invariants.Violation) int { return strings.Compare(a.Subject, b.Subject) })
	return out
}

func httpGet(url string) (string, error) {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}

// networkLogs are the log lines of the reconciler starting an operation
// that sets up or tears down a bridge container's network.
var networkLogs = []string{"creating container", "stopping container", "deleting container"}

// TestChaosNetKill (fault 9): the reconciler is killed (SIGKILL) while it
// sets up or tears down the network of random bridge tasks, each with a
// port published on 127.0.0.1: within 300 ms of a new, changed or removed
// manifest (half the time), or of the first create, stop or delete it
// logs after it (the other half), and started again, a third of the time
// after more changes while it was down. Convergence: every invariant,
// the network's included (no namespace pin, port file, address lease or
// iptables rule of a container that does not exist), and every desired
// bridge task answering on its port with its version. Every other task
// keeps its process and restart count.
func TestChaosNetKill(t *testing.T) {
	w := newWorld(t, "netkill", "", "")
	w.useBridge()
	const pool = 5
	var names []string
	for j := range pool {
		names = append(names, fmt.Sprintf("n-%d", j))
	}
	w.addBridged(append(names, "stable-net")...)
	w.addStable("stable-a", "stable-net")
	w.addBystander("bystander")
	for _, name := range names[:pool-1] {
		w.setTask(name, 1)
	}
	w.start()
	w.ready("set-up")
	// What the sweeps after the restarts released: evidence that the
	// kills fell in the middle of a network's set-up or tear-down.
	var swept, pins, addrs, faults int
	t.Cleanup(func() {
		stats.note("netkill: after %d of %d restarts the reconciler released what a kill left: %d namespace pins (with their CNI DEL), %d addresses of no pin.", swept, faults, pins, addrs)
	})
	iterations(t, func(i int) {
		faults++
		victims := w.pick(names, 1+w.rng.IntN(2))
		var others []string
		for _, n := range names {
			if _, ok := w.versions[n]; ok && !slices.Contains(victims, n) {
				others = append(others, n)
			}
		}
		b := w.baseline(append(others, w.stable...)...)
		before := len(w.d.Output())
		var did []string
		change := func(name string) {
			v, present := w.versions[name]
			switch {
			case !present:
				w.setTask(name, 1)
				did = append(did, name+": created")
			case w.rng.IntN(3) == 0:
				w.removeTask(name)
				did = append(did, name+": removed")
			default:
				w.setTask(name, v+1)
				did = append(did, fmt.Sprintf("%s: v%d", name, v+1))
			}
		}
		for _, name := range victims {
			change(name)
		}
		written := time.Now()
		when := "after the write"
		if w.rng.IntN(2) == 0 {
			when = "after its first action"
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
				if out := w.d.Output()[before:]; slices.ContainsFunc(networkLogs, func(s string) bool { return strings.Contains(out, s) }) {
					break
				}
			}
		}
		time.Sleep(w.jitter(300 * time.Millisecond))
		w.d.Kill()
		did = append(did, fmt.Sprintf("killed %s after the write (%s)", time.Since(written).Round(time.Millisecond), when))
		if w.rng.IntN(3) == 0 {
			name := w.pick(names, 1)[0]
			delete(b.Tasks, name)
			k := len(did)
			change(name)
			did[k] = "while it was down, " + did[k]
		}
		since := time.Now()
		w.start()
		w.converge(fmt.Sprintf("netkill %d (%s)", i, strings.Join(did, "; ")), since, b)
		out := w.d.Output()
		p, a := strings.Count(out, "released the network of no container"), strings.Count(out, "released an address of no container")
		if p+a > 0 {
			swept++
			pins, addrs = pins+p, addrs+a
			t.Logf("netkill %d: the sweep released %d pins, %d addresses", i, p, a)
		}
	})
}
