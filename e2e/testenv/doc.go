// Package testenv is what the end-to-end tests, the chaos suite and the
// benchmark share to run the reconciler, so that each helper exists once:
//
//   - the environment: the check of what the machine needs (Missing,
//     Usable, Require), the reconciler built the way it ships (`make
//     build`, the standalone log driver embedded), the test image, and a
//     private containerd in a short temporary directory (Setup, or
//     Suite.Main as a whole TestMain);
//   - the daemon: `reconciler run` command lines (Run), the process with
//     its output kept and waited on (Daemon, whose methods return errors,
//     for the benchmark; TestDaemon, whose waits fail a test), and its
//     status as `reconciler status -o json` reports it (ReadStatus);
//   - the manifests: a task of the test image (Manifest, EnvSpec,
//     WithImage) written the way docs/writing-manifests.md recommends
//     (WriteFile);
//   - the node: a test's namespace, wiped when the test ends (Connect,
//     Wipe), the test image imported and containers made by hand
//     (ImportImage, StartContainer), and an image registry (Registry);
//   - waiting: Poll, WaitFor.
//
// It must never build the binary any other way than `make build` does: the
// tests would then check a binary that nobody installs.
package testenv
