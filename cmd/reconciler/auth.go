package main

// The local API's authentication off the unix socket. The socket is
// guarded by its file mode (0600: root only) and takes no token. With
// --api-token-file, every request on the --listen listener must carry
// "Authorization: Bearer TOKEN", TOKEN being the file's content, read at
// each request so that it can be rotated without a restart. Without it,
// --listen must be a loopback address: the daemon refuses to start rather
// than serve the API open on a network (docs/api.md).

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// tokenFileEnv names the token file of the client commands when
// --api-token-file does not.
const tokenFileEnv = "RECONCILER_API_TOKEN_FILE"

// maxTokenSize bounds what is read of a token file.
const maxTokenSize = 4096

// checkListen refuses a --listen address off loopback without a token,
// and a token without --listen.
func checkListen(listen, tokenFile string) error {
	switch {
	case listen == "" && tokenFile != "":
		return errors.New("--api-token-file needs --listen: the unix socket takes no token (its file mode guards it)")
	case listen == "" || tokenFile != "":
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("--listen %s is not a loopback address: serving the API there needs --api-token-file FILE, a bearer token every request must carry (see docs/api.md)", listen)
	}
	return nil
}

// isLoopback reports whether host, of a listen address, is on loopback
// only: localhost, 127.0.0.0/8 or ::1. An empty host is every address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readToken reads a token file: its content, white space around it
// trimmed. An empty token is an error.
func readToken(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenSize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", file, err)
	case len(b) > maxTokenSize:
		return nil, fmt.Errorf("%s is larger than %d bytes: not a token", file, maxTokenSize)
	}
	if b = bytes.TrimSpace(b); len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", file)
	}
	return b, nil
}

// tokenAuth checks the bearer token of the requests on the --listen
// listener against the token file.
type tokenAuth struct {
	file string
	log  logr.Logger

	mu      sync.Mutex
	problem string   // what was wrong with the file at the last read, "" if nothing
	sum     [32]byte // the SHA-256 of the token at the last good read
	read    bool     // the file was read once
}

// requireToken wraps next so that every request must carry the token of
// the file; without a file, next is returned as it is (loopback only, as
// checkListen made sure).
func requireToken(file string, log logr.Logger, next http.Handler) http.Handler {
	if file == "" {
		return next
	}
	t := &tokenAuth{file: file, log: log}
	t.token() // says at start what is wrong with the file, if anything
	return t.wrap(next)
}

func (t *tokenAuth) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want, ok := t.token()
		given, found := bearer(r.Header.Get("Authorization"))
		// Compared as SHA-256 sums, so that neither the time taken nor
		// an early return for another length says anything of the token.
		gsum := sha256.Sum256([]byte(given))
		if !ok || !found || subtle.ConstantTimeCompare(gsum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, http.StatusText(http.StatusUnauthorized), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// token reads the file and returns the token's SHA-256; false when the
// file cannot be read or is empty, and then every request is refused. A
// change of what is wrong with the file, and a rotation, are logged once;
// the token never is.
func (t *tokenAuth) token() ([32]byte, bool) {
	b, err := readToken(t.file)
	problem := ""
	if err != nil {
		problem = err.Error()
	}
	sum := sha256.Sum256(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case problem != "" && problem != t.problem:
		t.log.Error(err, "API token file unusable; every request on --listen is refused until it is fixed", "file", t.file)
	case problem == "" && t.problem != "":
		t.log.Info("API token file usable again", "file", t.file)
	case problem == "" && t.read && sum != t.sum:
		t.log.Info("API token rotated", "file", t.file)
	}
	t.problem = problem
	if problem != "" {
		return [32]byte{}, false
	}
	t.sum, t.read = sum, true
	return sum, true
}

// bearer returns the token of an Authorization header of the Bearer
// scheme (case-insensitive, RFC 6750).
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// The client side: status, wait, sync and logs with --api.

// registerTokenFile adds --api-token-file to the flags of a client command;
// its default is $RECONCILER_API_TOKEN_FILE.
func registerTokenFile(fs *pflag.FlagSet, file *string) {
	fs.StringVar(file, "api-token-file", os.Getenv(tokenFileEnv),
		"with --api: file of the bearer token the daemon's --listen wants (the daemon's --api-token-file), read at each request; default $"+tokenFileEnv)
}

// newClient returns the client of the daemon's API on addr (else the unix
// socket of stateDir) that sends the token of tokenFile with --api.
// --api-token-file without --api is a usage error; the environment
// variable alone is not (the socket needs no token).
func newClient(cmd *cobra.Command, stateDir, addr, tokenFile string) (*apiClient, error) {
	c := newAPIClient(stateDir, addr)
	switch {
	case addr == "" && cmd.Flags().Changed("api-token-file"):
		return nil, errors.New("--api-token-file needs --api: the unix socket takes no token")
	case addr != "" && tokenFile != "":
		c.http.Transport = &bearerTransport{file: tokenFile, next: http.DefaultTransport}
	}
	return c, nil
}

// bearerTransport sends the token of its file, read at each request, with
// every request.
type bearerTransport struct {
	file string
	next http.RoundTripper
}

func (b *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	token, err := readToken(b.file)
	if err != nil {
		return nil, fmt.Errorf("the API token (--api-token-file or $%s): %w", tokenFileEnv, err)
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(token))
	return b.next.RoundTrip(r)
}

// unauthorized is the error of a request the daemon refused for its token.
func unauthorized(method, path string, resp *http.Response) error {
	if resp.StatusCode != http.StatusUnauthorized {
		return nil
	}
	return fmt.Errorf("%s %s: %s: the daemon's --listen wants its bearer token (--api-token-file FILE or $%s), and this one is missing or wrong", method, path, resp.Status, tokenFileEnv)
}
