package processor

import (
	"strings"
	"testing"

	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/connector/builtin" // the stdout sink
)

// Bad processor parameters are errors at lint time (spec validation), naming the key.
func TestLintNamesTheKey(t *testing.T) {
	for _, c := range []struct{ proc, key, want string }{
		{"{plugin: downsample, method: median}", "processors[0].method", `"median" is not one of tumbling-time, sdt, swinging-door, changing-value`},
		{"{plugin: downsample, interval: 0s}", "processors[0].interval", "must be above zero"},
		{"{plugin: downsample, interval: -5s}", "processors[0].interval", `"-5s" must be above zero`},
		{"{plugin: downsample, method: sdt, compression-deviation: -0.5}", "processors[0].compression-deviation", "below the minimum 0"},
		{"{plugin: downsample, method: sdt, max-interval: 0s}", "processors[0].max-interval", "must be above zero"},
		{"{plugin: downsample, method: sdt, min-interval: -1s}", "processors[0].min-interval", "below the minimum"},
		{"{plugin: downsample, strategy: median}", "processors[0].strategy", `"median" is not one of first, last, avg`},
		{"{plugin: filter, predicate: 'temp => 80'}", "processors[0].predicate", `unknown operator "=>"`},
		{"{plugin: filter, predicate: '80 > 70'}", "processors[0].predicate", "name a measurement or time"},
		{"{plugin: filter, predicate: 'temp > 80 or temp = \"hot\"'}", "processors[0].predicate", `"temp" is compared with a number at column 8 and with a string`},
		{"{plugin: filter, predicate: 'ok < true'}", "processors[0].predicate", "booleans compare only with = and !="},
		{"{plugin: filter, pattern: 'root.a b'}", "processors[0].pattern", "not allowed"},
		{"{plugin: aggregate, functions: 'avg,median'}", "processors[0].functions", `unknown function "median"`},
		{"{plugin: aggregate, interval: 0ms}", "processors[0].interval", "must be above zero"},
		{"{plugin: aggregate, allowed-lateness: -1m}", "processors[0].allowed-lateness", "below the minimum"},
		{"{plugin: rename, from: root.src}", "processors[0].to", "missing, required by processor rename"},
		{"{plugin: rename, from: 'src', to: root.dst}", "processors[0].from", `must start with "root."`},
		{"{plugin: downsample, methd: sdt}", "processors[0].methd", `did you mean "method"?`},
	} {
		spec := "name: p\nsource: {plugin: test-none}\nprocessors:\n  - " + c.proc + "\nsink: {plugin: stdout}\n"
		_, errs := pipe.CheckSpec([]byte(spec))
		found := false
		var all []string
		for _, err := range errs {
			all = append(all, err.Error())
			var p *pipe.Problem
			if pp, ok := err.(*pipe.Problem); ok {
				p = pp
			}
			if p != nil && p.Key == c.key && strings.Contains(p.Msg, c.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no problem %s: ...%s...; got %v", c.proc, c.key, c.want, all)
		}
	}
	// good specs of every built-in
	for _, proc := range []string{
		"do-nothing", "do-nothing-processor",
		"{plugin: filter, pattern: root.f.**, start-time: 2024-01-01T00:00:00Z, predicate: 'temp > 80 and state != \"off\"'}",
		"{plugin: downsample, method: tumbling-time, interval: 10s, strategy: avg}",
		"{plugin: downsample, method: sdt, compression-deviation: 0.5, min-interval: 1s, max-interval: 1m}",
		"{plugin: downsample, method: changing-value, compression-deviation: 2, max-interval: 10m}",
		"{plugin: aggregate, functions: 'count, sum,avg,min,max,first,last', interval: 1m, allowed-lateness: 5s, keep-raw: true}",
		"{plugin: rename, from: root.src, to: root.dst}",
	} {
		spec := "name: p\nsource: {plugin: test-none}\nprocessors:\n  - " + proc + "\nsink: {plugin: stdout}\n"
		if _, errs := pipe.CheckSpec([]byte(spec)); len(errs) > 0 {
			for _, err := range errs {
				if p, ok := err.(*pipe.Problem); ok && strings.HasPrefix(p.Key, "source") {
					continue
				}
				t.Errorf("%s: %v", proc, err)
			}
		}
	}
}
