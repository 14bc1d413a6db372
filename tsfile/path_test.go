package tsfile

import (
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestValidateDevice(t *testing.T) {
	for _, d := range []string{"root.a", "root.factory.line1.press3", "root.A-b_9.0", "root." + strings.Repeat("x", MaxPathLength-5)} {
		if err := ValidateDevice(d); err != nil {
			t.Errorf("%q: %v", d, err)
		}
	}
	for d, want := range map[string]string{
		"":         `path must start with "root."`,
		"root":     "at least one node after root",
		"root.":    "empty node",
		"root..a":  "empty node",
		"root.a.":  "empty node",
		"Root.a":   `must start with "root."`,
		"a.root":   `must start with "root."`,
		"root.a b": `character ' ' not allowed`,
		"root.a.*": `character '*' not allowed`,
		"root.a/b": `character '/' not allowed`,
		"root.é":   `not allowed`,
		"root." + strings.Repeat("x", MaxPathLength-4): "longer than 1024 bytes",
	} {
		err := ValidateDevice(d)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.20q: error %v, want %q", d, err, want)
		}
	}
}

func TestValidateMeasurement(t *testing.T) {
	for _, m := range []string{"temp", "a", "Time", "devices", "9", "-_-"} {
		if err := ValidateMeasurement(m); err != nil {
			t.Errorf("%q: %v", m, err)
		}
	}
	for m, want := range map[string]string{
		"":       "empty node",
		"time":   "reserved",
		"device": "reserved",
		"a.b":    `character '.' not allowed`,
		"*":      `character '*' not allowed`,
		"a=b":    `character '=' not allowed`,
	} {
		err := ValidateMeasurement(m)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", m, err, want)
		}
	}
}

