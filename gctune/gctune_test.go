package gctune

import (
	"math"
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

// restore puts the collector back as the test found it.
func restore(t *testing.T) {
	pct := debug.SetGCPercent(-1)
	debug.SetGCPercent(pct)
	limit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(pct)
		debug.SetMemoryLimit(limit)
		applied = Settings{}
	})
}

// unsetEnv removes the collector's variables from the environment for the test.
func unsetEnv(t *testing.T) {
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "AUTOMEMLIMIT"} {
		t.Setenv(k, "") // restored after the test
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
}

func TestApplyDefaults(t *testing.T) {
	restore(t)
	unsetEnv(t)
	s, err := Apply()
	if err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(DefaultPercent); got != DefaultPercent || s.Percent != DefaultPercent || s.PercentFrom != "default" {
		t.Fatalf("GOGC = %d, settings %+v; want %d from default", got, s, DefaultPercent)
	}
	if limit := debug.SetMemoryLimit(-1); limit != s.MemoryLimit || limit <= 0 || limit == math.MaxInt64 || s.LimitFrom != "memory" {
		t.Fatalf("memory limit %d, settings %+v: want one from the machine's memory", limit, s)
	}
	if Applied() != s {
		t.Fatalf("Applied() = %+v, want %+v", Applied(), s)
	}
	if str := s.String(); !strings.Contains(str, "GOGC=400 (default)") || !strings.Contains(str, "GiB (memory)") {
		t.Fatalf("String() = %q", str)
	}
}

func TestApplyEnvironmentWins(t *testing.T) {
	restore(t)
	unsetEnv(t)
	t.Setenv("GOGC", "100")
	t.Setenv("GOMEMLIMIT", "1GiB")
	before := debug.SetGCPercent(-1)
	debug.SetGCPercent(before)
	limit := debug.SetMemoryLimit(-1)
	s, err := Apply()
	if err != nil {
		t.Fatal(err)
	}
	if s.PercentFrom != "GOGC" || s.Percent != before || debug.SetGCPercent(-1) != before {
		t.Fatalf("settings %+v: GOGC set in the environment must be left as the runtime read it (%d)", s, before)
	}
	debug.SetGCPercent(before)
	if s.LimitFrom != "GOMEMLIMIT" || debug.SetMemoryLimit(-1) != limit {
		t.Fatalf("settings %+v: GOMEMLIMIT set in the environment must be left alone", s)
	}
}

func TestApplyLimitOffOrBad(t *testing.T) {
	restore(t)
	unsetEnv(t)
	t.Setenv("AUTOMEMLIMIT", "off")
	s, err := Apply()
	if err != nil || s.LimitFrom != "AUTOMEMLIMIT=off" {
		t.Fatalf("AUTOMEMLIMIT=off: settings %+v, err %v", s, err)
	}
	t.Setenv("AUTOMEMLIMIT", "0.5")
	if s, err = Apply(); err != nil || s.LimitFrom != "AUTOMEMLIMIT=0.5 of memory" || s.MemoryLimit <= 0 || s.MemoryLimit == math.MaxInt64 {
		t.Fatalf("AUTOMEMLIMIT=0.5: settings %+v, err %v", s, err)
	}
	t.Setenv("AUTOMEMLIMIT", "lots")
	s, err = Apply()
	if err == nil || !strings.Contains(err.Error(), "AUTOMEMLIMIT") || s.LimitFrom != "error" {
		t.Fatalf("AUTOMEMLIMIT=lots: settings %+v, err %v; want an error naming AUTOMEMLIMIT", s, err)
	}
}
