package tsfile

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"
)

// The benchmark data (both kinds of write go to a reused in-memory buffer): 100 devices × 20000 rows (one per second) × 5 measurements.
const (
	benchDevices = 100
	benchRows    = 20000
	benchPoints  = benchDevices * benchRows * 5
)

var benchCompressions = []Compression{CompressionZstd, CompressionLZ4, CompressionNone}

var fileBench struct {
	once sync.Once
	data []DeviceData
	raw  []arrow.Record // the same columns under one schema without metadata, for plain IPC
	file map[Compression][]byte
	ipc  map[Compression][]byte
}

func fileBenchData(b *testing.B) {
	fileBench.once.Do(func() {
		cols := []Column{{"temp", Double}, {"humidity", Float}, {"count", Int64}, {"code", Int32}, {"ok", Boolean}}
		rng := rand.New(rand.NewPCG(1, 2))
		rawSchema := TabletSchema("", cols)
		for d := 0; d < benchDevices; d++ {
			tb := NewTabletBuilder(memory.DefaultAllocator, fmt.Sprintf("root.factory.line%d.press%d", d/10, d%10), cols)
			temp, count := 20.0, int64(0)
			for i := 0; i < benchRows; i++ {
				temp += rng.NormFloat64() * 0.1
				count += int64(rng.IntN(3))
				tb.Times().Append(1_700_000_000_000 + int64(i)*1000)
				tb.Field(0).(*array.Float64Builder).Append(math.Round(temp*100) / 100)
				tb.Field(1).(*array.Float32Builder).Append(float32(40 + rng.IntN(200)/10))
				tb.Field(2).(*array.Int64Builder).Append(count)
				tb.Field(3).(*array.Int32Builder).Append(int32(rng.IntN(4)))
				tb.Field(4).(*array.BooleanBuilder).Append(rng.IntN(100) != 0)
			}
			rec := tb.b.NewRecord()
			tb.Release()
			fileBench.data = append(fileBench.data, DeviceData{Device: tb.device, Rec: rec})
			fileBench.raw = append(fileBench.raw, array.NewRecord(rawSchema, rec.Columns(), rec.NumRows()))
		}
		fileBench.file = map[Compression][]byte{}
		fileBench.ipc = map[Compression][]byte{}
		for _, c := range benchCompressions {
			var buf bytes.Buffer
			if _, err := WriteFile(&buf, FileMeta{Region: "bench"}, fileBench.data, WriteOptions{Compression: c}); err != nil {
				panic(err)
			}
			fileBench.file[c] = buf.Bytes()
			var raw bytes.Buffer
			if err := rawIPCWrite(&raw, fileBench.raw, c); err != nil {
				panic(err)
			}
			fileBench.ipc[c] = raw.Bytes()
		}
	})
}

func rawIPCWrite(w io.Writer, recs []arrow.Record, c Compression) error {
	opts := []ipc.Option{ipc.WithSchema(recs[0].Schema())}
	switch c {
	case CompressionZstd:
		opts = append(opts, ipc.WithZstd())
	case CompressionLZ4:
		opts = append(opts, ipc.WithLZ4())
	}
	fw, err := ipc.NewFileWriter(&posWriter{w: w}, opts...)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := fw.Write(r); err != nil {
			return err
		}
	}
	return fw.Close()
}

func reportPoints(b *testing.B, size int) {
	b.ReportMetric(float64(benchPoints)*float64(b.N)/b.Elapsed().Seconds(), "points/s")
	b.ReportMetric(float64(size), "filebytes")
}

func BenchmarkWriteFile(b *testing.B) {
	fileBenchData(b)
	for _, c := range benchCompressions {
		b.Run(string(c), func(b *testing.B) {
			var sink bytes.Buffer
			sink.Grow(len(fileBench.file[c]))
			for i := 0; i < b.N; i++ {
				sink.Reset()
				if _, err := WriteFile(&sink, FileMeta{Region: "bench"}, fileBench.data, WriteOptions{Compression: c}); err != nil {
					b.Fatal(err)
				}
			}
			reportPoints(b, len(fileBench.file[c]))
		})
	}
}

func BenchmarkRawIPCWrite(b *testing.B) {
	fileBenchData(b)
	for _, c := range benchCompressions {
		b.Run(string(c), func(b *testing.B) {
			var sink bytes.Buffer
			sink.Grow(len(fileBench.ipc[c]))
			for i := 0; i < b.N; i++ {
				sink.Reset()
				if err := rawIPCWrite(&sink, fileBench.raw, c); err != nil {
					b.Fatal(err)
				}
			}
			reportPoints(b, len(fileBench.ipc[c]))
		})
	}
}

func BenchmarkReadFile(b *testing.B) {
	fileBenchData(b)
	for _, c := range benchCompressions {
		b.Run(string(c), func(b *testing.B) {
			data := fileBench.file[c]
			for i := 0; i < b.N; i++ {
				r, err := OpenReaderAt(bytes.NewReader(data), int64(len(data)), "bench")
				if err != nil {
					b.Fatal(err)
				}
				rows := 0
				for _, d := range r.Meta().Devices {
					err := r.ReadDevice(d.Device, nil, math.MinInt64, math.MaxInt64, func(rec arrow.Record) error {
						rows += int(rec.NumRows())
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				r.Close()
				if rows != benchDevices*benchRows {
					b.Fatalf("%d rows", rows)
				}
			}
			reportPoints(b, len(data))
		})
	}
}

func BenchmarkRawIPCRead(b *testing.B) {
	fileBenchData(b)
	for _, c := range benchCompressions {
		b.Run(string(c), func(b *testing.B) {
			data := fileBench.ipc[c]
			for i := 0; i < b.N; i++ {
				fr, err := ipc.NewFileReader(bytes.NewReader(data))
				if err != nil {
					b.Fatal(err)
				}
				rows := 0
				for k := 0; k < fr.NumRecords(); k++ {
					rec, err := fr.RecordAt(k)
					if err != nil {
						b.Fatal(err)
					}
					rows += int(rec.NumRows())
					rec.Release()
				}
				fr.Close()
				if rows != benchDevices*benchRows {
					b.Fatalf("%d rows", rows)
				}
			}
			reportPoints(b, len(data))
		})
	}
}
