package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
)

// TaskStatus is a task in `reconciler status -o json`: the fields the
// suites read.
type TaskStatus struct {
	Name        string `json:"name"`
	Phase       string `json:"phase"`
	Message     string `json:"message"`
	Restarts    int    `json:"restarts"`
	ContainerID string `json:"containerID"`
	IP          string `json:"ip"`    // a bridge task's address
	Ports       string `json:"ports"` // its published ports
	Source      string `json:"source"`
	Revision    string `json:"revision"` // the git commit its spec was read from
	Health      struct {
		State  string `json:"state"`
		Source string `json:"source"`
		Check  string `json:"check"`
		Output string `json:"lastOutput"`
	} `json:"health"`
	// Rollout is the rollout under way (From is "" when none is).
	Rollout struct {
		From    string `json:"from"`
		Waiting string `json:"waiting"`
	} `json:"rollout"`
	// RolledBack is set after a change was rolled back.
	RolledBack struct {
		RefusedHash string `json:"refusedHash"`
		Reason      string `json:"reason"`
	} `json:"rolledBack"`
}

// NodeStatus is `reconciler status -o json`: the tasks and the manifests
// directory.
type NodeStatus struct {
	Tasks     []TaskStatus `json:"tasks"`
	Manifests struct {
		Error  string            `json:"error"`
		Broken map[string]string `json:"broken"` // file -> its errors
	} `json:"manifests"`
}

// ReadStatus runs `reconciler status -o json` (bin) on the daemon of the
// state directory.
func ReadStatus(bin, stateDir string) (NodeStatus, error) {
	var st NodeStatus
	return st, status(bin, &st, "status", "-o", "json", "--state-dir", stateDir)
}

// ReadTaskStatus runs `reconciler status TASK -o json` (bin) on the daemon
// of the state directory.
func ReadTaskStatus(bin, stateDir, task string) (TaskStatus, error) {
	var st TaskStatus
	return st, status(bin, &st, "status", task, "-o", "json", "--state-dir", stateDir)
}

func status(bin string, v any, args ...string) error {
	out, err := exec.Command(bin, args...).Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return fmt.Errorf("reconciler status: %w: %s", err, ee.Stderr)
	} else if err != nil {
		return fmt.Errorf("reconciler status: %w", err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("reconciler status: %w\n%s", err, out)
	}
	return nil
}
