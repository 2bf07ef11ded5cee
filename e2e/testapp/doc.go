// Command testapp is the program inside the image that the examples and the e2e
// tests run. It is small, static and does only what the tests need to observe:
// it prints to stdout, serves HTTP, exits with a chosen code, and handles or
// ignores SIGTERM. For the runtime tests it can also, once at start: print its
// identity and security state (-print-security), allocate memory
// (-alloc-mib), try to write a file (-write-file), print files' mode, owner
// and content (-inspect), and try a TCP connection (-connect). Each result is
// one line "testapp: WHAT: ..." on stdout (failures on stderr).
//
// For health checks, with -listen, /healthz answers 200 while the
// -health-file exists and 503 otherwise; and `testapp probe` is an exec
// probe: it prints its identity, waits -sleep, and exits -exit, or 0 while
// its -file exists and 1 otherwise (-child leaves a child holding its
// output). -marker creates a file -marker-after the start and removes it
// -marker-gone-after it: a task that turns healthy late, or stops being.
//
// Every flag can also be given as an environment variable (upper case, dashes as
// underscores, e.g. LISTEN=:8080), so a manifest can change behaviour through env.
package main
