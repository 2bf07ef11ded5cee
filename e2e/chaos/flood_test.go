package chaos

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warren/reconciler/e2e/testenv"
)

// maxRSS bounds the reconciler's peak resident memory through a flood.
const maxRSS = 256 << 20

// TestChaosFlood (fault 5): a flood of malformed files (fuzzed YAML, huge
// files, deep nesting, alias bombs, binary junk, duplicate task names,
// special files, files others can write) dropped while tasks run: no
// running task is touched, nothing panics, memory stays bounded; once the
// junk is gone the node converges.
func TestChaosFlood(t *testing.T) {
	w := newWorld(t, "flood", "", "")
	w.addStable("stable-a", "stable-b", "stable-c")
	w.addBystander("bystander")
	w.start()
	w.ready("set-up")
	peak := int64(0)
	iterations(t, func(i int) {
		b := w.baseline()
		n := 80 + w.rng.IntN(120)
		kinds := map[string]int{}
		var junk []string
		for j := range n {
			name, kind := w.dropJunk(fmt.Sprintf("junk-%d-%d", i, j))
			junk = append(junk, name)
			kinds[kind]++
			if w.rng.IntN(10) == 0 {
				time.Sleep(w.jitter(50 * time.Millisecond))
			}
		}
		// Let it chew: several reads of the directory, a resync or two.
		time.Sleep(3 * time.Second)
		w.noCrash()
		rss := int64(-1)
		if m, err := w.d.Memory(); err == nil {
			rss = m.Peak
		}
		peak = max(peak, rss)
		if rss > maxRSS {
			t.Errorf("flood %d: peak RSS %d MiB, want at most %d MiB", i, rss>>20, maxRSS>>20)
		}
		for _, name := range junk {
			path := filepath.Join(w.manifests, name)
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
		}
		since := time.Now()
		w.converge(fmt.Sprintf("flood %d (%d files: %v; peak RSS %d MiB)", i, n, kinds, rss>>20), since, b)
	})
	stats.note("flood: peak RSS of the reconciler %d MiB (bound %d MiB)", peak>>20, maxRSS>>20)
}

