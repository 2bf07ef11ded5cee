package reconcile

import "github.com/warren/reconciler/pkg/desired"

// DesiredTask returns task name as the controller works towards it: the
// spec of the last SetDesired (for a broken file, its last valid one) and
// its spec hash; false when the task is not desired. The node's web page
// shows it as the spec applied.
func (c *Controller) DesiredTask(name string) (desired.Task, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.want.Tasks[name]
	if !ok {
		return desired.Task{}, "", false
	}
	return t, c.want.Hash(name), true
}
