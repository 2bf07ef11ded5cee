package desired

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// node is one task in the graph of spec.dependsOn: who defines it, and
// where each of its dependencies is written (0 for a last-known-good task,
// whose file is broken now).
type node struct {
	file     string
	lastGood bool
	doc      int
	deps     []Dependency
	lines    []int
}

// cycles finds the dependency cycles among the tasks the directory would
// have (the valid files' tasks, the last known good ones of the broken
// files) and returns the valid files that must be treated as broken for
// them, each error at the dependsOn entry that closes a cycle and naming
// the whole cycle. A file that becomes broken falls back to its last known
// good tasks, which may close a cycle in turn: repeat until nothing
// changes. A cycle made of last-known-good tasks only stays (its tasks
// wait, their status says for what).
func cycles(files []string, parsed map[string][]parsedTask, broken map[string]error, lastGood map[string][]Task) map[string]error {
	out := map[string]error{}
	for {
		graph := map[string]node{}
		for _, f := range files {
			if pts, ok := parsed[f]; ok && out[f] == nil {
				for _, pt := range pts {
					if _, taken := graph[pt.task.Metadata.Name]; !taken {
						graph[pt.task.Metadata.Name] = node{file: f, doc: pt.doc, deps: pt.task.Spec.DependsOn, lines: pt.depLines}
					}
				}
				continue
			}
			if broken[f] != nil || out[f] != nil {
				for _, t := range lastGood[f] {
					if _, taken := graph[t.Metadata.Name]; !taken {
						graph[t.Metadata.Name] = node{file: f, lastGood: true, deps: t.Spec.DependsOn}
					}
				}
			}
		}
		errs := map[string][]*Error{}
		for _, cycle := range findCycles(graph) {
			text := describeCycle(cycle, graph)
			for i, name := range cycle {
				n := graph[name]
				if n.lastGood {
					continue
				}
				next := cycle[(i+1)%len(cycle)]
				for j, d := range n.deps {
					if d.Task == next {
						line := 0
						if j < len(n.lines) {
							line = n.lines[j]
						}
						errs[n.file] = append(errs[n.file], &Error{File: n.file, Line: line, Doc: n.doc,
							Field: fmt.Sprintf("spec.dependsOn[%d].task", j), Msg: "dependency cycle: " + text + "; no task of it could ever start"})
					}
				}
			}
		}
		if len(errs) == 0 {
			return out
		}
		for f, es := range errs {
			out[f] = joinErrors(es)
		}
	}
}

// findCycles returns each elementary cycle of graph found by a depth-first
// walk in name order, as the task names along it, starting at the
// smallest name: enough to name every task that takes part in one.
func findCycles(graph map[string]node) [][]string {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var found [][]string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(name string) {
		state[name] = onPath
		path = append(path, name)
		for _, d := range graph[name].deps {
			if _, ok := graph[d.Task]; !ok {
				continue // not defined: waited for, no cycle
			}
			switch state[d.Task] {
			case unseen:
				visit(d.Task)
			case onPath:
				i := slices.Index(path, d.Task)
				cycle := rotate(slices.Clone(path[i:]))
				if key := strings.Join(cycle, " "); !seen[key] {
					seen[key] = true
					found = append(found, cycle)
				}
			}
		}
		path = path[:len(path)-1]
		state[name] = done
	}
	for _, name := range slices.Sorted(maps.Keys(graph)) {
		if state[name] == unseen {
			visit(name)
		}
	}
	return found
}

// rotate starts a cycle at its smallest name.
func rotate(cycle []string) []string {
	i := slices.Index(cycle, slices.Min(cycle))
	return append(cycle[i:], cycle[:i]...)
}

// describeCycle writes a cycle as `a (a.yaml) -> b (b.yaml:9) -> a`.
func describeCycle(cycle []string, graph map[string]node) string {
	parts := make([]string, 0, len(cycle)+1)
	for _, name := range cycle {
		n := graph[name]
		where := n.file
		if n.lastGood {
			where += ", its last valid version"
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", name, where))
	}
	return strings.Join(append(parts, cycle[0]), " -> ")
}
