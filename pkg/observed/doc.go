// Package observed says what is really on the node: the containers of the
// reconciler's containerd namespace, split into the ones it owns (they carry the
// ownership label and consistent identity labels) and everything else.
//
// It defines the label contract (DESIGN invariants 1 and 3): everything the
// reconciler needs to resume after a restart is read back from these labels,
// never from memory. It declares the one method it needs from a runtime
// (Lister) and never imports containerd itself.
//
// It must never act: no create, stop or delete happens here. A container whose
// labels do not hold together (tampered or foreign) is reported as unmanaged and
// is never a candidate for deletion.
package observed
