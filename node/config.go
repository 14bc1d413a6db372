package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/weir-dev/weir/cluster"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// Defaults of Config.
const (
	DefaultHTTPAddr        = "127.0.0.1:7070"
	DefaultRegions         = 4
	DefaultMaxBodySize     = 64 << 20
	DefaultShutdownTimeout = 30 * time.Second
	MaxRegions             = 1024
)

// Config is a node's configuration as written in its YAML file (keys as in the tags).
// Every key is optional but id and data; unknown keys are errors.
//
//	id: 1                      # 1-65535, unique among the nodes that exchange data
//	data: /var/lib/weir/n1     # data directory
//	http: 127.0.0.1:7070       # HTTP API (port 0: any free port)
//	flight: 127.0.0.1:7071     # Arrow Flight receiver ("" : none)
//	regions: 4                 # regions of a database created on this node
//	durability: sync           # sync | batch | async
//	compression: lz4           # TsFile compression: lz4 | zstd | none
//	memtable-size: 64MiB
//	flush-age: 10m
//	max-body-size: 64MiB       # larger request bodies get HTTP 413
//	auto-create: true          # create a database on its first write
//	shutdown-timeout: 30s
//	pipe-sync-interval: 30s    # in a cluster: how often cluster pipes are compared (0: only at start)
//	log: {level: info, format: text}
//	databases:                 # created at start when missing
//	  - {name: root.demo, regions: 4}
//	cluster: cluster.yaml      # member of this cluster (docs/cluster.md); http and flight
//	                           # default to the cluster file's addresses of this id
type Config struct {
	ID              uint32           `yaml:"id" json:"id"`
	Data            string           `yaml:"data" json:"data"`
	HTTP            string           `yaml:"http" json:"http"`
	Flight          string           `yaml:"flight" json:"flight"`
	Regions         int              `yaml:"regions" json:"regions"`
	Durability      string           `yaml:"durability" json:"durability"`
	Compression     string           `yaml:"compression" json:"compression"`
	MemtableSize    string           `yaml:"memtable-size" json:"memtable-size"`
	FlushAge        string           `yaml:"flush-age" json:"flush-age"`
	MaxBodySize     string           `yaml:"max-body-size" json:"max-body-size"`
	AutoCreate      *bool            `yaml:"auto-create" json:"auto-create"`
	ShutdownTimeout string           `yaml:"shutdown-timeout" json:"shutdown-timeout"`
	PipeSync        string           `yaml:"pipe-sync-interval" json:"pipe-sync-interval"`
	Log             LogConfig        `yaml:"log" json:"log"`
	Databases       []DatabaseConfig `yaml:"databases" json:"databases"`
	Cluster         string           `yaml:"cluster" json:"cluster"`
}

// LogConfig configures the node's slog logger.
type LogConfig struct {
	Level  string `yaml:"level" json:"level"`   // debug | info | warn | error (default info)
	Format string `yaml:"format" json:"format"` // text | json (default text)
}

// DatabaseConfig declares a database to create at start.
type DatabaseConfig struct {
	Name    string `yaml:"name" json:"name"`
	Regions int    `yaml:"regions" json:"regions"`
}

// LoadConfig reads a YAML configuration file. Unknown keys and values of the wrong type
// are errors naming the file, line and key.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses a YAML configuration (strictly: unknown keys are errors).
func ParseConfig(data []byte) (Config, error) {
	var c Config
	if err := yaml.UnmarshalWithOptions(data, &c, yaml.Strict()); err != nil {
		return Config{}, errors.New(yaml.FormatError(err, false, false))
	}
	return c, nil
}

