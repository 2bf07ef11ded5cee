// Command testapp is the program inside the image that the examples and the e2e
// tests run. It is small, static and does only what the tests need to observe:
// it prints to stdout, serves HTTP, exits with a chosen code, and handles or
// ignores SIGTERM.
//
// Every flag can also be given as an environment variable (upper case, dashes as
// underscores, e.g. LISTEN=:8080), so a manifest can change behaviour through env.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	fs := flag.NewFlagSet("testapp", flag.ExitOnError)
	listen := fs.String("listen", "", "serve HTTP on this address (e.g. :8080); / answers with the MESSAGE")
	message := fs.String("message", "hello from testapp", "line printed at start and served on /")
	exitAfter := fs.Duration("exit-after", 0, "exit after this long (0: run until signalled)")
	exitCode := fs.Int("exit-code", 0, "exit code used by -exit-after")
	ignoreTerm := fs.Bool("ignore-sigterm", false, "ignore SIGTERM (only SIGKILL stops the process)")
	termDelay := fs.Duration("term-delay", 0, "on SIGTERM, wait this long before exiting")
	tick := fs.Duration("tick", 0, "print a line to stdout at this interval (0: never)")
	printEnv := fs.Bool("print-env", false, "print the environment at start, sorted")
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

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}

	if *listen != "" {
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, *message) })
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
			fmt.Printf("testapp: tick %s\n", time.Now().UTC().Format(time.RFC3339Nano))
		case s := <-sigs:
			fmt.Printf("testapp: got %s, exiting in %s\n", s, *termDelay)
			time.Sleep(*termDelay)
			os.Exit(0)
		}
	}
}
