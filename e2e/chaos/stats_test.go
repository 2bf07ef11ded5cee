package chaos

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// stats collects every fault of the run for the table.
var stats = &collector{by: map[string]*kindStats{}}

type collector struct {
	mu     sync.Mutex
	by     map[string]*kindStats
	extras []string // notes printed under the table (peak memory, ...)
}

type kindStats struct {
	faults     int
	converged  []time.Duration
	violations int
}

// record records one fault of kind: the time to convergence (negative if
// it never converged) and the violations left.
func (c *collector) record(kind string, took time.Duration, violations int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.by[kind]
	if k == nil {
		k = &kindStats{}
		c.by[kind] = k
	}
	k.faults++
	if took >= 0 {
		k.converged = append(k.converged, took)
	}
	k.violations += violations
}

// violated adds n violations to kind's count without a fault: what a
// fault's own checks saw while it converged (see the update kind).
func (c *collector) violated(kind string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.by[kind]
	if k == nil {
		k = &kindStats{}
		c.by[kind] = k
	}
	k.violations += n
}

func (c *collector) note(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.extras = append(c.extras, fmt.Sprintf(format, args...))
}

func (c *collector) violations() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, k := range c.by {
		n += k.violations
	}
	return n
}

// table renders the figures as a markdown table.
func (c *collector) table() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	b.WriteString("| fault | injected | converged | convergence p50 | p99 | max | violations |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
	var total kindStats
	row := func(name string, k *kindStats) {
		d := slices.Clone(k.converged)
		slices.Sort(d)
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %d |\n", name, k.faults, len(d),
			pct(d, 50), pct(d, 99), pct(d, 100), k.violations)
	}
	for _, name := range kinds {
		k := c.by[name]
		if k == nil {
			continue
		}
		row(name, k)
		total.faults += k.faults
		total.converged = append(total.converged, k.converged...)
		total.violations += k.violations
	}
	row("**all**", &total)
	for _, e := range c.extras {
		b.WriteString("\n" + e + "\n")
	}
	return b.String()
}

// pct is the p-th percentile of sorted durations (nearest rank).
func pct(sorted []time.Duration, p int) string {
	if len(sorted) == 0 {
		return "-"
	}
	i := (p*len(sorted)+99)/100 - 1
	i = max(0, min(i, len(sorted)-1))
	return fmt.Sprintf("%.2fs", sorted[i].Seconds())
}
