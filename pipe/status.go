package pipe

import (
	"sync"
	"time"
)

// Task phases, as RegionStatus.Phase reports them.
const (
	PhaseStarting = "starting" // opening plugins
	PhaseRunning  = "running"
	PhaseBackoff  = "backoff"  // failed, waiting to retry
	PhaseFailed   = "failed"   // failed for good (e.g. a corrupt progress file); not retried
	PhaseFinished = "finished" // the extractor ended (finite source) and everything is committed
	PhaseStopped  = "stopped"
)

// Counters are a task's numbers, and a pipe's summed over its tasks (LagSeconds: the
// largest).
type Counters struct {
	ExtractedEvents int64   `json:"extracted_events"`
	ExtractedBytes  int64   `json:"extracted_bytes"`
	CommittedEvents int64   `json:"committed_events"`
	CommittedBytes  int64   `json:"committed_bytes"`
	InFlightEvents  int64   `json:"in_flight_events"`
	InFlightBytes   int64   `json:"in_flight_bytes"`
	LagEvents       int64   `json:"lag_events"`
	LagBytes        int64   `json:"lag_bytes"`
	LagSeconds      float64 `json:"lag_seconds"`
	EventsPerSec    float64 `json:"events_per_sec"`
	PointsPerSec    float64 `json:"points_per_sec"`
	PinnedWALBytes  int64   `json:"pinned_wal_bytes"`
	PinnedFileBytes int64   `json:"pinned_file_bytes"`
	Switches        int64   `json:"switches"`
	Retries         int64   `json:"retries"`
}

// Add adds o to c: the sums, and the larger LagSeconds.
func (c *Counters) Add(o Counters) {
	c.ExtractedEvents += o.ExtractedEvents
	c.ExtractedBytes += o.ExtractedBytes
	c.CommittedEvents += o.CommittedEvents
	c.CommittedBytes += o.CommittedBytes
	c.InFlightEvents += o.InFlightEvents
	c.InFlightBytes += o.InFlightBytes
	c.LagEvents += o.LagEvents
	c.LagBytes += o.LagBytes
	c.LagSeconds = max(c.LagSeconds, o.LagSeconds)
	c.EventsPerSec += o.EventsPerSec
	c.PointsPerSec += o.PointsPerSec
	c.PinnedWALBytes += o.PinnedWALBytes
	c.PinnedFileBytes += o.PinnedFileBytes
	c.Switches += o.Switches
	c.Retries += o.Retries
}

// Status describes a pipe: its spec's plugins, state, and per region the task's state.
// The top-level numbers aggregate the regions: sums, except LagSeconds (the maximum).
type Status struct {
	Name       string    `json:"name"`
	State      PipeState `json:"state"`
	Source     string    `json:"source"`
	Processors []string  `json:"processors,omitempty"`
	Sink       string    `json:"sink"`

	Counters
	// LastError is the pipe's own last error (e.g. resolving its regions) or else the most
	// recent error of a region's task.
	LastError string `json:"last_error,omitempty"`

	Regions []RegionStatus `json:"regions"`
}

// RegionStatus describes one task (pipe × region).
type RegionStatus struct {
	Region string `json:"region"`
	// Node is the node that runs the task, in a cluster's merged view (0 otherwise).
	Node       uint32 `json:"node,omitempty"`
	Phase      string `json:"phase"`
	Carrier    string `json:"carrier"`
	LastSwitch string `json:"last_switch,omitempty"`
	Counters
	TabletBytes   int64     `json:"tablet_bytes"` // shipped as WAL tablets
	FileBytes     int64     `json:"file_bytes"`   // shipped as sealed TsFiles
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// Progress is the committed progress index ("origin:index,..."); DurableCommitID is the
	// commit id of the last saved checkpoint, CommitID that of the last committed event.
	Progress        string `json:"progress"`
	CommitID        uint64 `json:"commit_id"`
	DurableCommitID uint64 `json:"durable_commit_id"`
}

// aggregate fills s's top-level numbers from its regions.
func (s *Status) aggregate() {
	for _, r := range s.Regions {
		s.Counters.Add(r.Counters)
	}
	if s.LastError == "" {
		var at time.Time
		for _, r := range s.Regions {
			if r.LastError != "" && (s.LastError == "" || r.LastErrorTime.After(at)) {
				s.LastError, at = r.LastError, r.LastErrorTime
			}
		}
	}
}

// RateWindow is the sliding window over which rates are computed.
const RateWindow = 10 * time.Second

// rateMeter counts events and points over a sliding window of one-second buckets.
type rateMeter struct {
	mu      sync.Mutex
	start   time.Time
	buckets [10]struct {
		sec            int64
		events, points int64
	}
}

func newRateMeter(now time.Time) *rateMeter { return &rateMeter{start: now} }

func (m *rateMeter) add(now time.Time, events, points int64) {
	sec := now.Unix()
	m.mu.Lock()
	b := &m.buckets[sec%int64(len(m.buckets))]
	if b.sec != sec {
		b.sec, b.events, b.points = sec, 0, 0
	}
	b.events += events
	b.points += points
	m.mu.Unlock()
}

// rates returns events/s and points/s over the last window (or since start, if shorter).
func (m *rateMeter) rates(now time.Time) (eps, pps float64) {
	sec := now.Unix()
	n := int64(len(m.buckets))
	m.mu.Lock()
	defer m.mu.Unlock()
	var ev, pt int64
	for _, b := range m.buckets {
		if b.sec > sec-n && b.sec <= sec {
			ev += b.events
			pt += b.points
		}
	}
	span := RateWindow.Seconds()
	if el := now.Sub(m.start).Seconds(); el < span {
		span = el
	}
	if span < 1 {
		span = 1
	}
	return float64(ev) / span, float64(pt) / span
}
