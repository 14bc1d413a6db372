// Package wal is the region's segmented write-ahead log.
//
// # On-disk format
//
// A WAL is a directory of segment files named
//
//	wal-<first index, 20 decimal digits>.log      e.g. wal-00000000000000000001.log
//
// The number in the name is a lower bound: every entry in the segment has an
// index >= it, and > every index in earlier segments. A segment created by
// Roll is named LastIndex()+1; one started because the previous segment was
// full is named after its first entry. Files with other names are ignored.
//
// A segment is a sequence of frames, with no header, padding or trailer:
//
//	offset size field
//	     0    4 len           uint32 LE: bytes from kind to the end of payload (21 + len(payload))
//	     4    4 crc           uint32 LE: CRC-32C (Castagnoli) of the same bytes
//	     8    1 kind          entry kind, chosen by the caller
//	     9    4 origin        uint32 LE: replica that first wrote the entry
//	    13    8 index         uint64 LE: this WAL's index, strictly increasing across the WAL
//	    21    8 origin_index  uint64 LE: the entry's index at its origin
//	    29  len-21 payload
//
// A frame is valid when 21 <= len <= 21+MaxPayload, the frame fits in the
// file, the CRC matches and the index is greater than the previous frame's
// (and at least the segment's name, and below the next segment's name).
//
// # Writing
//
// Append encodes the frame (CRC computed outside any lock) and copies it into
// the pending group buffer under a mutex. One writer goroutine swaps the
// pending buffer with a spare, writes it with one write(2) (split where a
// segment fills up or Roll was called), and then, depending on Durability:
//
//   - Sync: fdatasyncs and then completes the group: every Commit in it
//     returns from Wait. Entries appended during the fdatasync form the next
//     group, so one fdatasync covers everything that was waiting (group
//     commit).
//   - Batch: completes the group once the write(2) has returned; a background
//     goroutine fdatasyncs every SyncInterval.
//   - Async: like Batch, but Commit.Wait returns at once. Writes still happen
//     as soon as the writer is free (so readers see entries promptly).
//
// A segment is started when the next frame would take the current one past
// SegmentSize (a frame larger than SegmentSize gets a segment of its own).
// Before a new segment is created the old one is fdatasynced, and the
// directory is fsynced after the creation, so only the last segment can ever
// hold a torn tail.
//
// A failed write or fdatasync is sticky: every later Append, Sync and Roll
// returns that error, and so do the Waits of all groups not yet complete. The
// log never drops an entry silently.
//
// # Durable index and subscribers
//
// DurableIndex is the highest index a reader may see: the last fdatasynced
// index in Sync mode, the last written index in Batch and Async mode (in Async
// mode this lags LastIndex by the entries still queued). Notify returns a
// channel that is closed when DurableIndex next advances (or the WAL closes);
// WaitDurable wraps it for one index. The pattern for a follower is:
//
//	ch := w.Notify()
//	e, err := r.Next()
//	if err == io.EOF { <-ch; continue }
//
// # Recovery
//
// Open reads every segment and checks every frame. In the last segment, an
// invalid frame (a partial header or frame, a length running past the end of
// the file, a CRC mismatch, zeros) is a torn tail when no valid frame follows
// it anywhere in the rest of the file: it is truncated away, with a warning
// naming the file, the offset and the bytes dropped. (A "valid frame" there
// means a CRC-correct frame whose index is in (previous index, previous
// index + 2^32].) An invalid frame followed by a valid one, or any invalid
// frame in an earlier segment, is corruption: Open fails with a
// *CorruptError (wrapping ErrCorrupt) naming the file, offset and failed
// check — unless Options.Repair is set, in which case the damaged segment is
// truncated at the damage, all later segments are deleted, and what was
// dropped is logged. After recovery everything on disk is fdatasynced, so
// DurableIndex == LastIndex.
package wal
