// Package chaos is the reconciler's chaos suite: real faults against real
// processes (the reconciler binary, containerd, runc, a registry on
// 127.0.0.1, a tiny tmpfs), each followed by a wait for convergence and a
// check of every invariant with package invariants.
//
// Fault kinds (one test each):
//
//  1. kill: SIGKILL of the reconciler at a random moment while it converges
//     a burst of creates, replacements and deletions; it is started again.
//  2. containerd: SIGTERM or SIGKILL of containerd during convergence; it
//     is started again on the same directories.
//  3. ctr: task processes killed and containers deleted behind the
//     reconciler's back, with ctr and kill(2).
//  4. image: the registry stopped, or the credentials wrong, then right.
//  5. flood: hundreds of malformed files dropped while tasks run.
//  6. disk: the state directory on a tiny tmpfs that fills up, then frees.
//  7. health: random tasks turn unhealthy (their health marker removed
//     behind their back); each is stopped, restarted by its policy and
//     healthy again, and no other task moves.
//  8. update: random tasks get a changed spec that fails to prove itself
//     (exits at once, fails its health check, never turns healthy before
//     its progressDeadline) or, now and then, a good one; a third of the
//     time the reconciler is killed during the rollout. A bad change is
//     rolled back to the same container (same ID and snapshot), a good
//     one leaves its new container alone, proven; the old container is
//     kept until then, and a stop-first task never runs both.
//  9. netkill: SIGKILL of the reconciler within 300 ms of a new, changed
//     or removed manifest of a bridge task (or of the first action it
//     logs after it), while it sets up or tears down the task's network;
//     it is started again. Convergence includes the network rule (no
//     namespace pin, port file, address lease or iptables rule of a
//     container that does not exist) and every bridge task answering on
//     its published port with its version.
//  10. git: the reconciler on --git (git daemon on 127.0.0.1, interval 1s): server down while commits are pushed, force-push to an older commit, garbage pushed, bad signatures (with --git-verify); see git_test.go.
//
// The kill and netkill worlds have bridge tasks with ports published on
// 127.0.0.1, on a bridge, subnet and run directory of the world's own.
//
// A changed spec of a running task is a rollout (the new container proves
// itself for minReady, 1s in the suite's tasks): the checker does not
// count a rollout under way as a violation, and the suite does not count
// it as converged (invariants.Rollouts).
//
// Every task of every kind has an exec health check that passes, so that
// each fault also meets probes in flight.
//
// `go test ./e2e/chaos/` runs one iteration of each (part of make test);
// -chaos.kinds=update,kill runs only those kinds;
// `make chaos` runs many (-chaos.iterations, -chaos.duration) and prints a
// table of faults by kind, convergence times (p50, p99) and violations. The
// random seed is printed and taken by -chaos.seed, so a failure replays.
//
// Like the e2e tests it needs root, containerd and runc; under CI=true it
// must run, it never skips.
package chaos
