// Package e2e holds the end-to-end tests: the reconciler binary against a real
// containerd and runc that the tests start themselves (with the same
// managed-containerd code the daemon uses) in a temporary directory, with a
// test image built from ./testapp and imported from an archive.
//
// Every check reads containerd directly (containers, tasks, snapshots,
// events), never the reconciler's own view. Under CI=true the tests fail when
// root, containerd or runc is missing; elsewhere they skip with the reason.
package e2e
