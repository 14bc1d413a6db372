// Package parquet holds the parquet sink: it exports a pipe's rows into rolling Parquet
// files (written with github.com/parquet-go/parquet-go) under a directory, so that any
// Parquet reader (DuckDB, Spark, pyarrow, parquet-go) can query them. Import it for its side
// effect of registering the sink:
//
//	import _ "github.com/weir-dev/weir/pipe/connector/parquet"
//
// # Files
//
// Each file holds rows of one partition of one region. Its columns are
//
//	device   BYTE_ARRAY (STRING), required, dictionary-encoded
//	time     INT64 TIMESTAMP(unit, isAdjustedToUTC=true), required, DELTA_BINARY_PACKED;
//	         unit is the database's timestamp precision (sink param timestamp-precision)
//	<m>...   one optional column per measurement, sorted by name: BOOLEAN, INT32, INT64,
//	         FLOAT, DOUBLE or BYTE_ARRAY (STRING, dictionary-encoded) as the measurement's
//	         type; null where a row has no value
//
// Rows are in the order the pipe delivered them. The key-value metadata records
// weir.format_version (1), weir.region, weir.partition, weir.min_index, weir.max_index
// (the region's WAL index range of the events in the file), weir.min_epoch, weir.max_epoch
// (their epochs), weir.progress (the progress
// index after the file's last event, as origin:index pairs) and weir.timestamp_precision.
//
// # Layout and names
//
//	<path>/<region>-<first>-<last>[~<v>][_<n>].parquet                     partition-by none
//	<path>/device=<device>/<region>-<first>-<last>[~<v>][_<n>].parquet     partition-by device
//	<path>/date=<YYYY-MM-DD>/<region>-<first>-<last>[~<v>][_<n>].parquet   partition-by day (UTC)
//
// first is the lowest WAL index of the events in the file and last the highest, both
// zero-padded to 20 digits; ~v appears when the file ends with (an output of) a TsFile the
// region received from another replica, v being that file's version in the region (20
// digits); _n appears when a processor emitted several events from one input and the file
// ends at the (n+1)-th of them. The region is escaped (bytes other than
// letters, digits, '.', '-' and '_' as %XX, and a leading '.' or '_'). Partition
// directories follow the Hive convention, so engines discover them as columns.
//
// # Durability and replay
//
// A file is written under a hidden temporary name (.<region>-<first>.parquet.tmp in its
// partition directory), fsynced, renamed to its final name, and the directory fsynced; only
// then are the events it holds acknowledged to the pipe. A file's name therefore always
// names a complete file. A crash leaves at most temporary files, which the sink removes
// when it next touches the partition; their events were never acknowledged, so the pipe
// delivers them again.
//
// Names derive from the WAL index range of the events (not from commit ids, which depend on
// timing), so the sink knows after a restart which events are already in final files: for
// each partition it reads the names of its region's files, and skips the rows of redelivered
// events at or below the last one. A replay thus never duplicates rows, and one that writes
// the same events with the same roll points produces byte-identical files.
//
// A TsFile the region received from another replica has no WAL index of its own: its event
// (pipe.Event.FromReceivedFile) comes after the events of its MaxIndex, and among such files
// by version (its Epoch), which a replay reproduces; the version is part of the position
// (and of a name ending with one), so a replay neither skips nor repeats its rows.
//
// A sealed TsFile holds every write of its epoch, also those that went out as tablets
// before (a carrier switch, or a restart once the WAL is gone): for such events (and those
// a processor derives from them, which span several WAL indexes) the sink reads back the
// partition's files of the epoch and drops the rows it exported already.
package parquet
