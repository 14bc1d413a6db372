package pipe

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/tsfile"
)

// Role is the place of a plugin in a pipe.
type Role string

// The three plugin roles.
const (
	RoleSource    Role = "source"
	RoleProcessor Role = "processor"
	RoleSink      Role = "sink"
)

// Extractor produces a region's events in commit order.
type Extractor interface {
	// Open prepares the extractor; env.State holds what it saved at its last commit (nil at first).
	Open(ctx context.Context, env *Env) error
	// Next blocks until the next event or ctx ends.
	Next(ctx context.Context) (*Event, error)
	// Committed is called in commit order once the sink acknowledged an event, just before
	// the checkpoint that covers it is saved; it returns the extractor state to save with the
	// progress. Pins an event holds are released (Event.OnRelease) only after that save.
	Committed(e *Event) []byte
	// Status reports the extractor's carrier and pins.
	Status() ExtractorStatus
	Close() error
}

// StartStater is an extractor whose first position is taken when it first opens (a source
// with history.enable=false starts after what its region holds then). When a task opens one
// with no checkpoint yet, it saves the state StartState returns (nil: nothing to save) as
// its checkpoint at once, so that a retry or restart before the first commit resumes from
// that position instead of taking the region's again, which would skip the writes between.
type StartStater interface {
	StartState() []byte
}

// ExtractorStatus is what an extractor reports about itself.
type ExtractorStatus struct {
	Carrier        string `json:"carrier"`
	Switches       int64  `json:"switches"`
	LastSwitch     string `json:"last_switch,omitempty"`
	PinnedWALBytes int64  `json:"pinned_wal_bytes"`
	PinnedFileByte int64  `json:"pinned_file_bytes"`
	// TabletBytes and FileBytes count what was shipped by each carrier.
	TabletBytes int64 `json:"tablet_bytes"`
	FileBytes   int64 `json:"file_bytes"`
}

// Processor transforms events: one in, zero or more out.
type Processor interface {
	Open(ctx context.Context, env *Env) error
	// Process handles e and emits its outputs through emit, in order.
	Process(ctx context.Context, e *Event, emit func(*Event)) error
	Close() error
}

// Connector ships events out of the pipe.
type Connector interface {
	Open(ctx context.Context, env *Env) error
	// Send delivers a batch in order; a nil error acknowledges every event of the batch.
	Send(ctx context.Context, batch []*Event) error
	Close() error
}

// Env is what a plugin gets when it opens.
type Env struct {
	Pipe   string
	Region *engine.Region
	Params Params
	Logger *slog.Logger
	// State is the plugin state saved with the pipe's progress (extractor: from Committed).
	State []byte
	// Progress is the durable progress the pipe resumes from.
	Progress ProgressIndex
	// Pending reports events queued between the extractor and the sink (for the selector).
	Pending func() int
	// Databases opens a local database region by name (for write-back).
	Databases func(name string) (*engine.Region, error)
	// Fail stops the task with err, from any goroutine, at any time while the plugin is
	// open: for failures found in the background (an asynchronous connector's delivery
	// that failed after SendAsync returned). The run ends as if a call had returned err:
	// the error shows in the task's status and the task retries with backoff from its
	// durable progress (never, for a Permanent error). Calls after the first, or after the
	// run ended, are ignored. Never nil in a task; may be nil when a plugin is used alone.
	Fail func(err error)
}

// ParamType is the type of a plugin parameter's value.
type ParamType int

// Parameter types.
const (
	String ParamType = iota
	Int
	Bool
	Duration
	Bytes
	Enum
	PatternParam
	TimeParam
	Float
)

func (t ParamType) String() string {
	return [...]string{"string", "int", "bool", "duration", "bytes", "enum", "pattern", "time", "float"}[t]
}

// ParamSpec declares one parameter of a plugin: for validation, lint and docs.
type ParamSpec struct {
	Key      string
	Type     ParamType
	Default  string
	Enum     []string // for Enum
	Min      *float64 // for Int, Float, Duration (seconds), Bytes
	Required bool
	Doc      string
	// Check, if set, validates a value further once it has passed the type and minimum
	// checks (e.g. an expression's syntax, a duration that must be positive); its error is
	// the message shown after the key.
	Check func(string) error `json:"-"`
}

