package extractor

import (
	"fmt"
	"time"
)

// Carrier is how an extractor ships data: WAL tablets or sealed TsFiles.
type Carrier int

// The two carriers.
const (
	Tablet Carrier = iota
	File
)

func (c Carrier) String() string {
	if c == File {
		return "tsfile"
	}
	return "tablet"
}

// SelectorInput is what a selector sees each time it is asked.
type SelectorInput struct {
	Current        Carrier
	PendingEvents  int     // events queued between the extractor and the sink
	LagEvents      int64   // writes not yet committed by the pipe
	WALBytesBehind int64   // WAL bytes from the committed position on (what the pipe pins)
	LagSeconds     float64 // age of the oldest uncommitted write
	FileReady      bool    // a sealed file covers the next position to extract
	BacklogSealed  bool    // a sealed file covers the first uncommitted position
	Compacted      bool    // the next position is no longer in the WAL
}

// Selector chooses the carrier. A switch is logged with the returned reason and counted.
type Selector interface {
	Select(in SelectorInput) (Carrier, string)
}

// Always is a selector that keeps one carrier (wal: Tablet, tsfile: File). A tablet
// extractor still reads files for positions that are no longer in the WAL.
type Always Carrier

// Select implements Selector.
func (a Always) Select(in SelectorInput) (Carrier, string) {
	if Carrier(a) == Tablet && in.Compacted {
		return File, "history is no longer in the WAL"
	}
	if Carrier(a) == Tablet && in.Current == File && in.FileReady {
		return File, "shipping history files"
	}
	return Carrier(a), "fixed carrier"
}

// Threshold is the default adaptive policy: it degrades to files when the consumer falls
// behind (too many pending events, too many WAL bytes behind, or too much lag) and part of
// its backlog is already sealed in a file (else files cannot help yet), and returns
// to tablets once no sealed file is waiting and the queue has drained below ResumeRatio of
// its limit (hysteresis).
type Threshold struct {
	MaxPendingEvents int
	MaxWALBytes      int64
	MaxLag           time.Duration
	ResumeRatio      float64
}

// Select implements Selector.
func (t Threshold) Select(in SelectorInput) (Carrier, string) {
	if in.Compacted {
		return File, "history is no longer in the WAL"
	}
	if in.Current == Tablet {
		if !in.BacklogSealed {
			// the backlog is all in the live memtable: no sealed file could replace it
			return Tablet, ""
		}
		switch {
		case t.MaxPendingEvents > 0 && in.PendingEvents >= t.MaxPendingEvents:
			return File, fmt.Sprintf("pending events %d ≥ %d", in.PendingEvents, t.MaxPendingEvents)
		case t.MaxWALBytes > 0 && in.WALBytesBehind >= t.MaxWALBytes:
			return File, fmt.Sprintf("WAL behind %d bytes ≥ %d", in.WALBytesBehind, t.MaxWALBytes)
		case t.MaxLag > 0 && in.LagSeconds >= t.MaxLag.Seconds():
			return File, fmt.Sprintf("lag %.1fs ≥ %s", in.LagSeconds, t.MaxLag)
		}
		return Tablet, ""
	}
	if in.FileReady {
		return File, ""
	}
	if float64(in.PendingEvents) <= t.ResumeRatio*float64(t.MaxPendingEvents) {
		return Tablet, fmt.Sprintf("caught up: no sealed file waiting, pending events %d ≤ %.0f", in.PendingEvents, t.ResumeRatio*float64(t.MaxPendingEvents))
	}
	return File, ""
}
