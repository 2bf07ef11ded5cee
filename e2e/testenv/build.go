package testenv

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Reconciler builds the reconciler into bin and the standalone log driver
// into driver (absolute paths) the way it ships: by running `make build`,
// which embeds the driver in the binary. tags, if not empty, replaces the Makefile's
// BUILD_TAGS (such as "grpcnotrace,pprof").
func Reconciler(ctx context.Context, bin, driver, tags string) error {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return fmt.Errorf("find the module's directory: %w", err)
	}
	args := []string{"-C", strings.TrimSpace(string(out)), "--no-print-directory", "build", "BIN=" + bin, "DRIVER=" + driver}
	if tags != "" {
		args = append(args, "BUILD_TAGS="+tags)
	}
	if out, err := exec.CommandContext(ctx, "make", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("make build: %w\n%s", err, out)
	}
	return nil
}
