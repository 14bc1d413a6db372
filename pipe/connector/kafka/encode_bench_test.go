package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-dev/weir/tsfile"
	"github.com/weir-dev/weir/workload"
)

// BenchmarkEncode measures encoding the demo workload's rows (5 mixed measurements) per
// row, against copying the same bytes (the floor: what producing pre-encoded records
// costs the caller at least).
func BenchmarkEncode(b *testing.B) {
	gen := &workload.Generator{Database: "root.bench", Devices: 100, RowsPerTablet: 100, Start: 1, Step: 1}
	tablets := make([]*tsfile.Tablet, 100)
	for i := range tablets {
		tablets[i] = gen.Next()
	}
	defer func() {
		for _, t := range tablets {
			t.Release()
		}
	}()
	for _, format := range []string{FormatJSON, FormatArrow} {
		cfg, err := ParseConfig(params("127.0.0.1:9092", "format", format))
		if err != nil {
			b.Fatal(err)
		}
		en := NewEncoder(cfg, "p", "r")
		var vals [][]byte
		for _, t := range tablets {
			en.Rows(t.Device, t.Rec, "1:1", func(r *kgo.Record) error { vals = append(vals, r.Value); return nil })
		}
		b.Run(format, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				t := tablets[i%len(tablets)]
				en.Rows(t.Device, t.Rec, "1:1", func(*kgo.Record) error { return nil })
				en.Reset() // as the sink does after each flush
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/row")
		})
		b.Run(format+"-copy-baseline", func(b *testing.B) {
			per := len(vals) / len(tablets)
			for i := 0; i < b.N; i++ {
				k := (i % len(tablets)) * per
				for _, v := range vals[k : k+per] {
					_ = append([]byte(nil), v...)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/row")
		})
	}
}
