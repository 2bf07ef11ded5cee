package chaos

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warren/reconciler/e2e/invariants"
	"github.com/warren/reconciler/e2e/testenv"
	"github.com/warren/reconciler/pkg/desired"
)

// The git world's repository: tasks in common/ and in the node's own
// path nodes/HOSTNAME/ (both selected with --git-path), and what must
// never run (see tree).
const (
	gitCommon    = "common"
	gitPool      = 8                     // tasks g-0..g-7, created, changed, moved and removed at random
	gitInterval  = time.Second           // --git-interval
	gitTimeout   = 5 * time.Second       // --git-timeout
	gitSeen      = 30 * time.Second      // longest wait for the reconciler to have seen a pushed commit
	gitOtherNode = "nodes/not-this-node" // another node's path
)

// gitTask is a task of a commit: its version and the path it lives in.
type gitTask struct {
	v    int
	path string
}

// gitModel is the content of a good commit: task name -> its task.
type gitModel map[string]gitTask

// gitCommit is a good commit pushed: valid, and (with --git-verify)
// signed by an allowed key.
type gitCommit struct {
	hash  string
	model gitModel
}

// gitWorld is a world whose reconciler runs on a git repository served
// by `git daemon`. The world's manifests directory is not the
// reconciler's: it mirrors the flattened files of the last good commit
// pushed, for the checker, whose desired state is therefore that commit's
// tasks whatever the reconciler has applied.
type gitWorld struct {
	*world
	srv    *testenv.GitServer
	node   string         // nodes/HOSTNAME
	model  gitModel       // of the last good commit pushed
	good   []gitCommit    // every good commit main pointed at, oldest first
	signer *gitSigner     // nil without --git-verify
	faults map[string]int // injected, by fault and variant, for the note under the table
}

// TestChaosGit (fault 10): the reconciler runs with --git on a repository
// served by `git daemon` on 127.0.0.1 (--git-interval 1s). Each iteration
// is one fault, at random: the server down for 0.5–5 s while commits are
// pushed to the repository behind it; a force-push of main back to an
// older good commit; garbage pushed (invalid YAML, invalid specs, one file
// name in both paths, one task name in two files, a selected path
// removed), under which nothing may change, then a good commit; with
// --git-verify, an unsigned commit or one signed by an unknown key, which
// must not be applied, then a signed one. After each fault the containers
// equal the tasks of the last good commit, every invariant holds, and
// /status says that commit is applied.
func TestChaosGit(t *testing.T) {
	w := newWorld(t, "git", "", "")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	g := &gitWorld{world: w, node: "nodes/" + host, faults: map[string]int{}}
	t.Cleanup(func() {
		var parts []string
		for _, f := range slices.Sorted(maps.Keys(g.faults)) {
			parts = append(parts, fmt.Sprintf("%s %d", f, g.faults[f]))
		}
		if len(parts) > 0 {
			stats.note("git faults (seed %d, --git-verify %v): %s", env.seed, g.signer != nil, strings.Join(parts, ", "))
		}
	})
	g.srv = testenv.StartGitServer(t, filepath.Join(env.dir, "git"), "fleet")
	w.flags = append(w.flags, "--git", g.srv.URL(), "--git-path", gitCommon+",nodes/{{hostname}}",
		"--git-interval", gitInterval.String(), "--git-timeout", gitTimeout.String())
	if gitVerifyFlag() {
		g.signer = newGitSigner(t, filepath.Join(env.dir, "git", "keys"))
		w.flags = append(w.flags, g.signer.flags()...)
	}
	w.addBystander("bystander")
	m := gitModel{"stable-a": {1, gitCommon}, "stable-b": {1, g.node}}
	w.stable = []string{"stable-a", "stable-b"}
	m, _ = g.burst(m, 5, nil)
	g.pushGood(m)
	g.start()
	w.ready("set-up")
	g.waitApplied("set-up", time.Now())
	faults := []string{"server down", "force-push", "garbage"}
	if g.signer != nil {
		faults = append(faults, "bad signature")
	} else {
		t.Log("the reconciler has no --git-verify: no bad-signature faults")
	}
	iterations(t, func(i int) {
		f := faults[w.rng.IntN(len(faults))]
		if f == "force-push" && len(g.older()) == 0 {
			f = "garbage"
		}
		switch f {
		case "server down":
			g.serverDown(i)
		case "force-push":
			g.forcePush(i)
		case "garbage":
			g.garbage(i)
		case "bad signature":
			g.badSignature(i)
		}
	})
}

