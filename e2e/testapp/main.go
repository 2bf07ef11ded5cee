package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

// hold keeps the memory of -alloc-mib reachable.
var hold [][]byte

func main() {
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		os.Exit(probe(os.Args[2:]))
	}
	fs := flag.NewFlagSet("testapp", flag.ExitOnError)
	listen := fs.String("listen", "", "serve HTTP on this address (e.g. :8080); / answers with the MESSAGE")
	message := fs.String("message", "hello from testapp", "line printed at start and served on /")
	exitAfter := fs.Duration("exit-after", 0, "exit after this long (0: run until signalled)")
	exitCode := fs.Int("exit-code", 0, "exit code used by -exit-after")
	ignoreTerm := fs.Bool("ignore-sigterm", false, "ignore SIGTERM (only SIGKILL stops the process)")
	termDelay := fs.Duration("term-delay", 0, "on SIGTERM, wait this long before exiting")
	tick := fs.Duration("tick", 0, "print a line to stdout at this interval (0: never)")
	printEnv := fs.Bool("print-env", false, "print the environment at start, sorted")
	printHost := fs.Bool("print-hostname", false, "print the hostname at start")
	printSec := fs.Bool("print-security", false, "print uid, gid, cwd and the CapEff, Seccomp and NoNewPrivs lines of /proc/self/status")
	allocMiB := fs.Int("alloc-mib", 0, "allocate and touch this many MiB at start, then keep them")
	writeFile := fs.String("write-file", "", "comma-separated files: try to write -write-content (or -write-bytes zero bytes) to each at start")
	writeContent := fs.String("write-content", "written by testapp", "content for -write-file")
	writeBytes := fs.Int("write-bytes", 0, "with -write-file: write this many zero bytes instead of -write-content")
	inspect := fs.String("inspect", "", "comma-separated paths: print each one's mode, owner and (files) content")
	connect := fs.String("connect", "", "try a TCP connection to this host:port at start (2s timeout)")
	connectRetry := fs.Duration("connect-retry", 0, "with -connect: try again every 100ms for this long until it connects")
	tickPad := fs.Int("tick-pad", 0, "pad each tick line with this many characters")
	healthFile := fs.String("health-file", "", "with -listen: /healthz answers 200 while this file exists, 503 otherwise")
	marker := fs.String("marker", "", "a file this process creates -marker-after its start and removes -marker-gone-after it (for probes: testapp probe -file)")
	markerAfter := fs.Duration("marker-after", 0, "when to create the -marker (0: at start)")
	markerGone := fs.Duration("marker-gone-after", 0, "when to remove the -marker (0: never)")
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := os.LookupEnv(strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))); ok {
			_ = f.Value.Set(v)
		}
	})
	_ = fs.Parse(os.Args[1:])

	fmt.Printf("testapp: start pid=%d message=%q\n", os.Getpid(), *message)
	if *printEnv {
		env := os.Environ()
		sort.Strings(env)
		for _, e := range env {
			fmt.Println("env:", e)
		}
	}

	if *printHost {
		h, err := os.Hostname()
		fmt.Printf("hostname: %s %v\n", h, err)
	}
	if *printSec {
		wd, _ := os.Getwd()
		fmt.Printf("testapp: identity: uid=%d gid=%d cwd=%s\n", os.Getuid(), os.Getgid(), wd)
		if b, err := os.ReadFile("/proc/self/status"); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "CapEff:") || strings.HasPrefix(l, "Seccomp:") || strings.HasPrefix(l, "NoNewPrivs:") {
					fmt.Printf("testapp: status: %s\n", strings.Join(strings.Fields(l), " "))
				}
			}
		}
	}
	if *writeFile != "" {
		data := []byte(*writeContent)
		if *writeBytes > 0 {
			data = make([]byte, *writeBytes)
		}
		for _, p := range strings.Split(*writeFile, ",") {
			if err := os.WriteFile(p, data, 0o644); err != nil {
				fmt.Fprintf(os.Stderr, "testapp: write %s: error: %v\n", p, err)
			} else {
				fmt.Printf("testapp: write %s: ok\n", p)
			}
		}
	}
	if *inspect != "" {
		for _, p := range strings.Split(*inspect, ",") {
			inspectPath(p)
		}
	}
	if *connect != "" {
		c, err := net.DialTimeout("tcp", *connect, 2*time.Second)
		for end := time.Now().Add(*connectRetry); err != nil && time.Now().Before(end); {
			time.Sleep(100 * time.Millisecond)
			c, err = net.DialTimeout("tcp", *connect, 2*time.Second)
		}
		if err != nil {
			fmt.Printf("testapp: connect %s: error: %v\n", *connect, err)
		} else {
			c.Close()
			fmt.Printf("testapp: connect %s: ok\n", *connect)
		}
	}
	if *allocMiB > 0 {
		for i := 0; i < *allocMiB; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			hold = append(hold, b)
		}
		fmt.Printf("testapp: allocated %d MiB\n", len(hold))
	}
	pad := strings.Repeat("x", *tickPad)
	if *marker != "" {
		go func() {
			time.Sleep(*markerAfter)
			if err := os.WriteFile(*marker, []byte("ok"), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "testapp: marker:", err)
			} else {
				fmt.Printf("testapp: marker %s created\n", *marker)
			}
			if *markerGone > *markerAfter {
				time.Sleep(*markerGone - *markerAfter)
				_ = os.Remove(*marker)
				fmt.Printf("testapp: marker %s removed\n", *marker)
			}
		}()
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}

	if *listen != "" {
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, *message) })
		http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
			if _, err := os.Stat(*healthFile); *healthFile != "" && err != nil {
				http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		go func() {
			if err := http.ListenAndServe(*listen, nil); err != nil {
				fmt.Fprintln(os.Stderr, "testapp: listen:", err)
				os.Exit(2)
			}
		}()
	}

	var exitC <-chan time.Time
	if *exitAfter > 0 {
		exitC = time.After(*exitAfter)
	}
	var tickC <-chan time.Time
	if *tick > 0 {
		t := time.NewTicker(*tick)
		defer t.Stop()
		tickC = t.C
	}
	for {
		select {
		case <-exitC:
			fmt.Printf("testapp: exiting with code %d\n", *exitCode)
			os.Exit(*exitCode)
		case <-tickC:
			fmt.Printf("testapp: tick %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), pad)
		case s := <-sigs:
			fmt.Printf("testapp: got %s, exiting in %s\n", s, *termDelay)
			time.Sleep(*termDelay)
			os.Exit(0)
		}
	}
}