// PluginInfo describes a registered plugin.
type PluginInfo struct {
	Name    string
	Role    Role
	Doc     string
	Params  []ParamSpec
	Aliases []string
	// Validate, if set, checks the parameters (defaults filled in) together once each has
	// passed its own checks: a key that needs another, a value that depends on one. It reads no files and
	// makes no connections (a spec is linted away from the node that runs it). Each error is
	// a *Problem whose Key is the parameter's (without "sink." or the like), or an error
	// about the plugin as a whole.
	Validate func(Params) []error `json:"-"`
}

type registration struct {
	info         PluginInfo
	newExtractor func() Extractor
	newProcessor func() Processor
	newConnector func() Connector
}

var registry = struct {
	sync.RWMutex
	m map[Role]map[string]*registration
}{m: map[Role]map[string]*registration{RoleSource: {}, RoleProcessor: {}, RoleSink: {}}}

func register(r *registration) {
	registry.Lock()
	defer registry.Unlock()
	m := registry.m[r.info.Role]
	for _, n := range append([]string{r.info.Name}, r.info.Aliases...) {
		if _, dup := m[n]; dup {
			panic(fmt.Sprintf("pipe: %s plugin %q registered twice", r.info.Role, n))
		}
		m[n] = r
	}
}

// RegisterExtractor registers an extractor under info.Name (and its aliases).
func RegisterExtractor(info PluginInfo, f func() Extractor) {
	info.Role = RoleSource
	register(&registration{info: info, newExtractor: f})
}

// RegisterProcessor registers a processor under info.Name (and its aliases).
func RegisterProcessor(info PluginInfo, f func() Processor) {
	info.Role = RoleProcessor
	register(&registration{info: info, newProcessor: f})
}

// RegisterConnector registers a connector under info.Name (and its aliases).
func RegisterConnector(info PluginInfo, f func() Connector) {
	info.Role = RoleSink
	register(&registration{info: info, newConnector: f})
}

// Lookup finds a plugin of a role by name or alias.
func Lookup(role Role, name string) (PluginInfo, bool) {
	registry.RLock()
	defer registry.RUnlock()
	r, ok := registry.m[role][name]
	if !ok {
		return PluginInfo{}, false
	}
	return r.info, true
}

