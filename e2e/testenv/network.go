package testenv

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// UnpinAll unmounts the network namespace pins under runDir/netns (the
// reconciler's --network-run-dir), so that the directory can be removed.
func UnpinAll(runDir string) {
	pins, _ := filepath.Glob(filepath.Join(runDir, "netns", "*"))
	for _, p := range pins {
		_ = exec.Command("umount", "-l", p).Run()
	}
}

// DropNATRules deletes the nat rules whose comment names the CNI network,
// and the containers' own chains they jump to: what a reboot does, and
// what a test whose containers were deleted behind the reconciler's back
// (no CNI DEL) must do.
func DropNATRules(network string) error {
	out, err := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables-save: %v %s", err, out)
	}
	chains := map[string]bool{}
	var errs []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "-A ") || !strings.Contains(line, `name: \"`+network+`\"`) {
			continue
		}
		rule := SplitRule(strings.TrimPrefix(line, "-A "))
		if i := slices.Index(rule, "-j"); i >= 0 && i+1 < len(rule) && strings.HasPrefix(rule[i+1], "CNI-") && !strings.HasPrefix(rule[i+1], "CNI-HOSTPORT-") {
			chains[rule[i+1]] = true // the container's own chain
		}
		args := append([]string{"-t", "nat", "-D"}, rule...)
		if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Sprintf("iptables %q: %v %s", args, err, out))
		}
	}
	for c := range chains {
		_ = exec.Command("iptables", "-t", "nat", "-F", c).Run()
		_ = exec.Command("iptables", "-t", "nat", "-X", c).Run()
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// SplitRule splits an iptables-save rule into arguments, quoted ones kept
// together.
func SplitRule(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			quoted = !quoted
		case c == ' ' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
