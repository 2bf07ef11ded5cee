// Package desired is the desired-state side of the reconciler: what the
// manifests directory asks for.
//
// It holds the manifest types ([Task], [Spec]), strict parsing ([Parse]),
// defaults, validation, the spec hash ([Task.Hash]), loading a directory into
// a [State] ([Loader]) and the watcher that says when to load again
// ([Watcher]).
//
// What it must never do:
//
//   - import containerd or anything of pkg/runtime: it knows nothing of what
//     runs on the node. It is the only package that imports YAML and fsnotify.
//   - turn a transient problem into deletions. A file that fails to read, parse
//     or validate keeps the tasks of its last successful load (last known good,
//     DESIGN invariant 4) and is reported in [State.Broken]; a directory that is
//     missing or unreadable is reported in [State.Err] with no tasks at all, and
//     callers must then delete nothing. Only a valid change removes a task.
//   - panic on any input, or read unbounded input (files are capped at
//     [MaxFileSize]).
//
// File selection. Only entries directly in the directory are read;
// subdirectories are not descended into, so a directory can hold helpers (a
// git checkout's .git, an images/ folder, drafts/) without them becoming
// tasks, and the set of files is obvious from one `ls`. An entry is read when
// its name ends in ".yaml" or ".yml" and [Ignored] does not reject it
// (dotfiles, editor backups and swap files, emacs "#autosave#" files). It must
// be a regular file or a symlink to one: a directory, or a symlink to one, is
// skipped, and any other kind of entry with a manifest name (a FIFO, a socket,
// a dangling symlink) is reported as broken. Files are read in name order. A
// task name defined in two files is an error in both files, and the task keeps
// its previous spec (see [Loader.Load]). Hidden directories are ignored like
// every other subdirectory. A secret's file may be the plain name of a file
// of the directory ([Secret], [SecretFileName]): it is kept as written (the
// spec hash never depends on where the directory is) and resolved only by
// the runtime, when it stages the secret.
//
// Defaults and normal forms. Parse fills in every default ([Spec] documents
// them) and spells signals and capabilities one way ("SIGTERM",
// "CAP_NET_ADMIN"), so consumers read effective values. [Task.Hash] is
// computed over the same form with the defaults removed again, so that a
// default written out or left out, or a field added to the schema later,
// does not change it.
//
// Transient states. Writers pass through states that must not delete a
// task: a file truncated before it is written again is empty, and an editor
// that saves by renaming the old file away leaves a moment with no file at
// all. So an empty file keeps its tasks' last good spec (it is reported as
// broken), and a file that vanished keeps its tasks while the directory was
// changed less than [RemoveGrace] ago, unless another file now defines them;
// the watcher reads the directory again once that grace is over. A file whose
// content is unchanged is not parsed again.
//
// The JSON Schema of a manifest ([JSONSchema]) is generated from the same
// types, enums and patterns that validation uses; manifests/task.schema.json
// is its committed copy.
package desired