func TestDatabase(t *testing.T) {
	for in, want := range map[string]string{
		"root.sg.d1.x": "root.sg",
		"root.sg.d1":   "root.sg",
		"root.sg":      "root.sg",
		"root":         "root",
	} {
		if got := Database(in); got != want {
			t.Errorf("Database(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParsePattern(t *testing.T) {
	for _, s := range []string{"root", "root.**", "root.*", "root.a.*.b", "root.**.x", "root.*.**.*"} {
		p, err := ParsePattern(s)
		if err != nil {
			t.Errorf("%q: %v", s, err)
			continue
		}
		if p.String() != s || p.IsZero() {
			t.Errorf("%q: String %q, IsZero %v", s, p.String(), p.IsZero())
		}
		var q Pattern
		if b, _ := p.MarshalText(); q.UnmarshalText(b) != nil || q.String() != s {
			t.Errorf("%q: text round trip gives %q", s, q.String())
		}
	}
	for s, want := range map[string]string{
		"":          "empty path pattern",
		"a.b":       `must start with "root"`,
		"**":        `must start with "root"`,
		"root.":     "empty node",
		"root.a..b": "empty node",
		"root.***":  `character '*' not allowed`,
		"root.a*":   `character '*' not allowed`,
		"root.a b":  `character ' ' not allowed`,
		"root." + strings.Repeat("x", MaxPathLength): "longer than 1024 bytes",
	} {
		_, err := ParsePattern(s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.20q: error %v, want %q", s, err, want)
		}
	}
	var p Pattern
	if err := p.UnmarshalText([]byte("x")); err == nil {
		t.Error("UnmarshalText accepted a bad pattern")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("MustPattern did not panic")
			}
		}()
		MustPattern("bad")
	}()
}

func TestPatternMatch(t *testing.T) {
	type c struct {
		device, m string
		match     bool // Match(device, m)
	}
	cases := map[string][]c{
		"root.sg.d1.temp": {
			{"root.sg.d1", "temp", true}, {"root.sg.d1", "hum", false}, {"root.sg.d2", "temp", false},
			{"root.sg", "d1", false}, {"root.sg.d1.temp", "x", true}, // the device itself is named
		},
		"root.sg.d1": {
			{"root.sg.d1", "temp", true}, {"root.sg.d1", "hum", true}, {"root.sg.d1.x", "temp", false},
			{"root.sg", "d1", true}, // series root.sg.d1 itself
		},
		"root.sg.*": {
			{"root.sg.d1", "temp", true}, {"root.sg", "temp", true}, {"root.sg.d1.x", "temp", false},
		},
		"root.sg.*.temp": {
			{"root.sg.d1", "temp", true}, {"root.sg.d2", "temp", true}, {"root.sg.d1", "hum", false},
			{"root.sg.a.b", "temp", false}, {"root.sg", "temp", false},
		},
		"root.**": {
			{"root.a", "m", true}, {"root.a.b.c.d", "m", true},
		},
		"root.sg.**": {
			{"root.sg.d1", "temp", true}, {"root.sg", "temp", true}, {"root.sg.a.b.c", "m", true},
			{"root.sgx.d1", "temp", false}, {"root.other", "sg", false},
		},
		"root.**.temp": {
			{"root.sg.d1", "temp", true}, {"root.a.b.c", "temp", true}, {"root.sg.d1", "hum", false},
			{"root", "temp", false}, // ** is one or more nodes
		},
		"root.sg.**.d1.*": {
			{"root.sg.x.d1", "m", true}, {"root.sg.x.y.d1", "m", true}, {"root.sg.d1", "m", false},
			{"root.sg.x.d1.y", "m", true}, // the device itself matches
		},
		"root.*.*": {
			{"root.a.b", "m", true}, {"root.a", "m", true}, {"root.a.b.c", "m", false},
		},
		"root.**.**": {
			{"root.a", "m", true}, {"root", "m", false}, {"root.a.b.c", "m", true},
		},
	}
	for pat, cs := range cases {
		p := MustPattern(pat)
		for _, c := range cs {
			if got := p.Match(c.device, c.m); got != c.match {
				t.Errorf("%s.Match(%s, %s) = %v, want %v", pat, c.device, c.m, got, c.match)
			}
		}
	}
	var zero Pattern
	if !zero.Match("root.a", "b") || !zero.MatchDevice("root.a") || !zero.MayMatchDevice("root.a") {
		t.Error("the zero pattern must match everything")
	}
}

func TestPatternMatchDevice(t *testing.T) {
	type c struct {
		device     string
		all, maybe bool // MatchDevice, MayMatchDevice
	}
	cases := map[string][]c{
		"root.sg.d1.temp": {{"root.sg.d1", false, true}, {"root.sg.d2", false, false}, {"root.sg", false, false},
			{"root.sg.d1.temp", true, true}},
		"root.sg.d1": {{"root.sg.d1", true, true}, {"root.sg", false, true}, {"root.sg.d1.x", false, false}},
		"root.sg.*":  {{"root.sg.d1", true, true}, {"root.sg", true, true}, {"root.sg.d1.x", false, false}},
		"root.sg.**": {{"root.sg", true, true}, {"root.sg.d1", true, true}, {"root.sg.a.b", true, true},
			{"root.other", false, false}},
		"root.**.temp": {{"root.sg.d1", false, true}, {"root.a.b.c", false, true}, {"root.temp", false, true},
			{"root.a.temp", true, true}},
		"root.*.d1": {{"root.sg.d1", true, true}, {"root.sg", false, true}, {"root.sg.d2", false, false}},
		"root.**":   {{"root.a", true, true}, {"root.a.b.c", true, true}},
		"root.**.*": {{"root.a", true, true}, {"root.a.b", true, true}},
		"root.*.*":  {{"root.a", true, true}, {"root.a.b", true, true}, {"root.a.b.c", false, false}},
	}
	for pat, cs := range cases {
		p := MustPattern(pat)
		for _, c := range cs {
			if got := p.MatchDevice(c.device); got != c.all {
				t.Errorf("%s.MatchDevice(%s) = %v, want %v", pat, c.device, got, c.all)
			}
			if got := p.MayMatchDevice(c.device); got != c.maybe {
				t.Errorf("%s.MayMatchDevice(%s) = %v, want %v", pat, c.device, got, c.maybe)
			}
		}
	}
}

// naiveMatch is the backtracking matcher matchNodes replaced, kept as an oracle.
func naiveMatch(pn, dn []string) bool {
	for len(pn) > 0 {
		switch pn[0] {
		case "**":
			for k := 1; k <= len(dn); k++ {
				if naiveMatch(pn[1:], dn[k:]) {
					return true
				}
			}
			return false
		case "*":
			if len(dn) == 0 {
				return false
			}
		default:
			if len(dn) == 0 || (dn[0] != pn[0] && dn[0] != "\x00") {
				return false
			}
		}
		pn, dn = pn[1:], dn[1:]
	}
	return len(dn) == 0
}

// TestPatternRapid checks matchNodes against the oracle, and the device predicates against
// their definitions over the measurements "m" and "x" and the nodes of the pattern.
func TestPatternRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		node := rapid.SampledFrom([]string{"a", "b", "m"})
		pn := rapid.SliceOfN(rapid.SampledFrom([]string{"a", "b", "m", "*", "**"}), 0, 6).Draw(t, "pattern")
		dn := rapid.SliceOfN(node, 0, 6).Draw(t, "device")
		pat := MustPattern(strings.Join(append([]string{"root"}, pn...), "."))
		path := append([]string{"root"}, dn...)
		if got, want := matchNodes(pat.nodes, path), naiveMatch(pat.nodes, path); got != want {
			t.Fatalf("%s vs %v: got %v, want %v", pat, path, got, want)
		}
		if len(dn) == 0 {
			return
		}
		device := strings.Join(path, ".")
		// Measurements other than the pattern's literal nodes all behave alike: "z" stands for them.
		all, some := true, false
		for _, m := range []string{"a", "b", "m", "z"} {
			ok := pat.Match(device, m)
			all = all && ok
			some = some || ok
		}
		if got := pat.MatchDevice(device); got != all {
			t.Fatalf("%s.MatchDevice(%s) = %v, want %v", pat, device, got, all)
		}
		if got := pat.MayMatchDevice(device); got != some {
			t.Fatalf("%s.MayMatchDevice(%s) = %v, want %v", pat, device, got, some)
		}
	})
}

// TestPatternManyStars guards against exponential matching time.
func TestPatternManyStars(t *testing.T) {
	p := MustPattern("root" + strings.Repeat(".**", 30) + ".x")
	device := "root" + strings.Repeat(".a", 400)
	start := time.Now()
	if p.Match(device, "y") || p.MatchDevice(device+".b") || !p.MayMatchDevice(device) {
		t.Fatal("unexpected match")
	}
	if !p.Match(device, "x") {
		t.Fatal("no match")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("matching took %v", d)
	}
}
