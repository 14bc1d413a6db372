package node

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weir-dev/weir/pipe"
)

// metrics is the node's Prometheus registry: request counters kept by the HTTP layer, and
// a collector that reads the regions' and pipes' counters at scrape time.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	written   *prometheus.CounterVec
	bodyBytes prometheus.Counter
	lineErrs  prometheus.Counter
	handler   http.Handler
}

func newMetrics(n *Node) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_http_requests_total", Help: "HTTP API requests by route and status code.",
	}, []string{"route", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "weir_http_request_seconds", Help: "HTTP API request durations by route.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
	}, []string{"route"})
	m.written = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weir_write_points_total", Help: "Points accepted by the write API, by format.",
	}, []string{"format"})
	m.bodyBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_write_bytes_total", Help: "Bytes of write request bodies read.",
	})
	m.lineErrs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "weir_write_line_errors_total", Help: "Bad lines refused by the write API.",
	})
	m.reg.MustRegister(m.requests, m.duration, m.written, m.bodyBytes, m.lineErrs,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&nodeCollector{n: n})
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

func (m *metrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// nodeCollector exports the regions' stats and the pipes' status.
type nodeCollector struct{ n *Node }

var (
	regLabels  = []string{"database", "region"}
	pipeLabels = []string{"pipe", "region"}

	mRegionWrites    = prometheus.NewDesc("weir_region_writes_total", "Writes (tablets) a region took since the node started.", regLabels, nil)
	mRegionPoints    = prometheus.NewDesc("weir_region_points_total", "Points a region took since the node started.", regLabels, nil)
	mRegionDeletes   = prometheus.NewDesc("weir_region_deletes_total", "Deletions a region took since the node started.", regLabels, nil)
	mRegionFlushes   = prometheus.NewDesc("weir_region_flushes_total", "Memtable flushes of a region since the node started.", regLabels, nil)
	mRegionFiles     = prometheus.NewDesc("weir_region_tsfiles", "Sealed TsFiles of a region.", regLabels, nil)
	mRegionFileBytes = prometheus.NewDesc("weir_region_tsfile_bytes", "Bytes of a region's sealed TsFiles.", regLabels, nil)
	mRegionMemBytes  = prometheus.NewDesc("weir_region_memtable_bytes", "Bytes in a region's memtables.", regLabels, nil)
	mRegionWALBytes  = prometheus.NewDesc("weir_region_wal_bytes", "Bytes of a region's WAL segments.", regLabels, nil)
	mRegionPinnedWAL = prometheus.NewDesc("weir_region_pinned_wal_bytes", "WAL bytes pinned by pipes.", regLabels, nil)
	mRegionPinnedTs  = prometheus.NewDesc("weir_region_pinned_tsfile_bytes", "TsFile bytes pinned by pipes.", regLabels, nil)
	mRegionLastIndex = prometheus.NewDesc("weir_region_last_index", "Index of a region's last write.", regLabels, nil)

	mPipeState     = prometheus.NewDesc("weir_pipe_state", "1 for a pipe's current state.", []string{"pipe", "state"}, nil)
	mPipeEvents    = prometheus.NewDesc("weir_pipe_committed_events_total", "Events a pipe's task committed since it started.", pipeLabels, nil)
	mPipeBytes     = prometheus.NewDesc("weir_pipe_committed_bytes_total", "Bytes a pipe's task committed since it started.", pipeLabels, nil)
	mPipeLagEvents = prometheus.NewDesc("weir_pipe_lag_events", "Events written to the region and not yet committed by the pipe.", pipeLabels, nil)
	mPipeLagBytes  = prometheus.NewDesc("weir_pipe_lag_bytes", "Bytes written to the region and not yet committed by the pipe.", pipeLabels, nil)
	mPipeLagSecs   = prometheus.NewDesc("weir_pipe_lag_seconds", "Age of the oldest write the pipe has not committed.", pipeLabels, nil)
	mPipeRate      = prometheus.NewDesc("weir_pipe_events_per_second", "A pipe task's commit rate over the last 10s.", pipeLabels, nil)
	mPipeCarrier   = prometheus.NewDesc("weir_pipe_carrier", "1 for the carrier a pipe's task ships with (tablet, tsfile, ...).", []string{"pipe", "region", "carrier"}, nil)
	mPipeSwitches  = prometheus.NewDesc("weir_pipe_carrier_switches_total", "Carrier switches of a pipe's task, across its retries.", pipeLabels, nil)
	mPipeRetries   = prometheus.NewDesc("weir_pipe_errors_total", "Failures (each retried with backoff) of a pipe's task.", pipeLabels, nil)
	mPipePinned    = prometheus.NewDesc("weir_pipe_pinned_wal_bytes", "WAL bytes a pipe's task pins.", pipeLabels, nil)
)

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mRegionWrites, mRegionPoints, mRegionDeletes, mRegionFlushes, mRegionFiles, mRegionFileBytes,
		mRegionMemBytes, mRegionWALBytes, mRegionPinnedWAL, mRegionPinnedTs, mRegionLastIndex,
		mPipeState, mPipeEvents, mPipeBytes, mPipeLagEvents, mPipeLagBytes, mPipeLagSecs, mPipeRate, mPipeCarrier,
		mPipeSwitches, mPipeRetries, mPipePinned} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, d := range c.n.Databases() {
		for _, r := range d.regions {
			s := r.Stats()
			l := []string{d.name, r.Name()}
			ch <- prometheus.MustNewConstMetric(mRegionWrites, prometheus.CounterValue, float64(s.Writes), l...)
			ch <- prometheus.MustNewConstMetric(mRegionPoints, prometheus.CounterValue, float64(s.Points), l...)
			ch <- prometheus.MustNewConstMetric(mRegionDeletes, prometheus.CounterValue, float64(s.Deletes), l...)
			ch <- prometheus.MustNewConstMetric(mRegionFlushes, prometheus.CounterValue, float64(s.Flushes), l...)
			ch <- prometheus.MustNewConstMetric(mRegionFiles, prometheus.GaugeValue, float64(s.Files), l...)
			ch <- prometheus.MustNewConstMetric(mRegionFileBytes, prometheus.GaugeValue, float64(s.FileBytes), l...)
			ch <- prometheus.MustNewConstMetric(mRegionMemBytes, prometheus.GaugeValue, float64(s.MemtableBytes), l...)
			ch <- prometheus.MustNewConstMetric(mRegionWALBytes, prometheus.GaugeValue, float64(s.WALBytes), l...)
			ch <- prometheus.MustNewConstMetric(mRegionPinnedWAL, prometheus.GaugeValue, float64(s.PinnedWAL), l...)
			ch <- prometheus.MustNewConstMetric(mRegionPinnedTs, prometheus.GaugeValue, float64(s.PinnedFiles), l...)
			ch <- prometheus.MustNewConstMetric(mRegionLastIndex, prometheus.GaugeValue, float64(s.LastIndex), l...)
		}
	}
	for _, p := range c.n.mgr.List() {
		for _, st := range []pipe.PipeState{pipe.StateCreated, pipe.StateRunning, pipe.StateStopped} {
			v := 0.0
			if p.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(mPipeState, prometheus.GaugeValue, v, p.Name, string(st))
		}
		for _, r := range p.Regions {
			l := []string{p.Name, r.Region}
			ch <- prometheus.MustNewConstMetric(mPipeEvents, prometheus.CounterValue, float64(r.CommittedEvents), l...)
			ch <- prometheus.MustNewConstMetric(mPipeBytes, prometheus.CounterValue, float64(r.CommittedBytes), l...)
			ch <- prometheus.MustNewConstMetric(mPipeLagEvents, prometheus.GaugeValue, float64(r.LagEvents), l...)
			ch <- prometheus.MustNewConstMetric(mPipeLagBytes, prometheus.GaugeValue, float64(r.LagBytes), l...)
			ch <- prometheus.MustNewConstMetric(mPipeLagSecs, prometheus.GaugeValue, r.LagSeconds, l...)
			ch <- prometheus.MustNewConstMetric(mPipeRate, prometheus.GaugeValue, r.EventsPerSec, l...)
			ch <- prometheus.MustNewConstMetric(mPipeSwitches, prometheus.CounterValue, float64(r.Switches), l...)
			ch <- prometheus.MustNewConstMetric(mPipeRetries, prometheus.CounterValue, float64(r.Retries), l...)
			ch <- prometheus.MustNewConstMetric(mPipePinned, prometheus.GaugeValue, float64(r.PinnedWALBytes), l...)
			if r.Carrier != "" {
				ch <- prometheus.MustNewConstMetric(mPipeCarrier, prometheus.GaugeValue, 1, p.Name, r.Region, r.Carrier)
			}
		}
	}
}
