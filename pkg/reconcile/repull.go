package reconcile

import (
	"context"
	"maps"
	"sync"

	"github.com/warren/reconciler/pkg/desired"
)

// digests is what the re-pulls found: per image reference, the digest its
// tag pointed at. Plan replaces a container of an Always task that runs
// another one (observed.State.Pulled).
type digests struct {
	mu sync.Mutex
	m  map[string]string
}

// set records ref -> d and reports whether it changed.
func (p *digests) set(ref, d string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]string{}
	}
	changed := p.m[ref] != d
	p.m[ref] = d
	return changed
}

// snapshot returns a copy (nil when nothing was re-pulled).
func (p *digests) snapshot() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.m)
}

// repullLoop re-pulls the images of Always tasks every RepullInterval and
// queues the tasks whose tag moved.
func (c *Controller) repullLoop(ctx context.Context) {
	for {
		wake := make(chan struct{})
		t := c.cfg.Clock.AfterFunc(c.cfg.RepullInterval, func() { close(wake) })
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		}
		c.mu.Lock()
		users := map[string][]string{} // image ref -> tasks
		for name, task := range c.want.Tasks {
			if task.Spec.ImagePullPolicy == desired.PullAlways {
				users[task.Spec.Image] = append(users[task.Spec.Image], name)
			}
		}
		c.mu.Unlock()
		for ref, names := range users {
			digest, err := c.cfg.Puller.Pull(ctx, ref)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				c.cfg.Log.Error(err, "re-pull failed; the running containers are kept", "image", ref, "tasks", names)
				continue
			}
			if c.pulled.set(ref, digest) {
				for _, name := range names {
					c.q.Add(name)
				}
			}
		}
	}
}
