package webui

import (
	"bytes"
	"hash/fnv"
	"sync"
)

// hub hands the views that live viewers watch to them. Each view is
// rendered once per change whatever the number of viewers, and each viewer
// has a mailbox of one view where the newest replaces one not yet sent: a
// slow viewer misses intermediate views, never holds up the hub, and is
// dropped by its own stream when a write to it times out.
type hub struct {
	mu      sync.Mutex
	clients map[*client]struct{}
}

// client is one live viewer.
type client struct {
	view string      // the view it watches: "" for the task list, else a task's name
	mail chan []byte // capacity 1: the newest view not yet sent
	last uint64      // hash of the last view put in mail (by the hub only)
}

func newHub() *hub { return &hub{clients: map[*client]struct{}{}} }

func (h *hub) subscribe(view string) *client {
	c := &client{view: view, mail: make(chan []byte, 1)}
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	return c
}

func (h *hub) unsubscribe(c *client) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

func (h *hub) watched() []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*client, 0, len(h.clients))
	for c := range h.clients {
		out = append(out, c)
	}
	return out
}

// deliver puts b in c's mailbox unless it is what c got last, replacing a
// view not yet sent. It never blocks: the hub is the only sender.
func (c *client) deliver(b []byte) {
	sum := fnv.New64a()
	sum.Write(b)
	if s := sum.Sum64(); s == c.last {
		return
	} else {
		c.last = s
	}
	select {
	case <-c.mail:
	default:
	}
	c.mail <- b
}

// broadcast renders each view a viewer watches, once, from one reading of
// the status, and delivers it.
func (h *Handler) broadcast() {
	clients := h.hub.watched()
	if len(clients) == 0 {
		return
	}
	st := h.cfg.Status.Status()
	now := h.cfg.Clock.Now()
	views := map[string][]byte{}
	for _, c := range clients {
		b, ok := views[c.view]
		if !ok {
			var buf bytes.Buffer
			var err error
			if c.view == "" {
				err = h.pages.render(&buf, "list-live", h.listView(st, now, ""))
			} else {
				err = h.pages.render(&buf, "task-live", h.taskView(st, c.view, now, "../"))
			}
			if err != nil {
				h.cfg.Log.Error(err, "render the web page", "view", c.view)
				continue
			}
			b = buf.Bytes()
			views[c.view] = b
		}
		c.deliver(b)
	}
}