// dropJunk writes one malformed entry into the manifests directory and
// returns its name and kind.
func (w *world) dropJunk(base string) (string, string) {
	t := w.t
	r := w.rng
	name := base + ".yaml"
	path := filepath.Join(w.manifests, name)
	write := func(data []byte) {
		if r.IntN(3) == 0 {
			// In place, in chunks: the loader may read it half written.
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			for len(data) > 0 {
				k := min(len(data), 1+r.IntN(64<<10))
				if _, err := f.Write(data[:k]); err != nil {
					t.Fatal(err)
				}
				data = data[k:]
			}
			f.Close()
			return
		}
		testenv.WriteFile(t, w.manifests, name, string(data))
	}
	stable := w.stable[r.IntN(len(w.stable))]
	switch k := r.IntN(14); k {
	case 0, 1, 2:
		write(fuzz(r, []byte(taskYAML(pickName(r, base, stable), r.IntN(9)))))
		return name, "fuzzed"
	case 3:
		// Over the size limit.
		write(append([]byte(taskYAML(base, 1)), bytes.Repeat([]byte("# padding\n"), (1<<20)/10+1)...))
		return name, "huge"
	case 4:
		// Just under the limit, deeply nested.
		d := 1<<19 - 16
		write([]byte("a: " + strings.Repeat("[", d) + strings.Repeat("]", d) + "\n"))
		return name, "deep"
	case 5:
		write([]byte("a: " + strings.Repeat("{b: ", 100000) + "c" + strings.Repeat("}", 100000) + "\n"))
		return name, "deep"
	case 6:
		var b strings.Builder
		b.WriteString("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n")
		for i := 'b'; i <= 'z'; i++ {
			fmt.Fprintf(&b, "%c: &%c [*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c,*%c]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
		}
		write([]byte(b.String()))
		return name, "alias-bomb"
	case 7:
		data := make([]byte, 1+r.IntN(256<<10))
		for i := range data {
			data[i] = byte(r.UintN(256))
		}
		write(data)
		return name, "binary"
	case 8:
		// Another file defining a running task's name: both files are
		// broken, the task keeps its spec.
		write([]byte(taskYAML(stable, 100+r.IntN(100))))
		return name, "duplicate"
	case 9:
		// Many documents, one of them invalid: the file is applied whole
		// or not at all.
		var b strings.Builder
		for i := range 200 + r.IntN(800) {
			fmt.Fprintf(&b, "---\n%s", taskYAML(fmt.Sprintf("%s-%d", base, i), 1))
		}
		b.WriteString("---\napiVersion: warren/v1\nkind: Task\nmetadata: {name: Not_Valid}\nspec: {image: x}\n")
		// Whole, never in chunks: a prefix of valid documents is a valid
		// file, and the case is about the one invalid document.
		testenv.WriteFile(t, w.manifests, name, b.String())
		return name, "many-docs"
	case 10:
		write([]byte("apiVersion: warren/v1\nkind: Task\nmetadata: {name: " + base + "}\nspec:\n  image: " + strings.Repeat("x", 900<<10) + "\n"))
		return name, "long-line"
	case 11:
		switch r.IntN(4) {
		case 0:
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			return name, "fifo"
		case 1:
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			return name, "directory"
		case 2:
			if err := os.Symlink(filepath.Join(w.manifests, "nowhere"), path); err != nil {
				t.Fatal(err)
			}
			return name, "dangling-link"
		default:
			if err := os.Symlink(path, path); err != nil {
				t.Fatal(err)
			}
			return name, "link-loop"
		}
	case 12:
		// A valid manifest others could have written: refused by the guard.
		// It appears with its mode (never in place, never with a safe
		// mode first), else the daemon may apply it before the chmod.
		testenv.WriteFileMode(t, w.manifests, name, taskYAML(base, 1), 0o666)
		return name, "insecure"
	default:
		junk := []string{"", "\x00\x00\x00", "\xff\xfe\xfd", "---\n---\n---\n", "!!binary aGVsbG8=\n",
			"a: !!python/object:os.system [rm]\n", "<<: *nope\n", "%YAML 9.9\n---\na: b\n", "\ufeff\ufeff\ufeff",
			"apiVersion: warren/v1\nkind: Task\nmetadata: {name: " + base + "}\nspec: {image: x, image: y}\n",
			"apiVersion: warren/v1\nkind: Task\nmetadata: {name: " + base + "}\nspec: {image: x, restartPolicy: Sometimes}\n",
			"apiVersion: warren/v1\nkind: Task\nmetadata: {name: " + base + "}\nspec: {image: x, resources: {memory: 1e999}}\n"}
		write([]byte(junk[r.IntN(len(junk))]))
		return name, "odd"
	}
}

func pickName(r *rand.Rand, base, stable string) string {
	if r.IntN(4) == 0 {
		return stable
	}
	return base
}

// fuzz mutates data a few times: bytes flipped, inserted, deleted, lines
// duplicated or swapped, indentation changed.
func fuzz(r *rand.Rand, data []byte) []byte {
	out := bytes.Clone(data)
	for range 1 + r.IntN(6) {
		if len(out) == 0 {
			out = append(out, '{')
		}
		i := r.IntN(len(out))
		switch r.IntN(6) {
		case 0:
			out[i] ^= byte(1 << r.IntN(8))
		case 1:
			ins := []string{":", "-", " ", "\n", "{", "[", "&a", "*a", "'", "\"", "#", "\t", "!!", "|", ">"}[r.IntN(15)]
			out = append(out[:i], append([]byte(ins), out[i:]...)...)
		case 2:
			j := min(len(out), i+1+r.IntN(16))
			out = append(out[:i], out[j:]...)
		case 3, 4:
			lines := bytes.Split(out, []byte("\n"))
			a, b := r.IntN(len(lines)), r.IntN(len(lines))
			if r.IntN(2) == 0 {
				lines[a], lines[b] = lines[b], lines[a]
			} else {
				lines = append(lines[:a], append([][]byte{bytes.Clone(lines[b])}, lines[a:]...)...)
			}
			out = bytes.Join(lines, []byte("\n"))
		case 5:
			lines := bytes.Split(out, []byte("\n"))
			a := r.IntN(len(lines))
			lines[a] = append(bytes.Repeat([]byte(" "), r.IntN(5)), bytes.TrimLeft(lines[a], " ")...)
			out = bytes.Join(lines, []byte("\n"))
		}
	}
	return out
}