// Plugins lists the registered plugins of a role by name.
func Plugins(role Role) []PluginInfo {
	registry.RLock()
	defer registry.RUnlock()
	seen := map[string]bool{}
	var out []PluginInfo
	for _, r := range registry.m[role] {
		if !seen[r.info.Name] {
			seen[r.info.Name] = true
			out = append(out, r.info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func pluginNames(role Role) string {
	var names []string
	for _, p := range Plugins(role) {
		names = append(names, p.Name)
	}
	return strings.Join(names, ", ")
}

func newPlugin(role Role, name string) (*registration, error) {
	registry.RLock()
	r, ok := registry.m[role][name]
	registry.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown %s %q (registered: %s)", role, name, pluginNames(role))
	}
	return r, nil
}

// NewExtractor instantiates a registered extractor.
func NewExtractor(name string) (Extractor, error) {
	r, err := newPlugin(RoleSource, name)
	if err != nil {
		return nil, err
	}
	return r.newExtractor(), nil
}

// NewProcessor instantiates a registered processor.
func NewProcessor(name string) (Processor, error) {
	r, err := newPlugin(RoleProcessor, name)
	if err != nil {
		return nil, err
	}
	return r.newProcessor(), nil
}

// NewConnector instantiates a registered connector.
func NewConnector(name string) (Connector, error) {
	r, err := newPlugin(RoleSink, name)
	if err != nil {
		return nil, err
	}
	return r.newConnector(), nil
}

// Params are a plugin's validated parameters: every key declared, defaults filled in.
type Params struct {
	m map[string]string
}

// NewParams wraps raw values (used by tests and by validation).
func NewParams(m map[string]string) Params { return Params{m: m} }

// Raw returns the value of key as given (or its default), and whether it is set.
func (p Params) Raw(key string) (string, bool) { v, ok := p.m[key]; return v, ok }

// Map returns a copy of all values.
func (p Params) Map() map[string]string {
	out := make(map[string]string, len(p.m))
	for k, v := range p.m {
		out[k] = v
	}
	return out
}

// String returns key's value.
func (p Params) String(key string) string { return p.m[key] }

// Int returns key's value as an int64 (validated beforehand).
func (p Params) Int(key string) int64 { v, _ := strconv.ParseInt(p.m[key], 10, 64); return v }

// Float returns key's value as a float64.
func (p Params) Float(key string) float64 { v, _ := strconv.ParseFloat(p.m[key], 64); return v }

// Bool returns key's value as a bool.
func (p Params) Bool(key string) bool { v, _ := strconv.ParseBool(p.m[key]); return v }

// Duration returns key's value as a duration.
func (p Params) Duration(key string) time.Duration { v, _ := time.ParseDuration(p.m[key]); return v }

// Bytes returns key's value as a byte count (e.g. 64MiB).
func (p Params) Bytes(key string) int64 { v, _ := ParseBytes(p.m[key]); return v }

// Pattern returns key's value as a path pattern (zero when unset).
func (p Params) Pattern(key string) tsfile.Pattern {
	if p.m[key] == "" {
		return tsfile.Pattern{}
	}
	v, _ := tsfile.ParsePattern(p.m[key])
	return v
}

// Time returns key's value as unix milliseconds (RFC 3339 or an integer).
func (p Params) Time(key string) (int64, bool) {
	if p.m[key] == "" {
		return 0, false
	}
	v, err := ParseTime(p.m[key])
	return v, err == nil
}

// ParseBytes parses a size such as 1024, 64KiB, 64MiB, 1GiB, 10MB.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suf)), u.m
			break
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a byte size (e.g. 1048576, 64KiB, 64MiB)", s)
	}
	return v * mult, nil
}

// ParseTime parses unix milliseconds or an RFC 3339 timestamp into unix milliseconds.
func ParseTime(s string) (int64, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither unix milliseconds nor an RFC 3339 time", s)
	}
	return t.UnixMilli(), nil
}

// CheckValue validates a raw value against the spec, returning a message without the key:
// its type, then its minimum, then the spec's Check.
func (s ParamSpec) CheckValue(v string) error {
	if err := s.checkType(v); err != nil {
		return err
	}
	if s.Check != nil {
		return s.Check(v)
	}
	return nil
}

func (s ParamSpec) checkType(v string) error {
	fail := func(format string, a ...any) error { return fmt.Errorf(format, a...) }
	var num float64
	switch s.Type {
	case String:
		return nil
	case Int:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fail("%q is not an integer", v)
		}
		num = float64(n)
	case Float:
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fail("%q is not a number", v)
		}
		num = n
	case Bool:
		if _, err := strconv.ParseBool(v); err != nil {
			return fail("%q is not true or false", v)
		}
		return nil
	case Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fail("%q is not a duration (e.g. 500ms, 5s, 1m)", v)
		}
		num = d.Seconds()
	case Bytes:
		n, err := ParseBytes(v)
		if err != nil {
			return err
		}
		num = float64(n)
	case Enum:
		for _, e := range s.Enum {
			if v == e {
				return nil
			}
		}
		return fail("%q is not one of %s", v, strings.Join(s.Enum, ", "))
	case PatternParam:
		_, err := tsfile.ParsePattern(v)
		return err
	case TimeParam:
		_, err := ParseTime(v)
		return err
	}
	if s.Min != nil && num < *s.Min {
		return fail("%s is below the minimum %s", v, s.minText())
	}
	return nil
}

// minText is the minimum in the parameter's own unit: a duration for Duration (Min is in
// seconds), bytes for Bytes.
func (s ParamSpec) minText() string {
	switch s.Type {
	case Duration:
		return time.Duration(*s.Min * float64(time.Second)).String()
	case Bytes:
		return strconv.FormatFloat(*s.Min, 'f', -1, 64) + " bytes"
	}
	return strconv.FormatFloat(*s.Min, 'f', -1, 64)
}

// MinOf is a helper for ParamSpec.Min.
func MinOf(v float64) *float64 { return &v }