// start starts the reconciler on the repository (not on the world's
// manifests directory, which it must not be given with --git).
func (g *gitWorld) start() {
	g.t.Helper()
	run := testenv.Run{Address: g.address, Containerd: "external", RuncRoot: g.runcRoot(),
		Namespace: g.ns, Images: env.images, StateDir: g.state, Resync: 2 * time.Second, Flags: g.flags}
	g.d = testenv.StartTest(g.t, env.bin, run.Args(), testenv.TestOptions{Tail: 100, Quiet: true})
	g.d.WaitLog(testenv.InitialSync, 60*time.Second)
}

// tree is the repository's content for m: path -> file. Besides m's
// tasks, manifests that must never run (a leak if they do): another
// node's, a dotfile, an editor backup, in subdirectories of the selected
// paths; and files that are no manifests.
func (g *gitWorld) tree(m gitModel) map[string]string {
	files := map[string]string{
		"README.md":                         "The fleet of the chaos suite's git world.\n",
		gitOtherNode + "/elsewhere.yaml":    taskYAML("elsewhere", 1),
		gitCommon + "/not-a-manifest.txt":   "never read\n",
		g.node + "/.hidden-manifest.yaml":   taskYAML("hidden", 1),
		gitCommon + "/backup.yaml~":         taskYAML("backup", 1),
		gitCommon + "/subdir/nested.yaml":   taskYAML("nested", 1),
		g.node + "/subdir/also-nested.yaml": taskYAML("also-nested", 1),
	}
	for name, t := range m {
		files[t.path+"/"+name+".yaml"] = taskYAML(name, t.v)
	}
	return files
}

// commitOptions are those of a commit by the fleet's owner: signed with
// the allowed key under --git-verify.
func (g *gitWorld) commitOptions(what string) testenv.CommitOptions {
	o := testenv.CommitOptions{Message: what}
	if g.signer != nil {
		o.Config, o.Sign = g.signer.config(g.signer.allowed), true
	}
	return o
}

// pushGood commits and pushes m's tree (signed under --git-verify) and
// makes it the desired state of the checker.
func (g *gitWorld) pushGood(m gitModel) string {
	g.t.Helper()
	hash := g.srv.Commit(g.tree(m), g.commitOptions("good"))
	g.setGood(gitCommit{hash: hash, model: m})
	return hash
}

// setGood records c as the last good commit and writes its flattened
// files into the world's manifests directory (the checker's).
func (g *gitWorld) setGood(c gitCommit) {
	g.good = append(g.good, c)
	g.model = maps.Clone(c.model)
	for name := range g.versions {
		if _, ok := c.model[name]; !ok {
			g.removeTask(name)
		}
	}
	for name, t := range c.model {
		if v, ok := g.versions[name]; !ok || v != t.v {
			g.setTask(name, t.v)
		}
	}
}

// head is the last good commit.
func (g *gitWorld) head() string { return g.good[len(g.good)-1].hash }

// older are the good commits main may be moved back to: the last few,
// other than the head.
func (g *gitWorld) older() []gitCommit {
	var out []gitCommit
	for _, c := range g.good[max(0, len(g.good)-8):] {
		if c.hash != g.head() && !slices.ContainsFunc(out, func(o gitCommit) bool { return o.hash == c.hash }) {
			out = append(out, c)
		}
	}
	return out
}

// paths are the two selected paths.
func (g *gitWorld) paths() []string { return []string{gitCommon, g.node} }

// otherPath is the selected path that is not p.
func (g *gitWorld) otherPath(p string) string {
	if p == gitCommon {
		return g.node
	}
	return gitCommon
}

// burst returns m with n random changes to the pool: creates (in either
// path), new versions, removals and moves to the other path (same
// content: the task must not restart); the tasks whose spec changed or
// that came or went are added to touched (if not nil).
func (g *gitWorld) burst(m gitModel, n int, touched map[string]bool) (gitModel, string) {
	m = maps.Clone(m)
	var creates, replaces, deletes, moves int
	for range n {
		name := fmt.Sprintf("g-%d", g.rng.IntN(gitPool))
		t, present := m[name]
		switch r := g.rng.IntN(6); {
		case !present:
			m[name] = gitTask{v: 1, path: g.paths()[g.rng.IntN(2)]}
			creates++
		case r < 2:
			delete(m, name)
			deletes++
		case r < 3:
			t.path = g.otherPath(t.path)
			m[name] = t
			moves++
			continue
		default:
			t.v++
			m[name] = t
			replaces++
		}
		if touched != nil {
			touched[name] = true
		}
	}
	return m, fmt.Sprintf("%d creates, %d replacements, %d deletions, %d moves", creates, replaces, deletes, moves)
}

