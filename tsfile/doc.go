// Package tsfile holds Weir's data model — types, paths and patterns, tablets — and the TsFile,
// the immutable sealed file a flush writes.
//
// # The TsFile format (version 1)
//
// A TsFile is a plain Arrow IPC file (the "file" format, not the stream format), readable by
// any Arrow implementation: pyarrow.ipc.open_file, arrow-rs FileReader, DuckDB, and so on.
//
// Layout, as arrow-go's ipc.FileWriter writes it:
//
//	"ARROW1" 0x00 0x00                      magic and padding (8 bytes)
//	schema message                          0xFFFFFFFF, int32 length, Message flatbuffer (no body)
//	dictionary batch                        the device dictionary (absent in a file without rows)
//	record batch 0 … record batch N-1       rows sorted by (device, time)
//	footer                                  Footer flatbuffer: schema again, dictionary and batch blocks
//	int32 footer length, "ARROW1"           (little-endian)
//
// Every message is 8-byte aligned: a 0xFFFFFFFF continuation marker, the int32 length of the
// flatbuffer metadata (padded), the metadata, then the body. A block in the footer gives the
// message's offset, metadata length and body length.
//
// # Schema
//
// Columns, in order:
//
//	device   dictionary<int32 indices, utf8 values>, not nullable
//	time     int64, not nullable (the database's precision; milliseconds by default)
//	<m>...   one nullable column per measurement: bool, int32, int64, float32, float64 or utf8
//	         (BOOLEAN, INT32, INT64, FLOAT, DOUBLE, TEXT), sorted by name
//
// Floating values are finite and TEXT values valid UTF-8 (WriteFile refuses others, as
// Tablet.Validate does). The measurement columns are the union of the measurements of all the file's devices; a device
// without a measurement has nulls in that column. The file has exactly one dictionary: the
// sorted list of all its devices (arrow-go's file writer refuses a dictionary that changes
// between batches), so a device's dictionary index is its position in that list and in the
// device index below.
//
// # Record batches
//
// Rows are sorted by device, then by time, strictly increasing within a device (a device holds
// one row per timestamp). A batch holds rows of exactly one device and at most MaxBatchRows
// (65536 by default) rows; a device's rows fill consecutive batches, so batch numbers follow
// the device order. Buffers are compressed with Arrow's IPC body compression: zstd or lz4
// (LZ4 frame), each buffer prefixed with its uncompressed length as int64 (-1 when stored
// uncompressed), or not compressed at all.
//
// # Schema metadata
//
// The schema's custom metadata (identical in the leading schema message and in the footer)
// carries the file's description; all values are strings, numbers in decimal:
//
//	weir.format.version  "1"
//	weir.region          the region that wrote the file
//	weir.version         resolution version (uint64): for the same (device, measurement, time),
//	                     the value of the higher version wins
//	weir.epoch           the memtable epoch the file seals (uint64)
//	weir.min_time        smallest time in the file (int64; 0 in a file without rows)
//	weir.max_time        largest time in the file (int64; 0 in a file without rows)
//	weir.rows            number of rows (int64)
//	weir.points          number of non-null measurement values (int64)
//	weir.compression     "zstd", "lz4" or "none"
//	weir.progress        progress index: JSON object origin → highest index covered,
//	                     e.g. {"1":1042,"3":77} (keys decimal uint32, values uint64 numbers)
//	weir.index.min       smallest local WAL index of the writes the file holds (uint64)
//	weir.index.max       largest local WAL index of the writes the file holds (uint64)
//	weir.max_buffer      size in bytes of the largest uncompressed buffer of any batch or of
//	                     the dictionary; readers bound their allocations by it
//	weir.devices         the device index: a JSON array, one object per device, sorted by device
//
// A device index entry:
//
//	{
//	  "device": "root.factory.line1.press3",
//	  "batches": [4, 5],                         record batch numbers, in time order
//	  "batch_ranges": [                          per batch (parallel to "batches")
//	    {"rows": 65536, "min_time": 0, "max_time": 65535999},
//	    {"rows": 10, "min_time": 65536000, "max_time": 65545000}
//	  ],
//	  "min_time": 0, "max_time": 65545000, "rows": 65546,
//	  "columns": [                               the device's measurements, sorted by name
//	    {"name": "state", "type": "BOOLEAN", "count": 65546, "min": false, "max": true},
//	    {"name": "temp", "type": "DOUBLE", "count": 65000, "min": -3.5, "max": 81.25}
//	  ]
//	}
//
// "count" is the number of non-null values; "min" and "max" are null when count is 0, else JSON
// booleans (BOOLEAN, false < true), integers (INT32, INT64), numbers (FLOAT, DOUBLE; a FLOAT is
// widened to double exactly, and values are finite) or strings (TEXT, compared bytewise). A
// device's columns are those its written data had, even all-null ones; the other measurement
// columns of the file are null for its rows.
//
// # Checks
//
// OpenFile checks the magic numbers and the footer before arrow-go decodes it (arrow-go sizes
// allocations from lengths it reads, so a damaged footer could otherwise exhaust memory), bounds
// every allocation by the file size and weir.max_buffer, and checks the schema and the whole
// metadata: keys, sorted devices, batches numbered in device order and covering the file, time
// ranges, totals. Each batch is checked when it is decoded (buffer sizes, null counts, string
// offsets, the device column and dictionary, times strictly increasing and matching the index).
// Reader.Verify (VerifyStructure) decodes everything, checks that the leading schema message
// equals the footer's, and recomputes every device's stats. The region manifest records each
// file's size and CRC32C (Castagnoli) over the whole file; VerifyFile checks them first.
// Errors are *FormatError values naming the file and the failed check.
package tsfile
