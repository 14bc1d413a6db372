package parquet

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/extractor" // the default source, for specs
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig(pipe.NewParams(map[string]string{ParamPath: "/tmp/x/../out"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Path: "/tmp/out", PartitionBy: PartitionNone, RollSize: DefaultRollSize, RollInterval: DefaultRollInterval,
		Compression: "zstd", RowGroupSize: DefaultRowGroupSize, Precision: Millisecond, MaxOpenFiles: DefaultMaxOpenFiles,
		StallEvents: pipe.DefaultQueueSize + pipe.DefaultBatchMaxEvents}
	if c != want {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	c, err = ParseConfig(pipe.NewParams(map[string]string{ParamPath: "out", ParamPartitionBy: "day", ParamRollSize: "1MiB",
		ParamRollInterval: "0", ParamCompression: "snappy", ParamRowGroupSize: "10", ParamPrecision: "us", ParamMaxOpenFiles: "2",
		pipe.ParamQueueSize: "8", pipe.ParamBatchMaxEvents: "3"}))
	if err != nil {
		t.Fatal(err)
	}
	want = Config{Path: "out", PartitionBy: PartitionDay, RollSize: 1 << 20, RollInterval: 0, Compression: "snappy",
		RowGroupSize: 10, Precision: Microsecond, MaxOpenFiles: 2, StallEvents: 11}
	if c != want {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
}

func TestParseConfigErrorsNameKeys(t *testing.T) {
	_, err := ParseConfig(pipe.NewParams(map[string]string{ParamPartitionBy: "month", ParamRollSize: "12x",
		ParamRollInterval: "-1s", ParamCompression: "lz4", ParamRowGroupSize: "0", ParamPrecision: "s", ParamMaxOpenFiles: "many",
		pipe.ParamQueueSize: "-1"}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"sink.path: missing, required by sink parquet",
		`sink.partition-by: "month" is not one of none, device, day`,
		`sink.roll-size: "12x" is not a byte size`,
		"sink.roll-interval: -1s is below the minimum 0s",
		`sink.compression: "lz4" is not one of zstd, snappy, none`,
		"sink.row-group-size: 0 is below the minimum 1",
		`sink.timestamp-precision: "s" is not one of ms, us, ns`,
		`sink.max-open-files: "many" is not an integer`,
		`sink.queue-size: "-1" is not a positive integer`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := ParseConfig(pipe.NewParams(map[string]string{ParamPath: ""})); err == nil || !strings.Contains(err.Error(), "sink.path: empty") {
		t.Errorf("empty path: %v", err)
	}
}

// The registered plugin validates specs like any other (pipectl lint).
func TestSpecValidation(t *testing.T) {
	_, errs := pipe.CheckSpec([]byte("name: export\nsink: {plugin: parquet, path: /data/out, compresion: zstd, roll-interval: soon}\n"))
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{`sink.compresion: unknown key`, `did you mean "compression"`, `sink.roll-interval: "soon" is not a duration`} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	spec, errs := pipe.CheckSpec([]byte("name: export\nsink: {plugin: parquet-sink, path: /data/out, partition-by: device}\n"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	c, err := ParseConfig(spec.ParamsOf(pipe.RoleSink, 0))
	if err != nil {
		t.Fatal(err)
	}
	if c.PartitionBy != PartitionDevice || c.RollInterval != time.Minute || c.Compression != "zstd" {
		t.Fatalf("normalized spec gives %+v", c)
	}
}
