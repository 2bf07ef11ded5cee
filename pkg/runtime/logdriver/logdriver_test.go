package logdriver

import (
	"bytes"
	"strings"
	"testing"
)

func TestIsCall(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"--reconciler-log-driver", "v1", "--dir", "/d"}, true},
		{[]string{"--dir", "/d", "--reconciler-log-driver", "v1"}, true},
		{[]string{"--dir", "--reconciler-log-driver"}, false}, // a value, not a key
		{[]string{"run", "--manifests", "m"}, false},
		{nil, false},
	} {
		if got := IsCall(tc.args); got != tc.want {
			t.Errorf("IsCall(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestMainExitCodes(t *testing.T) {
	t.Setenv("CONTAINER_ID", "")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"--reconciler-log-driver", "v1"}, exitUsage, "--dir is required"},
		{[]string{"--bogus"}, exitUsage, "flag provided but not defined"},
		{[]string{"--dir", t.TempDir()}, exitFailure, "CONTAINER_ID is not set"},
		{[]string{"--reconciler-log-driver", "v1", "--check"}, exitOK, ""},
	} {
		var stderr bytes.Buffer
		if code := Main(tc.args, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("Main(%q) = %d, %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.msg)
		}
	}
}
