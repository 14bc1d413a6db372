package parquet

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/weir-dev/weir/pipe"
)

// Name is the sink's registered name.
const Name = "parquet"

// Parameter keys of the sink.
const (
	ParamPath         = "path"
	ParamPartitionBy  = "partition-by"
	ParamRollSize     = "roll-size"
	ParamRollInterval = "roll-interval"
	ParamCompression  = "compression"
	ParamRowGroupSize = "row-group-size"
	ParamPrecision    = "timestamp-precision"
	ParamMaxOpenFiles = "max-open-files"
)

// Partitioning says how rows are spread over directories.
type Partitioning string

// The partitionings of partition-by.
const (
	PartitionNone   Partitioning = "none"   // one directory
	PartitionDevice Partitioning = "device" // device=<device>/
	PartitionDay    Partitioning = "day"    // date=<YYYY-MM-DD>/ by the row's time, UTC
)

// Precision is the unit of the database's timestamps, and of the time column.
type Precision string

// The timestamp precisions.
const (
	Millisecond Precision = "ms"
	Microsecond Precision = "us"
	Nanosecond  Precision = "ns"
)

// perDay returns how many units of p make a day.
func (p Precision) perDay() int64 {
	switch p {
	case Microsecond:
		return 86_400_000_000
	case Nanosecond:
		return 86_400_000_000_000
	}
	return 86_400_000
}

// tag is p's name in parquet-go's timestamp struct tag.
func (p Precision) tag() string {
	switch p {
	case Microsecond:
		return "microsecond"
	case Nanosecond:
		return "nanosecond"
	}
	return "millisecond"
}

// Defaults of the parameters.
const (
	DefaultRollSize     = 128 << 20
	DefaultRollInterval = time.Minute
	DefaultRowGroupSize = 1 << 20
	DefaultMaxOpenFiles = 64
)

// Params declares the sink's parameters (and the runtime parameters every sink takes).
var Params = append([]pipe.ParamSpec{
	{Key: ParamPath, Type: pipe.String, Required: true,
		Doc: "directory of the files (created if missing); give each pipe its own"},
	{Key: ParamPartitionBy, Type: pipe.Enum, Enum: []string{"none", "device", "day"}, Default: "none",
		Doc: "none: one directory; device: a device=<device> directory per device; day: a date=<YYYY-MM-DD> directory per UTC day of the rows' time"},
	{Key: ParamRollSize, Type: pipe.Bytes, Default: "128MiB", Min: pipe.MinOf(1),
		Doc: "a file is finished once it reaches about this size (checked between events)"},
	{Key: ParamRollInterval, Type: pipe.Duration, Default: "1m", Min: pipe.MinOf(0),
		Doc: "a file is finished at most this long after its first row (its events are acknowledged only then); 0: no limit"},
	{Key: ParamCompression, Type: pipe.Enum, Enum: []string{"zstd", "snappy", "none"}, Default: "zstd",
		Doc: "page compression"},
	{Key: ParamRowGroupSize, Type: pipe.Int, Default: strconv.Itoa(DefaultRowGroupSize), Min: pipe.MinOf(1),
		Doc: "rows per row group"},
	{Key: ParamPrecision, Type: pipe.Enum, Enum: []string{"ms", "us", "ns"}, Default: "ms",
		Doc: "unit of the database's timestamps: the time column's TIMESTAMP unit and the day of partition-by day"},
	{Key: ParamMaxOpenFiles, Type: pipe.Int, Default: strconv.Itoa(DefaultMaxOpenFiles), Min: pipe.MinOf(1),
		Doc: "files open at once (each holds up to a row group in memory); opening one more finishes the least recently written"},
}, pipe.SinkRuntimeParams...)

// Config is the sink's validated configuration.
type Config struct {
	Path         string
	PartitionBy  Partitioning
	RollSize     int64
	RollInterval time.Duration // 0: no limit
	Compression  string        // zstd, snappy or none
	RowGroupSize int64
	Precision    Precision
	MaxOpenFiles int
	// StallEvents is how many unacknowledged events the sink holds at most before it
	// finishes every open file: the pipe delivers no more than queue-size plus twice
	// batch.max-events events before some are acknowledged.
	StallEvents int
}

// ParseConfig validates p (defaults apply to missing keys) into a Config. Errors name the
// key, as sink.<key>.
func ParseConfig(p pipe.Params) (Config, error) {
	get := func(key string) (string, error) {
		var spec pipe.ParamSpec
		for _, s := range Params {
			if s.Key == key {
				spec = s
			}
		}
		v, ok := p.Raw(key)
		if !ok {
			if spec.Required {
				return "", fmt.Errorf("sink.%s: missing, required by sink %s", key, Name)
			}
			v = spec.Default
		}
		if err := spec.CheckValue(v); err != nil {
			return "", fmt.Errorf("sink.%s: %w", key, err)
		}
		return v, nil
	}
	var c Config
	var errs []error
	str := func(key string) string {
		v, err := get(key)
		if err != nil {
			errs = append(errs, err)
		}
		return v
	}
	num := func(key string) int64 {
		v := str(key)
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	c.Path = str(ParamPath)
	if c.Path == "" && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("sink.%s: empty", ParamPath))
	}
	if c.Path != "" {
		c.Path = filepath.Clean(c.Path)
	}
	c.PartitionBy = Partitioning(str(ParamPartitionBy))
	if v := str(ParamRollSize); v != "" {
		c.RollSize, _ = pipe.ParseBytes(v)
	}
	if v := str(ParamRollInterval); v != "" {
		c.RollInterval, _ = time.ParseDuration(v)
	}
	c.Compression = str(ParamCompression)
	c.RowGroupSize = num(ParamRowGroupSize)
	c.Precision = Precision(str(ParamPrecision))
	c.MaxOpenFiles = int(num(ParamMaxOpenFiles))

	queue, maxEvents := int64(pipe.DefaultQueueSize), int64(pipe.DefaultBatchMaxEvents)
	for _, rt := range []struct {
		key string
		dst *int64
	}{{pipe.ParamQueueSize, &queue}, {pipe.ParamBatchMaxEvents, &maxEvents}} {
		if v, ok := p.Raw(rt.key); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("sink.%s: %q is not a positive integer", rt.key, v))
				continue
			}
			*rt.dst = n
		}
	}
	c.StallEvents = int(queue + maxEvents)
	if len(errs) > 0 {
		return Config{}, errors.Join(errs...)
	}
	return c, nil
}
