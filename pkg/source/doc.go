// Package source is the built-in git source of the reconciler: it keeps a
// directory of manifests equal to selected paths of a git repository, for
// the loader of pkg/desired to read as it reads any directory.
//
// Each sync asks the remote for the tip of the ref (ls-remote) and, only
// when that tip is not the applied one, fetches that one commit (depth 1)
// into a fresh directory under the state directory, flattens the
// manifests at the top level of each selected path (and the age-encrypted
// secret files, "*.age", beside them, as committed: the tree never holds
// their clear text) into a new generated directory, and swaps a symlink to it atomically (the swap the watcher of
// pkg/desired already handles). The fetched repository is removed after
// each sync: there is no long-lived shallow clone updated in place.
//
// The network and git part of a sync (ls-remote, fetch, the generated
// tree) runs in a helper process, the daemon's own binary started with
// [HelperArg]: --git-timeout kills it wherever go-git waits (it dials
// git:// and SSH without the context), and what go-git allocates goes
// back to the system with the process, so the daemon's memory does not
// grow with the number of syncs. The daemon only swaps the link.
//
// What it must never do:
//
//   - apply anything on a failure of any kind (remote unreachable, auth, a
//     missing path, two manifests with one name, a fetch over the size
//     limit): the last good tree stays in place, also across a restart,
//     and the error is reported on [Status].
//   - delete the applied tree before its successor is in place, or leave a
//     half-written tree where the symlink points.
//   - import containerd or pkg/runtime, or know anything of tasks: it
//     produces files, the loader decides what they mean.
//   - apply a commit that --git-verify refuses (unsigned, signed by a key
//     the keyrings do not hold, a bad signature): only the tip of the ref
//     (or its annotated tag) is verified, before anything is written.
//   - accept an SSH host key that the known_hosts files do not hold (but
//     with --git-accept-new-host-key, for an unknown host), or a changed
//     one, ever.
//   - log or report a password or token: credentials are read from a file
//     at each sync and never kept beyond it.
package source
