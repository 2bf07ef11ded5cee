package webui

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sample is one reading of a task's usage.
type sample struct {
	at  time.Time
	cpu float64 // seconds so far
	mem float64 // bytes
}

// history keeps the last n samples of each task: n per task, and a task
// that has not been seen for a window is forgotten, so its memory is
// bounded by the tasks that run.
type history struct {
	n      int
	window time.Duration

	mu    sync.Mutex
	tasks map[string][]sample
}

func newHistory(n int, window time.Duration) *history {
	return &history{n: n, window: window, tasks: map[string][]sample{}}
}

// record adds a sample of each task in u, taken at now.
func (h *history) record(now time.Time, u map[string]Usage) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, x := range u {
		s := h.tasks[name]
		if len(s) == h.n {
			copy(s, s[1:])
			s = s[:h.n-1]
		}
		h.tasks[name] = append(s, sample{at: now, cpu: x.CPUSeconds, mem: x.MemoryBytes})
	}
	for name, s := range h.tasks {
		if now.Sub(s[len(s)-1].at) > h.window {
			delete(h.tasks, name)
		}
	}
}

// usageView is what a row shows of a task's usage: a value now and a line
// of the window's samples, for CPU and memory.
type usageView struct {
	CPU, Mem spark
}

// spark is a sparkline: the points of an SVG polyline in a box of
// sparkW x sparkH, "" when there are too few samples; and the value now.
type spark struct {
	Points string
	Value  string
}

const sparkW, sparkH = 100, 20

// view returns the usage of task over the samples kept; running says
// whether the task runs (a task that does not shows no value now).
func (h *history) view(task string, running bool) usageView {
	h.mu.Lock()
	s := append([]sample(nil), h.tasks[task]...)
	h.mu.Unlock()
	var v usageView
	v.CPU.Value, v.Mem.Value = "-", "-"
	if len(s) == 0 {
		return v
	}
	// The line spans the box from the first sample kept to the last.
	first, span := s[0].at, s[len(s)-1].at.Sub(s[0].at)
	x := func(t time.Time) float64 {
		if span <= 0 {
			return 0
		}
		return float64(sparkW) * float64(t.Sub(first)) / float64(span)
	}
	// CPU: the rate between two samples, as a share of one core; a
	// counter that went back (a new container) starts again from 0.
	var cpuX, cpuY []float64
	for i := 1; i < len(s); i++ {
		dt := s[i].at.Sub(s[i-1].at).Seconds()
		d := s[i].cpu - s[i-1].cpu
		if dt <= 0 || d < 0 {
			continue
		}
		cpuX, cpuY = append(cpuX, x(s[i].at)), append(cpuY, d/dt)
	}
	memX, memY := make([]float64, 0, len(s)), make([]float64, 0, len(s))
	for _, p := range s {
		memX, memY = append(memX, x(p.at)), append(memY, p.mem)
	}
	v.CPU.Points, v.Mem.Points = polyline(cpuX, cpuY), polyline(memX, memY)
	if running {
		if len(cpuY) > 0 {
			v.CPU.Value = percent(cpuY[len(cpuY)-1])
		}
		v.Mem.Value = bytesIEC(memY[len(memY)-1])
	}
	return v
}

// polyline scales ys to the box (0 at the bottom, the largest at the top)
// and returns the points; "" for fewer than two.
func polyline(xs, ys []float64) string {
	if len(ys) < 2 {
		return ""
	}
	top := 0.0
	for _, y := range ys {
		top = max(top, y)
	}
	var b strings.Builder
	for i := range ys {
		y := float64(sparkH) - 1
		if top > 0 {
			y = 1 + (float64(sparkH)-2)*(1-ys[i]/top)
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(strconv.FormatFloat(max(0, xs[i]), 'f', 1, 64))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(y, 'f', 0, 64)) // a twentieth of the height is as fine as a line drawn 1rem high shows
	}
	return b.String()
}

// percent shows a share of one core: "0.4%", "12%", "180%".
func percent(cores float64) string {
	p := cores * 100
	if p < 10 {
		return strconv.FormatFloat(p, 'f', 1, 64) + "%"
	}
	return strconv.FormatFloat(p, 'f', 0, 64) + "%"
}

// bytesIEC shows a size in binary units, with three digits at most:
// "512 B", "2.0 KiB", "24 MiB".
func bytesIEC(b float64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%.0f B", b)
	}
	div, exp := float64(unit), 0
	for n := b / unit; n >= unit && exp < 4; n /= unit {
		div *= unit
		exp++
	}
	v := b / div
	if v < 10 {
		return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[exp])
	}
	return fmt.Sprintf("%.0f %ciB", v, "KMGTP"[exp])
}
