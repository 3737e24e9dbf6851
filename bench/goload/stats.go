package main

import (
	"math"
	"slices"
	"time"
)

// epoch is the client's clock: every time it records or writes into a comment is nanoseconds
// since it started, read from Go's monotonic clock, so a wall-clock step cannot skew a latency.
var epoch = time.Now()

func nowNs() int64 { return int64(time.Since(epoch)) }

// Summary is p50, p99 and max of a list of latencies, in ms. Nil fields (JSON null) mean
// that nothing was measured.
type Summary struct {
	P50Ms *float64 `json:"p50_ms"`
	P99Ms *float64 `json:"p99_ms"`
	MaxMs *float64 `json:"max_ms"`
}

// pct is bench/rawclient.py's pct on sorted values: the element at round(p/100 * (n-1)),
// rounding half to even as Python's round does, so both clients rank alike.
func pct(sorted []int64, p float64) int64 {
	i := int(math.RoundToEven(p / 100 * float64(len(sorted)-1)))
	return sorted[min(len(sorted)-1, i)]
}

// summarize takes latencies in ns (and may reorder them).
func summarize(ns []int64) Summary {
	if len(ns) == 0 {
		return Summary{}
	}
	slices.Sort(ns)
	ms := func(v int64) *float64 { f := float64(v) / 1e6; return &f }
	return Summary{P50Ms: ms(pct(ns, 50)), P99Ms: ms(pct(ns, 99)), MaxMs: ms(ns[len(ns)-1])}
}
