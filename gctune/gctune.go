// Package gctune sets the Go garbage collector of a Weir process (pipectl): a higher GOGC
// than Go's 100, and a soft memory limit from the machine's or container's memory, each
// unless its environment variable says otherwise.
//
// A Weir process allocates mostly short-lived buffers (network requests and responses,
// encoded records) while its live heap is small outside memtables; with GOGC=100 the
// collector then runs several times a second and takes a tenth of the CPU of an export.
// GOGC=400 makes it run a quarter as often, and the memory limit keeps a heap that grows
// (memtables, a backlog) from outgrowing the machine: near it the collector runs sooner.
package gctune

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// DefaultPercent is the GOGC a Weir process runs with unless GOGC is set.
const DefaultPercent = 400

// LimitRatio is the share of the container's memory limit (or else of the machine's
// memory) that the soft memory limit is set to, unless GOMEMLIMIT or AUTOMEMLIMIT is set.
const LimitRatio = 0.9

// Settings are the collector's settings and where each came from.
type Settings struct {
	Percent     int    // GOGC (-1: off)
	PercentFrom string // "GOGC" (the environment) or "default"
	MemoryLimit int64  // bytes; math.MaxInt64: none
	LimitFrom   string // "GOMEMLIMIT", "AUTOMEMLIMIT=off", "memory" (the container's or machine's), "AUTOMEMLIMIT=R of memory", "error"
}

// String describes the settings in a line.
func (s Settings) String() string {
	pct := fmt.Sprint(s.Percent)
	if s.Percent < 0 {
		pct = "off"
	}
	limit := "none"
	if s.MemoryLimit != math.MaxInt64 {
		limit = fmt.Sprintf("%.1f GiB", float64(s.MemoryLimit)/(1<<30))
	}
	return fmt.Sprintf("GOGC=%s (%s), memory limit %s (%s)", pct, s.PercentFrom, limit, s.LimitFrom)
}

var applied Settings

// Apply sets the collector: GOGC to DefaultPercent unless the GOGC environment variable
// is set (the runtime has read it then), and a soft memory limit of LimitRatio of the
// container's or the machine's memory unless GOMEMLIMIT is set or AUTOMEMLIMIT is "off"
// (AUTOMEMLIMIT=0.5 sets another ratio). Call it once, at the start of main.
func Apply() (Settings, error) {
	s := Settings{Percent: DefaultPercent, PercentFrom: "default", LimitFrom: "memory"}
	if _, ok := os.LookupEnv("GOGC"); ok {
		s.Percent = debug.SetGCPercent(-1) // read it back: the runtime parsed the variable
		debug.SetGCPercent(s.Percent)
		s.PercentFrom = "GOGC"
	} else {
		debug.SetGCPercent(DefaultPercent)
	}
	_, fromEnv := os.LookupEnv("GOMEMLIMIT") // set, even empty: memlimit leaves the limit alone
	switch v, ok := os.LookupEnv("AUTOMEMLIMIT"); {
	case fromEnv:
		s.LimitFrom = "GOMEMLIMIT"
	case ok && v == "off":
		s.LimitFrom = "AUTOMEMLIMIT=off"
	case ok:
		s.LimitFrom = "AUTOMEMLIMIT=" + v + " of memory"
	}
	limit, err := memlimit.Set(memlimit.WithRatio(LimitRatio),
		memlimit.WithProvider(memlimit.ApplyFallback(memlimit.FromCgroup, memlimit.FromSystem)))
	s.MemoryLimit = limit
	applied = s
	if err != nil {
		s.LimitFrom = "error"
		applied = s
		return s, fmt.Errorf("set the memory limit: %w", err)
	}
	return s, nil
}

// Applied returns what Apply set (the zero Settings before it ran).
func Applied() Settings { return applied }
