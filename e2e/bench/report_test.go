package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestPct(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3} // unsorted on purpose
	for _, c := range []struct {
		p    float64
		want float64
	}{{0, 1}, {20, 1}, {50, 3}, {99, 5}, {100, 5}} {
		if got := pct(xs, c.p); got != c.want {
			t.Errorf("pct(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	if got := pct(hundred, 99); got != 99 {
		t.Errorf("p99 of 1..100 = %v, want 99 (nearest rank)", got)
	}
}

func TestClusters(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	cs := []call{
		{Method: "/containerd.services.events.v1.Events/Subscribe", Start: at(0)}, // long-lived: never counted
		{Method: "/a/List", Start: at(1), End: at(3)},
		{Method: "/a/List", Start: at(3), End: at(900)}, // a slow call keeps the pass open
		{Method: "/a/List", Start: at(1000), End: at(1001)},
		{Method: "/a/List", Start: at(5000), End: at(5002)},
	}
	got := clusters(cs, 500*time.Millisecond)
	if len(got) != 2 || len(got[0]) != 3 || len(got[1]) != 1 {
		t.Fatalf("clusters: %v", got)
	}
	if d := passTime(got[0]); d != 1.0 {
		t.Errorf("pass time %v, want 1.0s", d)
	}
	if m := methods(got[0]); m["a/List"] != 3 {
		t.Errorf("methods %v", m)
	}
}

// base is the results of a run that meets every target.
func base() results {
	var r results
	r.Floor.BurstSeconds = []float64{10, 10, 10}
	r.Reconciler.BurstSeconds = []float64{11, 11.4, 11}
	r.Floor.SingleSeconds = []float64{0.100, 0.110}
	r.Reconciler.SingleSeconds = []float64{0.120, 0.130}
	r.Idle.WindowSeconds, r.Idle.CPUSeconds, r.Idle.N = 60, 0.06, 200
	r.Idle.Levels = []levelResult{{N: 0, Calls: 1}, {N: 100, Calls: 2, PeakBytes: 20 << 20}, {N: 200, Calls: 2}}
	r.Teardown = []stopResult{{KillAfterDecision: 2.05, GoneAfterDecision: 2.5}, {KillAfterDecision: 1.97, GoneAfterDecision: 2.4}}
	return r
}

func TestRowsTargets(t *testing.T) {
	cfg := config{n: 100, c: 4, grace: 2 * time.Second}
	for _, c := range []struct {
		name    string
		mutate  func(*results)
		measure string // the row that must say "no"; "" for all yes
	}{
		{"all met", func(*results) {}, ""},
		{"burst slow", func(r *results) { r.Reconciler.BurstSeconds = []float64{12, 12, 12} }, "burst:"},
		{"p50 far", func(r *results) { r.Reconciler.SingleSeconds = []float64{0.140, 0.200} }, "drop -> running, p50"},
		{"idle CPU", func(r *results) { r.Idle.CPUSeconds = 0.2 }, "idle CPU"},
		{"calls grow", func(r *results) { r.Idle.Levels[2].Calls = 202 }, "calls per resync"},
		{"memory", func(r *results) { r.Idle.Levels[1].PeakBytes = 26 << 20 }, "memory, N=100"},
		{"kill early", func(r *results) { r.Teardown[1].KillAfterDecision = 1.85 }, "-> SIGKILL"},
		{"removal late", func(r *results) { r.Teardown[0].GoneAfterDecision = 3.2 }, "-> removed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := base()
			c.mutate(&r)
			for _, row := range r.rows(cfg) {
				wantNo := c.measure != "" && strings.Contains(row.Measure, c.measure)
				if wantNo && row.Met != "no" {
					t.Errorf("%q: met %q, want no", row.Measure, row.Met)
				}
				if !wantNo && row.Met == "no" {
					t.Errorf("%q: met no (%s vs %s)", row.Measure, row.Figure, row.Target)
				}
			}
		})
	}
}

func TestPrintTable(t *testing.T) {
	r := base()
	var b bytes.Buffer
	printTable(&b, r.rows(config{n: 100, c: 4, grace: 2 * time.Second}))
	out := b.String()
	for _, want := range []string{"measure", "x1.10", "+20.0 ms", "constant in N", "G +/- 100 ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestPairedRatios(t *testing.T) {
	got := pairedRatios([]float64{4.4, 3.8, 4.6}, []float64{3.2, 3.8, 4.0, 9})
	want := []float64{4.4 / 3.2, 1, 4.6 / 4.0}
	if len(got) != len(want) {
		t.Fatalf("pairedRatios = %v, want %v", got, want)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			t.Errorf("pairedRatios[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	r := base()
	r.Reconciler.BurstSeconds, r.Floor.BurstSeconds = []float64{4.4, 3.8, 4.6}, []float64{3.2, 3.8, 4.0}
	for _, row := range r.rows(config{n: 100, c: 4, grace: 2 * time.Second}) {
		if strings.Contains(row.Measure, "round by round") {
			if row.Figure != "x1.38 x1.00 x1.15" || row.VsFloor != "x1.15" {
				t.Errorf("round-by-round row %+v", row)
			}
			return
		}
	}
	t.Error("no round-by-round row")
}
