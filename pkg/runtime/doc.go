// Package runtime is the reconciler's containerd client: the only package
// that imports containerd. It lists what runs (observed.Raw, in as few calls
// as the daemon allows: a full listing is two calls whatever the number of
// containers; a task's listing reads that task's containers by ID, from the
// index of the last full listing, index.go), creates, starts, stops and deletes containers from
// desired.Task (one OCI spec option per manifest field, then the secure
// defaults: seccomp narrowed to the image's syscall ABI, no NET_RAW,
// no-new-privileges, masked /proc paths), enforces the node policy, imports
// image archives and pulls images (with registry credentials), watches task
// exits, runs health probes in containers (Exec: one probe process per
// container, its output in a file of the runtime's, nothing left behind;
// exec.go), reads an image's HEALTHCHECK, collects what interrupted
// operations left behind, sets up the network of bridge tasks through the
// CNI plugins (network.go, bridge.go: a namespace pinned per container
// under /run, released with its CNI DEL before the container goes, or by
// the sweep when a crash came between), and can run a private containerd
// of its own (managed.go). It implements the small
// interfaces that pkg/observed and pkg/reconcile declare; the controller is
// tested against a fake of them, this package against a real containerd in
// e2e/.
//
// Secrets are staged per container (age.go, spec.go withSecrets): a
// secret's file is a host path the node policy allows, or the plain name
// of a file of the manifests directory (WithManifestsDir; the git source's
// link resolved once per staging); a "*.age" file is decrypted with the
// identities of WithAgeIdentity, read again at each staging, to at most
// MaxAgeSecretSize bytes of clear text, which is written only into the
// staged copy (mode 0400).
//
// It must never touch a container, snapshot, lease or file it does not own
// (the ownership label, observed.LabelManagedBy, says which; a create never
// takes over a container of its ID that is not the task's), never put a
// secret's content (nor an age secret's clear text, nor an identity) into
// a spec, a label, a log line or an error, and never run a
// container the node policy refuses. The things of containerd's and runc's
// own it removes are what an interrupted task left that blocks its own
// container's ID (bundle.go): a bundle directory in containerd's state that
// nothing uses (what containerd itself removes when it restarts), and
// runc's state of a container of which containerd has no task. It never
// runs a CNI DEL without the container's namespace and port mappings (that
// leaves NAT rules behind), and never releases the network of a container
// that exists or that it is creating.
package runtime
