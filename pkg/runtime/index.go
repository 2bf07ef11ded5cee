package runtime

import (
	"strings"
	"sync"
)

// index is what the runtime knows of the containers of its namespace
// between two full listings: their IDs and task labels. A task's listing
// then reads only the task's own containers by ID (O(1) in containerd)
// instead of having containerd filter every container of the namespace
// (containerd 1.6 reads and decodes each one, with its OCI spec, on the
// path of every task's sync; docs/benchmarks.md).
//
// It is filled by every full listing and kept up to date by this process's
// own creates and deletes, and by reads that find a container gone. A
// container that another client creates is known from the next full
// listing (the periodic resync) on. Until the first full listing, a task's
// listing asks containerd to filter, as before.
//
// A full listing that began before a create or a delete of this process
// finished would undo it: changes made since the listing began are applied
// again on top of it, and a listing older than one already applied is
// dropped.
type index struct {
	mu      sync.Mutex
	task    map[string]string // container ID -> its task label ("" for none); nil until a full listing fills it
	seq     uint64            // counts the changes below
	changes []change          // since the newest full listing began
	applied uint64            // seq at which the newest applied listing began (or changes were dropped)
}

type change struct {
	seq      uint64
	id, task string
	gone     bool
}

// begin marks the start of a full listing; pass the result to reset.
func (x *index) begin() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.seq
}

// reset replaces what is known by a full listing (container ID -> task
// label) that began at since.
func (x *index) reset(listed map[string]string, since uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if since < x.applied {
		return // a newer listing is applied already, or changes since were dropped
	}
	if listed == nil {
		listed = map[string]string{}
	}
	x.task, x.applied = listed, since
	kept := x.changes[:0]
	for _, c := range x.changes {
		if c.seq <= since {
			continue // the listing saw it
		}
		kept = append(kept, c)
		if c.gone {
			delete(x.task, c.id)
		} else {
			x.task[c.id] = c.task
		}
	}
	x.changes = kept
}

// add records container id of task, created (or about to be) by this process.
func (x *index) add(id, task string) { x.record(change{id: id, task: task}) }

// remove records that container id is gone.
func (x *index) remove(id string) { x.record(change{id: id, gone: true}) }

// maxChanges bounds the changes kept for listings in flight: past it the
// index is given up until the next full listing (tasks' listings ask
// containerd to filter meanwhile).
const maxChanges = 4096

func (x *index) record(c change) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.seq++
	c.seq = x.seq
	if len(x.changes) >= maxChanges {
		// A listing in flight can no longer be brought up to date.
		x.task, x.changes, x.applied = nil, nil, x.seq
	}
	x.changes = append(x.changes, c)
	if x.task == nil {
		return // not valid yet: the first full listing will see it
	}
	if c.gone {
		delete(x.task, c.id)
	} else {
		x.task[c.id] = c.task
	}
}

// of returns the IDs of the containers of task as a task's listing sees
// them (labelled with task, or with an ID of task and a dash), and false
// when no full listing filled the index yet.
func (x *index) of(task string) ([]string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.task == nil {
		return nil, false
	}
	var ids []string
	prefix := task + "-"
	for id, t := range x.task {
		if t == task || strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	return ids, true
}

// has reports whether container id is known to exist (false also before a
// full listing filled the index).
func (x *index) has(id string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	_, ok := x.task[id]
	return ok
}