// pool returns the pool tasks of m, sorted.
func (m gitModel) pool() []string {
	var out []string
	for name := range m {
		if strings.HasPrefix(name, "g-") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// changed returns the tasks whose version differs between a and b, or
// that only one has.
func changed(a, b gitModel) map[string]bool {
	out := map[string]bool{}
	for name, t := range a {
		if u, ok := b[name]; !ok || u.v != t.v {
			out[name] = true
		}
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			out[name] = true
		}
	}
	return out
}

// baselineAll is the baseline of every task of the last good commit.
func (g *gitWorld) baselineAll() invariants.Baseline {
	return g.baseline(slices.Sorted(maps.Keys(g.model))...)
}

// serverDown (fault "server down"): half the time a good commit is pushed
// and the server killed up to 1.5 s later (during its fetch, or not); the
// daemon is down for 0.5–5 s, while one or two good commits are pushed to
// the repository behind it, then started again on the same port. None of
// those may be applied while it is down; the last one must be once it is
// back.
func (g *gitWorld) serverDown(i int) {
	b := g.baselineAll()
	touched := map[string]bool{}
	var did []string
	served := []string{g.head()}
	if g.rng.IntN(2) == 0 {
		m, what := g.burst(g.model, 1+g.rng.IntN(3), touched)
		served = append(served, g.pushGood(m))
		wait := g.jitter(1500 * time.Millisecond)
		time.Sleep(wait)
		did = append(did, fmt.Sprintf("pushed %s, killed %s later", what, wait.Round(time.Millisecond)))
	}
	down := 500*time.Millisecond + g.jitter(4500*time.Millisecond)
	g.srv.Stop()
	stopped := time.Now()
	k := 1 + g.rng.IntN(2)
	for range k {
		time.Sleep(g.jitter(down / time.Duration(k+1)))
		m, what := g.burst(g.model, 1+g.rng.IntN(3), touched)
		g.pushGood(m)
		did = append(did, "pushed "+what+" while down")
	}
	if rest := down - time.Since(stopped); rest > 0 {
		time.Sleep(rest)
	}
	what := fmt.Sprintf("git %d (server down %s: %s)", i, down.Round(time.Millisecond), strings.Join(did, "; "))
	g.faults["server down"]++
	st, err := g.gitStatus()
	switch {
	case err != nil:
		g.violation(what, "status while the server was down: %v", err)
	case !slices.Contains(served, st.Source.Commit):
		g.violation(what, "commit %s applied while the server was down, which only had %v before", st.Source.Commit, served)
	case time.Since(stopped) >= 3*time.Second && st.Source.LastError == "":
		g.violation(what, "the server down for %s, and no error on the status: %+v", time.Since(stopped).Round(time.Millisecond), st.Source)
	}
	g.srv.Start()
	g.settle(what, time.Now(), b, touched)
}

// forcePush (fault "force-push"): main moved back to one of the last few
// good commits (force-pushed): tasks created since are removed, tasks
// removed since come back, changed ones go back to their old spec.
func (g *gitWorld) forcePush(i int) {
	b := g.baselineAll()
	older := g.older()
	c := older[g.rng.IntN(len(older))]
	back := 0
	for j := len(g.good) - 1; j >= 0 && g.good[j].hash != c.hash; j-- {
		back++
	}
	touched := changed(g.model, c.model)
	g.faults["force-push"]++
	g.srv.ForcePush(c.hash)
	g.setGood(c)
	since := time.Now()
	what := fmt.Sprintf("git %d (force-push %d commits back, %d tasks differ)", i, back, len(touched))
	g.settle(what, since, b, touched)
}

// garbage (fault "garbage"): a commit of the last good tree with garbage
// in it, by the fleet's owner (signed under --git-verify). Invalid YAML or
// an invalid spec in a task's file, or a task's name defined by a second
// file in the other path: the tree is applied, the files are broken and
// their tasks keep their last valid spec. One file name in both paths, or
// a selected path removed: the commit is refused and nothing of it
// applied. Either way no task may change; then a good commit is pushed.
func (g *gitWorld) garbage(i int) {
	t := g.t
	b := g.baselineAll()
	files := g.tree(g.model)
	pool := g.model.pool()
	victim := func() (string, gitTask) {
		if len(pool) == 0 || g.rng.IntN(5) == 0 { // now and then a task that is not there
			name := fmt.Sprintf("new-%d", i)
			return name, gitTask{v: 1, path: g.paths()[g.rng.IntN(2)]}
		}
		name := pool[g.rng.IntN(len(pool))]
		return name, g.model[name]
	}
	var did, variant, wantErr string
	switch g.rng.IntN(5) {
	case 0: // invalid YAML
		var names []string
		for range 1 + g.rng.IntN(2) {
			name, tk := victim()
			content, how := g.invalidYAML(name, tk.v)
			files[tk.path+"/"+name+".yaml"] = content
			names = append(names, name+" ("+how+")")
		}
		did, variant = "invalid YAML in "+strings.Join(names, ", "), "invalid YAML"
	case 1: // invalid spec, in a new version of the task
		var names []string
		for range 1 + g.rng.IntN(2) {
			name, tk := victim()
			bad := invalidSpecs[g.rng.IntN(len(invalidSpecs))]
			content := taskYAML(name, tk.v+1, bad)
			g.mustBeBroken(name, content, bad)
			files[tk.path+"/"+name+".yaml"] = content
			names = append(names, fmt.Sprintf("%s (%s)", name, bad))
		}
		did, variant = "invalid specs in "+strings.Join(names, ", "), "invalid spec"
	case 2: // one task name in two files, across the paths
		name, tk := victim()
		if _, ok := g.model[name]; !ok {
			files[tk.path+"/"+name+".yaml"] = taskYAML(name, tk.v)
		}
		files[g.otherPath(tk.path)+"/dup-"+name+".yaml"] = taskYAML(name, tk.v+g.rng.IntN(2))
		did = fmt.Sprintf("task %s also defined in %s/dup-%s.yaml", name, g.otherPath(tk.path), name)
		variant = "one task in two files"
	case 3: // one file name in both paths
		name, tk := victim()
		if _, ok := g.model[name]; !ok {
			files[tk.path+"/"+name+".yaml"] = taskYAML(name, tk.v)
		}
		files[g.otherPath(tk.path)+"/"+name+".yaml"] = taskYAML(name, tk.v+1)
		did, variant = fmt.Sprintf("%s.yaml in both paths", name), "one file name in both paths"
		wantErr = "two manifests named " + name + ".yaml"
	case 4: // a selected path removed
		p := g.paths()[g.rng.IntN(2)]
		for f := range files {
			if strings.HasPrefix(f, p+"/") {
				delete(files, f)
			}
		}
		did, variant = "path "+p+" removed", "a path removed"
		wantErr = "path " + p + ": no such directory"
	}
	what := fmt.Sprintf("git %d (garbage: %s)", i, did)
	g.faults["garbage: "+variant]++
	last := g.head()
	hash := g.srv.Commit(files, g.commitOptions("garbage: "+did))
	// Seen: applied (a tree with broken files) or refused (nothing of it).
	var st gitStatus
	err := testenv.Poll(gitSeen, 100*time.Millisecond, "the garbage commit seen", func() bool {
		var err error
		if st, err = g.gitStatus(); err != nil {
			return false
		}
		if wantErr == "" {
			return st.Source.Commit == hash
		}
		return st.Source.Commit == last && strings.Contains(st.Source.LastError, wantErr)
	})
	if err != nil {
		g.violation(what, "%v; status: %+v", err, st.Source)
		return
	}
	g.holds(what+", under the garbage", b)
	if t.Failed() {
		return
	}
	touched := map[string]bool{}
	m, fixed := g.burst(g.model, 1+g.rng.IntN(3), touched)
	g.pushGood(m)
	g.settle(what+"; then a good commit, "+fixed, time.Now(), b, touched)
}

// invalidSpecs are spec lines that make a manifest invalid (its YAML
// fine).
var invalidSpecs = []string{
	"restartPolicy: sometimes",
	"workingDir: relative/dir",
	"user: nobody",
	"resources: {pids: -1}",
	"colour: blue",
	"progressDeadline: 500ms",
}

// invalidYAML is a file for task name at version v that is not a valid
// manifest, and how.
func (g *gitWorld) invalidYAML(name string, v int) (string, string) {
	valid := taskYAML(name, v)
	var content, how string
	switch g.rng.IntN(7) {
	case 0:
		content, how = strings.Replace(valid, "image: ", "image: [", 1), "an unclosed flow sequence"
	case 1:
		content, how = strings.Replace(valid, "\n  name: ", "\n\tname: ", 1), "a tab as indentation"
	case 2:
		content, how = valid+"  image: busybox\n", "a duplicate key"
	case 3:
		content, how = "\x00\x01\x02"+valid[:len(valid)/2], "binary, cut in half"
	case 4:
		content, how = "- just\n- a list\n", "a list, no manifest"
	case 5:
		content, how = strings.Replace(valid, "kind: Task", "kind: Tusk", 1), "an unknown kind"
	default:
		// An empty file keeps its tasks (docs/writing-manifests.md).
		return "", "empty"
	}
	g.mustBeBroken(name, content, how)
	return content, how
}

// mustBeBroken fails the test if content parses: the garbage must be
// garbage.
func (g *gitWorld) mustBeBroken(name, content, how string) {
	g.t.Helper()
	if _, err := desired.Parse(name+".yaml", []byte(content)); err == nil {
		g.t.Fatalf("the suite's garbage (%s) is a valid manifest:\n%s", how, content)
	}
}

// settle waits, after a fault that ends at since, for the last good commit
// to be applied (/status source.commit), for convergence on its tasks
// (the tasks in touched may have changed, no other), and checks that the
// status still names that commit, without an error.
func (g *gitWorld) settle(what string, since time.Time, b invariants.Baseline, touched map[string]bool) {
	g.t.Helper()
	for name := range touched {
		delete(b.Tasks, name)
	}
	if !g.waitApplied(what, since) {
		return
	}
	if g.converge(what, since, b) < 0 {
		return
	}
	st, err := g.gitStatus()
	if err != nil || st.Source.Commit != g.head() || st.Source.LastError != "" || (g.signer != nil && !st.Source.Verified) {
		g.violation(what, "converged, then the status says %+v (error %v), want commit %s, verified if signed, and no error", st.Source, err, g.head())
	}
}

// waitApplied waits until /status says the last good commit is applied;
// if it is not within -chaos.converge of since, the fault counts as not
// converged.
func (g *gitWorld) waitApplied(what string, since time.Time) bool {
	g.t.Helper()
	want := g.head()
	var st gitStatus
	err := testenv.Poll(time.Until(since.Add(*flagConverge)), 100*time.Millisecond, "commit "+want+" applied", func() bool {
		g.noCrash()
		var err error
		st, err = g.gitStatus()
		return err == nil && st.Source.Commit == want
	})
	if err != nil {
		stats.record(g.kind, -1, 1)
		g.t.Errorf("%s: %v (seed %d); status: %+v", what, err, env.seed, st.Source)
		g.dump()
		return false
	}
	return true
}

// holds checks, once the reconciler has seen a commit that must change
// nothing, and a resync later, that every invariant holds on the last good
// commit's tasks, none of which may have moved.
func (g *gitWorld) holds(what string, b invariants.Baseline) {
	g.t.Helper()
	time.Sleep(settle)
	g.noCrash()
	vs, ro, err := g.check.CheckRollouts(g.t.Context(), b)
	if err != nil {
		g.t.Errorf("%s: check: %v", what, err)
		return
	}
	if len(vs) > 0 || len(ro) > 0 {
		stats.violated(g.kind, max(len(vs), 1))
		g.t.Errorf("%s: the last good commit's tasks did not hold (seed %d):\n%s%s", what, env.seed, violationList(vs), rolloutList(ro))
		g.dump()
	}
}

// violation records a violation seen during a fault, and fails the test.
func (g *gitWorld) violation(what, format string, args ...any) {
	g.t.Helper()
	stats.violated(g.kind, 1)
	g.t.Errorf("%s: %s (seed %d)", what, fmt.Sprintf(format, args...), env.seed)
}

// gitStatus is the part of `reconciler status -o json` about the git
// source and the broken files.
type gitStatus struct {
	Source struct {
		Commit    string `json:"commit"`
		LastError string `json:"lastError"`
		Failures  int    `json:"failures"`
		Signer    string `json:"signer"`
		Verified  bool   `json:"verified"`
	} `json:"source"`
	Manifests struct {
		Broken map[string]string `json:"broken"`
	} `json:"manifests"`
}

func (g *gitWorld) gitStatus() (gitStatus, error) {
	var st gitStatus
	out, err := exec.Command(env.bin, "status", "-o", "json", "--state-dir", g.state).Output()
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(out, &st)
}

// gitVerifyFlag reports whether the reconciler under test has --git-verify.
func gitVerifyFlag() bool {
	out, _ := exec.Command(env.bin, "run", "-h").CombinedOutput()
	return strings.Contains(string(out), "-git-verify")
}

// gitSigner holds the SSH keys of the world under --git-verify: the
// allowed one, which signs every good commit (and the garbage: the
// fleet's owner pushing a broken tree), and an unknown one.
type gitSigner struct {
	allowed, unknown string // private key files
	signers          string // the allowed-signers file of --git-verify
}

func newGitSigner(t *testing.T, dir string) *gitSigner {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &gitSigner{allowed: filepath.Join(dir, "allowed"), unknown: filepath.Join(dir, "unknown"),
		signers: filepath.Join(dir, "allowed_signers")}
	for _, k := range []string{s.allowed, s.unknown} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", filepath.Base(k), "-f", k).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(s.allowed + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	line := `chaos@example.com namespaces="git" ` + strings.TrimSpace(string(pub)) + "\n"
	if err := os.WriteFile(s.signers, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *gitSigner) flags() []string { return []string{"--git-verify", s.signers} }

// config are the `git -c` settings that sign a commit with key.
func (s *gitSigner) config(key string) []string {
	return []string{"gpg.format=ssh", "user.signingkey=" + key}
}

// badSignature (fault "bad signature", under --git-verify): a commit that
// changes tasks is pushed unsigned, signed by a key the node does not
// allow, or as a copy of the last good commit, signature and all, with
// its tree swapped for the changed one. None may be applied: the status
// names the refusal, the last good commit stays applied and no task
// moves. Then a good, signed commit is pushed.
func (g *gitWorld) badSignature(i int) {
	t := g.t
	b := g.baselineAll()
	// Changes of tasks: one that is applied shows; and a tree that differs
	// from the last good one, so that the copy of the last good commit
	// with it is another commit.
	var forgedModel gitModel
	var changes string
	for forgedModel == nil || len(changed(g.model, forgedModel)) == 0 {
		forgedModel, changes = g.burst(g.model, 1+g.rng.IntN(3), nil)
	}
	last := g.head()
	var how, wantErr string
	switch g.rng.IntN(3) {
	case 0:
		g.srv.Commit(g.tree(forgedModel), testenv.CommitOptions{Message: "unsigned"})
		how, wantErr = "unsigned", "is not signed"
	case 1:
		g.srv.Commit(g.tree(forgedModel), testenv.CommitOptions{Message: "unknown key", Config: g.signer.config(g.signer.unknown), Sign: true})
		how, wantErr = "signed by an unknown key", "is signed by an unknown key"
	default:
		// The forged tree's commit, unsigned, is pushed on the way (a
		// sync may refuse it first: either refusal will do until the
		// copy is seen).
		forged := g.srv.Commit(g.tree(forgedModel), testenv.CommitOptions{Message: "forged"})
		tree := g.srv.MustGit(g.srv.Work, "rev-parse", forged+"^{tree}")
		g.srv.Tamper(last, tree)
		how, wantErr = "the last good commit's signature on another tree", "has a bad signature"
	}
	what := fmt.Sprintf("git %d (bad signature: %s, with %s)", i, how, changes)
	g.faults["bad signature: "+how]++
	var st gitStatus
	err := testenv.Poll(gitSeen, 100*time.Millisecond, "the commit refused", func() bool {
		var err error
		if st, err = g.gitStatus(); err != nil {
			return false
		}
		return strings.Contains(st.Source.LastError, wantErr)
	})
	switch {
	case err != nil:
		g.violation(what, "%v; status: %+v", err, st.Source)
		return
	case st.Source.Commit != last:
		g.violation(what, "commit %s applied, want %s still", st.Source.Commit, last)
		return
	}
	g.holds(what+", refused", b)
	if t.Failed() {
		return
	}
	touched := map[string]bool{}
	m, next := g.burst(g.model, 1+g.rng.IntN(3), touched)
	g.pushGood(m)
	g.settle(what+"; then a signed commit, "+next, time.Now(), b, touched)
}
