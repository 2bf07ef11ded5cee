package main

import (
	"strings"
	"testing"
)

func TestNetworkRows(t *testing.T) {
	var r results
	r.Network.FloorSeconds = []float64{0.060, 0.070}
	r.Network.FloorCNISeconds = []float64{0.090, 0.105}
	r.Network.ReconcilerSeconds = []float64{0.099, 0.110}
	r.Network.CNIAddSeconds = []float64{0.025, 0.030}
	r.Network.CNIDelSeconds = []float64{0.020, 0.022}
	rows := r.networkRows()
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5: %+v", len(rows), rows)
	}
	if rows[0].Figure != "90.0 ms" || rows[0].Floor != "60.0 ms" || rows[0].VsFloor != "+30.0 ms (x1.50)" {
		t.Errorf("what CNI adds, p50: %+v", rows[0])
	}
	if rows[2].Figure != "99.0 ms" || rows[2].Floor != "90.0 ms" || rows[2].VsFloor != "+9.0 ms (x1.10)" {
		t.Errorf("what the reconciler adds, p50: %+v", rows[2])
	}
	if !strings.Contains(rows[3].Measure, "p90") || rows[3].Figure != "110.0 ms" {
		t.Errorf("p90: %+v", rows[3])
	}
	// In a full run, the rows come with the others; a skipped measure
	// says so.
	var cfg config
	if all := r.rows(cfg); !hasMeasure(all, "bridge drop") {
		t.Errorf("a full run's table has no bridge rows")
	}
	cfg.networkOnly = true
	if only := r.rows(cfg); len(only) != 5 {
		t.Errorf("-network-only: %d rows, want 5", len(only))
	}
	r.Network = netResult{Skipped: "no plugins"}
	if rows := r.networkRows(); len(rows) != 1 || !strings.Contains(rows[0].Measure, "skipped") {
		t.Errorf("skipped: %+v", rows)
	}
}

func hasMeasure(rows []row, prefix string) bool {
	for _, r := range rows {
		if strings.HasPrefix(r.Measure, prefix) {
			return true
		}
	}
	return false
}
