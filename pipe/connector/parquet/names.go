package parquet

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/weir-dev/weir/pipe"
)

// Position orders the events of one partition: the WAL index an event ends at
// (Event.MaxIndex), for an event of a file the region received from another replica the
// file's version (Event.Epoch; see pipe.Event.FromReceivedFile), and among the events of
// one input (the outputs a processor made of it), their ordinal from 0.
type Position struct {
	Index uint64
	// Received is the version of the received file the event comes from, 0 for an event of
	// the region's own writes. Those files have no WAL index of their own: they come after
	// the events of Index, in version order.
	Received uint64
	Ord      uint64
}

// positionOf returns the position of e's input (Ord 0).
func positionOf(e *pipe.Event) Position {
	p := Position{Index: e.MaxIndex}
	if e.FromReceivedFile() {
		p.Received = e.Epoch
	}
	return p
}

// sameInput reports whether p and q are positions of outputs of one input.
func (p Position) sameInput(q Position) bool { return p.Index == q.Index && p.Received == q.Received }

// Less reports whether p comes before q.
func (p Position) Less(q Position) bool {
	switch {
	case p.Index != q.Index:
		return p.Index < q.Index
	case p.Received != q.Received:
		return p.Received < q.Received
	}
	return p.Ord < q.Ord
}

// FileName is the name of a finished file: its region, the lowest WAL index of its events
// and the position of its last event.
//
// Its form is <region>-<first>-<last>[~<received>][_<ord>].parquet: first, last (Last.Index)
// and received (Last.Received, present when not 0) zero-padded to 20 digits, ord
// (Last.Ord) present when not 0.
type FileName struct {
	Region string
	First  uint64
	Last   Position
}

const (
	// receivedSep introduces a name's received-file version: it sorts after '.' and '_', so
	// a partition's names sort in export order also around received files.
	receivedSep = '~'
	fileExt     = ".parquet"
	tempExt     = ".parquet.tmp"
	digits      = 20
)

// String returns the file name: <region>-<first>-<last>[~<received>][_<ord>].parquet.
func (f FileName) String() string {
	s := fmt.Sprintf("%s-%0*d-%0*d", escapeName(f.Region), digits, f.First, digits, f.Last.Index)
	if f.Last.Received > 0 {
		s += fmt.Sprintf("%c%0*d", receivedSep, digits, f.Last.Received)
	}
	if f.Last.Ord > 0 {
		s += "_" + strconv.FormatUint(f.Last.Ord, 10)
	}
	return s + fileExt
}

// ParseFileName parses a finished file's name; false when name is not one.
func ParseFileName(name string) (FileName, bool) {
	s, ok := strings.CutSuffix(name, fileExt)
	if !ok {
		return FileName{}, false
	}
	var f FileName
	if i := strings.LastIndexByte(s, '_'); i >= 0 && i+1 < len(s) {
		// <region>-<first>-<last>_<ord>, ord > 0 without leading zeros (a '_' of the
		// region is followed by more than digits)
		if ord, err := parseDigits(s[i+1:]); err == nil {
			if ord == 0 || s[i+1] == '0' {
				return FileName{}, false
			}
			f.Last.Ord, s = ord, s[:i]
		}
	}
	// [~<received>]: a region's name never holds '~' (escaped)
	if i := strings.LastIndexByte(s, receivedSep); i >= 0 {
		v, err := parseDigits(s[i+1:])
		if err != nil || len(s)-i-1 != digits || v == 0 {
			return FileName{}, false
		}
		f.Last.Received, s = v, s[:i]
	}
	// <region>-<first>-<last>
	if len(s) < 2*digits+3 || s[len(s)-digits-1] != '-' || s[len(s)-2*digits-2] != '-' {
		return FileName{}, false
	}
	last, err1 := parseDigits(s[len(s)-digits:])
	first, err2 := parseDigits(s[len(s)-2*digits-1 : len(s)-digits-1])
	region, err3 := unescapeName(s[:len(s)-2*digits-2])
	if err1 != nil || err2 != nil || err3 != nil || region == "" {
		return FileName{}, false
	}
	f.Region, f.First, f.Last.Index = region, first, last
	return f, true
}

func parseDigits(s string) (uint64, error) {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a number: %q", s)
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// tempName is the hidden name a file is written under until it is complete.
func tempName(region string, first uint64) string {
	return fmt.Sprintf(".%s-%0*d%s", escapeName(region), digits, first, tempExt)
}

// parseTempName returns the region of a temporary file's name.
func parseTempName(name string) (string, bool) {
	s, ok := strings.CutPrefix(name, ".")
	if !ok {
		return "", false
	}
	if s, ok = strings.CutSuffix(s, tempExt); !ok || len(s) < digits+2 || s[len(s)-digits-1] != '-' {
		return "", false
	}
	if _, err := parseDigits(s[len(s)-digits:]); err != nil {
		return "", false
	}
	region, err := unescapeName(s[:len(s)-digits-1])
	return region, err == nil && region != ""
}

// escapeName makes s safe as (part of) a file name: bytes other than letters, digits, '.',
// '-' and '_' become %XX, as does a leading '.' or '_' (hidden or ignored by readers).
func escapeName(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		safe := c == '-' || c == '.' || c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !safe || (i == 0 && (c == '.' || c == '_')) {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func unescapeName(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}

// partitionDir returns the directory (relative to the sink's path) of a partition key.
func partitionDir(by Partitioning, key string) string {
	switch by {
	case PartitionDevice:
		return "device=" + escapeName(key)
	case PartitionDay:
		return "date=" + key
	}
	return ""
}