// Options checks the configuration and turns it into the node's Options; every problem
// names its key.
func (c Config) Options() (Options, error) {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	o := Options{ID: c.ID, DataDir: c.Data, HTTPAddr: c.HTTP, FlightAddr: c.Flight, Regions: c.Regions, AutoCreate: true}
	if c.ID == 0 || c.ID > MaxNodeID {
		bad("id", "must be 1-%d, got %d", MaxNodeID, c.ID)
	}
	if c.Data == "" {
		bad("data", "missing: the node's data directory")
	}
	if c.Cluster != "" {
		cl, err := cluster.Load(c.Cluster)
		if err != nil {
			bad("cluster", "%v", err)
		} else if me, ok := cl.Node(c.ID); !ok {
			bad("cluster", "node %d is not in %s", c.ID, c.Cluster)
		} else {
			o.Cluster = cl
			for _, a := range []struct {
				key       string
				dst       *string
				clusterIs string
			}{{"http", &o.HTTPAddr, me.HTTP}, {"flight", &o.FlightAddr, me.Flight}} {
				if *a.dst == "" {
					*a.dst = a.clusterIs
					continue
				}
				_, p1, _ := net.SplitHostPort(*a.dst)
				_, p2, _ := net.SplitHostPort(a.clusterIs)
				if p1 != p2 {
					bad(a.key, "%s: node %d listens on %s in the cluster file %s (leave %s out to use it)", *a.dst, c.ID, a.clusterIs, c.Cluster, a.key)
				}
			}
		}
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = DefaultHTTPAddr
	}
	if _, _, err := net.SplitHostPort(o.HTTPAddr); err != nil {
		bad("http", "%q is not host:port", o.HTTPAddr)
	}
	if o.FlightAddr != "" {
		if _, _, err := net.SplitHostPort(o.FlightAddr); err != nil {
			bad("flight", "%q is not host:port", o.FlightAddr)
		}
	}
	if o.Regions == 0 {
		o.Regions = DefaultRegions
	}
	if o.Regions < 1 || o.Regions > MaxRegions {
		bad("regions", "must be 1-%d, got %d", MaxRegions, c.Regions)
	}
	if c.Durability != "" {
		d, err := wal.ParseDurability(c.Durability)
		if err != nil {
			bad("durability", "%v", err)
		}
		o.Durability = d
	}
	if c.Compression != "" {
		comp, err := tsfile.ParseCompression(c.Compression)
		if err != nil {
			bad("compression", "%v", err)
		}
		o.Compression = comp
	}
	if c.MemtableSize != "" {
		n, err := pipe.ParseBytes(c.MemtableSize)
		if err != nil || n <= 0 {
			bad("memtable-size", "%q is not a positive byte size (e.g. 64MiB)", c.MemtableSize)
		}
		o.MemtableSize = n
	}
	if c.FlushAge != "" {
		d, err := time.ParseDuration(c.FlushAge)
		if err != nil {
			bad("flush-age", "%q is not a duration (e.g. 10m)", c.FlushAge)
		}
		o.FlushAge = d
	}
	o.MaxBodyBytes = DefaultMaxBodySize
	if c.MaxBodySize != "" {
		n, err := pipe.ParseBytes(c.MaxBodySize)
		if err != nil || n <= 0 {
			bad("max-body-size", "%q is not a positive byte size (e.g. 64MiB)", c.MaxBodySize)
		}
		o.MaxBodyBytes = n
	}
	if c.AutoCreate != nil {
		o.AutoCreate = *c.AutoCreate
	}
	o.ShutdownTimeout = DefaultShutdownTimeout
	if c.ShutdownTimeout != "" {
		d, err := time.ParseDuration(c.ShutdownTimeout)
		if err != nil || d <= 0 {
			bad("shutdown-timeout", "%q is not a positive duration (e.g. 30s)", c.ShutdownTimeout)
		}
		o.ShutdownTimeout = d
	}
	if c.PipeSync != "" {
		d, err := time.ParseDuration(c.PipeSync)
		switch {
		case err != nil || d < 0:
			bad("pipe-sync-interval", "%q is not a duration >= 0 (e.g. 30s; 0: only when the node starts)", c.PipeSync)
		case d == 0:
			o.PipeSyncInterval = -1
		default:
			o.PipeSyncInterval = d
		}
	}
	lvl, err := ParseLogLevel(c.Log.Level)
	if err != nil {
		bad("log.level", "%v", err)
	}
	switch strings.ToLower(c.Log.Format) {
	case "", "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	o.Logger = NewLogger(os.Stderr, lvl, strings.EqualFold(c.Log.Format, "json"))
	for i, d := range c.Databases {
		key := fmt.Sprintf("databases[%d]", i)
		if err := CheckDatabaseName(d.Name); err != nil {
			bad(key+".name", "%v", err)
		}
		if d.Regions < 0 || d.Regions > MaxRegions {
			bad(key+".regions", "must be 1-%d, got %d", MaxRegions, d.Regions)
		}
	}
	o.Databases = c.Databases
	if len(errs) > 0 {
		return Options{}, errors.Join(errs...)
	}
	return o, nil
}

// ParseLogLevel parses debug, info, warn or error ("" is info).
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
}

// NewLogger returns a text or JSON slog logger writing to w at level.
func NewLogger(w interface{ Write([]byte) (int, error) }, level slog.Level, asJSON bool) *slog.Logger {
	ho := &slog.HandlerOptions{Level: level}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}
