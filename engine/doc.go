// Package engine is Weir's storage engine: one Region per data region, holding a WAL,
// memtables, sealed TsFiles and tombstones, and the hooks pipes read from.
//
// # Directory layout
//
//	<dir>/MANIFEST              durable state besides the WAL (see below)
//	<dir>/wal/wal-<index>.log   WAL segments (package engine/wal documents the framing)
//	<dir>/<version>.tsfile      sealed TsFiles (package tsfile documents the format)
//	<dir>/corrupt/              files set aside by Open with Repair
//
// # Manifest
//
// One header line "weir-manifest v1 crc32c=XXXXXXXX" (CRC32C of the body, hex), then a JSON
// body: format, region, next_version, flushed_index (every WAL entry up to it is in a file),
// files (name, size, crc32c, version, epoch, WAL index range, time range, rows, points,
// progress by origin), tombstones (pattern, time range, version, WAL index) and the schema
// (measurement → type). It is replaced atomically: temp file, fsync, rename, fsync dir.
//
// # WAL payloads
//
// Every entry's payload starts with the 8-byte little-endian epoch (the version of the
// memtable the write went into); a tablet entry (kind 1) continues with the tablet codec of
// package tsfile, a deletion (kind 2) with JSON {pattern, min_time, max_time}.
//
// # Epochs, versions and ordering
//
// Every memtable is an epoch; its version orders it against files and tombstones. A read
// resolves the same (device, measurement, time) to the highest version holding a value,
// later writes winning within a memtable. A deletion nulls matching cells of the live
// memtable at once and leaves a tombstone with the live memtable's version: it hides data of
// lower versions (sealed memtables and files) and never a write made after it.
//
// # Recovery
//
// Open loads the manifest (checksum verified), verifies each file's size, CRC32C and
// structure, removes temp files of an interrupted flush, opens the WAL (a torn tail is
// truncated with a warning; a corrupt middle entry refuses to open unless Repair), and
// replays entries after flushed_index into memtables of their original epochs, which are
// flushed at once.
package engine