// inspectPath prints a path's mode, owner and, for a small regular file, its
// content.
func inspectPath(p string) {
	fi, err := os.Stat(p)
	if err != nil {
		fmt.Printf("testapp: inspect %s: error: %v\n", p, err)
		return
	}
	uid, gid := -1, -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	content := ""
	if fi.Mode().IsRegular() && fi.Size() <= 4096 {
		b, err := os.ReadFile(p)
		if err != nil {
			content = "unreadable: " + err.Error()
		} else {
			content = string(b)
		}
	}
	fmt.Printf("testapp: inspect %s: mode=%04o uid=%d gid=%d content=%q\n", p, fi.Mode().Perm(), uid, gid, content)
}

// probe is `testapp probe`, the command of the tests' exec health checks:
// it prints its identity (uid, cwd, the PROBE_NOTE variable), waits
// -sleep, and exits -exit, or with -file 0 while that file exists and 1
// otherwise. With -child it first starts a child that sleeps -child and
// keeps the probe's output open.
func probe(args []string) int {
	fs := flag.NewFlagSet("testapp probe", flag.ExitOnError)
	file := fs.String("file", "", "exit 0 while this file exists, 1 otherwise")
	sleep := fs.Duration("sleep", 0, "wait this long before exiting")
	code := fs.Int("exit", 0, "exit code (without -file)")
	child := fs.Duration("child", 0, "start a child that sleeps this long, holding the output")
	_ = fs.Parse(args)
	wd, _ := os.Getwd()
	fmt.Printf("probe: uid=%d cwd=%s note=%q\n", os.Getuid(), wd, os.Getenv("PROBE_NOTE"))
	fmt.Fprintln(os.Stderr, "probe: on stderr")
	if *child > 0 {
		c := exec.Command("/proc/self/exe", "probe", "-sleep", child.String())
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "probe: child:", err)
		}
	}
	time.Sleep(*sleep)
	if *file != "" {
		if _, err := os.Stat(*file); err != nil {
			fmt.Printf("probe: %v\n", err)
			return 1
		}
		fmt.Printf("probe: %s is there\n", *file)
		return 0
	}
	return *code
}
