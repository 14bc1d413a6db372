package pipe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// DefaultSource is the source plugin of a spec that names none (as in IoTDB, where a pipe
// without WITH SOURCE reads everything with the default extractor).
const DefaultSource = "hybrid"

// PluginSpec names a plugin and its parameters.
type PluginSpec struct {
	Plugin string            `json:"plugin"`
	Params map[string]string `json:"params,omitempty"`
}

// Spec is a pipe specification: what ParseSpec (YAML or JSON) and ParseSQL (CREATE PIPE)
// produce. A parsed spec holds plugin names and parameter keys as written (aliases, IoTDB
// prefixes and suffixes included); Validate checks it against the plugin registry and
// Normalize turns it into the canonical form that the runtime uses and that compares equal
// whichever form it came from. An empty Source.Plugin means DefaultSource.
type Spec struct {
	Name       string       `json:"name"`
	Source     PluginSpec   `json:"source"`
	Processors []PluginSpec `json:"processors,omitempty"`
	Sink       PluginSpec   `json:"sink"`

	// pos maps a key path (name, source, source.<raw key>, processors[i], ...) to where
	// it was written, for problems; nil for specs not parsed from text.
	pos map[string]Position
}

// Position is a place in a spec's source text (1-based; zero when unknown).
type Position struct {
	Line, Column int
}

// Problem is one thing wrong with a spec, naming the key it is about: "name", "source",
// "source.pattern", "processors[1].method", "sink.batch.max-bytes" (processors count from 0).
type Problem struct {
	Key string
	Msg string
	Position
}

func (p *Problem) Error() string {
	if p.Key == "" {
		return p.Msg
	}
	return p.Key + ": " + p.Msg
}

// SyntaxError is a spec or statement that could not be parsed at all.
type SyntaxError struct {
	Position
	Msg string
}

func (e *SyntaxError) Error() string {
	if e.Line == 0 {
		return e.Msg
	}
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Msg)
}

// Problems splits an error returned by this package's parsing, validation and
// normalization into its single problems (*Problem or *SyntaxError), in order.
func Problems(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Problems(e)...)
		}
		return out
	}
	return []error{err}
}

// PositionOf returns where a problem is in the source text, if known.
func PositionOf(err error) (Position, bool) {
	var p *Problem
	if errors.As(err, &p) && p.Line > 0 {
		return p.Position, true
	}
	var s *SyntaxError
	if errors.As(err, &s) && s.Line > 0 {
		return s.Position, true
	}
	return Position{}, false
}

// Reserved keys of a plugin map: the keys that name the plugin, per role, and "params".
var (
	nameKeys = map[Role][]string{
		RoleSource:    {"plugin", "source", "extractor"},
		RoleProcessor: {"plugin", "processor"},
		RoleSink:      {"plugin", "sink", "connector"},
	}
	// IoTDB key prefixes (source.pattern, extractor.pattern, sink.node-urls, ...).
	keyPrefixes = map[Role][]string{
		RoleSource:    {"source.", "extractor."},
		RoleProcessor: {"processor."},
		RoleSink:      {"sink.", "connector."},
	}
	// IoTDB plugin name suffixes (do-nothing-processor, write-back-sink, ...).
	nameSuffixes = map[Role][]string{
		RoleSource:    {"-source", "-extractor"},
		RoleProcessor: {"-processor"},
		RoleSink:      {"-sink", "-connector"},
	}
)

const paramsKey = "params"

func isNameKey(role Role, k string) bool {
	return slices.Contains(nameKeys[role], strings.ToLower(k))
}

// ---------------------------------------------------------------- YAML / JSON

// Limits that keep a hostile spec (deep nesting, alias bombs) cheap.
const (
	maxSpecDepth = 32
	maxSpecNodes = 100_000
)

// ParseSpec parses a pipe spec written in YAML or JSON:
//
//	name: copy
//	source:   {plugin: hybrid, pattern: root.demo.**, start-time: 0}
//	processors:
//	  - {plugin: do-nothing}
//	sink:     {plugin: write-back, database: root.copy}
//
// In a plugin map, "plugin" names the plugin (IoTDB's "source"/"extractor", "processor",
// "sink"/"connector" do too) and every other key is a parameter; "params" may instead hold
// the parameters as a nested map (the form encoding/json gives a Spec). Scalar values become
// strings as written, nested maps become dotted keys, lists of scalars comma-separated values.
// The top-level keys "extractor", "connector" and "processor" (one map) are aliases. A syntax
// error is a *SyntaxError; other problems are *Problems joined (see Problems). The spec is
// not checked against the plugin registry: see Validate.
func ParseSpec(data []byte) (*Spec, error) {
	s, probs, err := parseSpec(data)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, errors.Join(probs...)
	}
	return s, nil
}

// CheckSpec parses and normalizes a YAML or JSON spec, returning the normalized spec or
// every problem found (syntax, structure and validation together), as pipectl lint does.
func CheckSpec(data []byte) (*Spec, []error) {
	s, probs, err := parseSpec(data)
	if err != nil {
		return nil, []error{err}
	}
	return check(s, probs)
}

// check validates a parsed (possibly partial) spec and merges the problems found while
// parsing, dropping validation problems about keys that parsing already complained of.
func check(s *Spec, parsed []error) (*Spec, []error) {
	all := parsed
	for _, e := range s.Validate() {
		if !coveredBy(e, parsed) {
			all = append(all, e)
		}
	}
	if len(all) > 0 {
		sortProblems(all)
		return nil, all
	}
	n, err := s.Normalize()
	if err != nil {
		return nil, Problems(err)
	}
	return n, nil
}

func coveredBy(e error, parsed []error) bool {
	var p *Problem
	if !errors.As(e, &p) {
		return false
	}
	for _, q := range parsed {
		var pq *Problem
		if errors.As(q, &pq) && pq.Key != "" && (p.Key == pq.Key || strings.HasPrefix(p.Key, pq.Key+".") || strings.HasPrefix(p.Key, pq.Key+"[")) {
			return true
		}
	}
	return false
}

// sortProblems orders problems by position; those without one keep their order at the end.
func sortProblems(errs []error) {
	sort.SliceStable(errs, func(i, j int) bool {
		pi, oki := PositionOf(errs[i])
		pj, okj := PositionOf(errs[j])
		switch {
		case oki && okj:
			return pi.Line < pj.Line || pi.Line == pj.Line && pi.Column < pj.Column
		default:
			return oki && !okj
		}
	})
}

type yamlReader struct {
	spec    *Spec
	probs   []error
	anchors map[string]ast.Node
	nodes   int
	tooBig  bool
}

func posOf(n ast.Node) Position {
	if m, ok := n.(*ast.MappingNode); ok && !m.IsFlowStyle && len(m.Values) > 0 {
		n = m.Values[0].Key
	}
	if n == nil || n.GetToken() == nil || n.GetToken().Position == nil {
		return Position{}
	}
	p := n.GetToken().Position
	return Position{Line: p.Line, Column: p.Column}
}

func (r *yamlReader) problem(key string, at Position, format string, a ...any) {
	r.probs = append(r.probs, &Problem{Key: key, Msg: fmt.Sprintf(format, a...), Position: at})
}

func parseSpec(data []byte) (*Spec, []error, error) {
	if !utf8.Valid(data) {
		return nil, nil, &SyntaxError{Msg: "spec is not valid UTF-8"}
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		var se *yaml.SyntaxError
		if errors.As(err, &se) && se.Token != nil && se.Token.Position != nil {
			return nil, nil, &SyntaxError{Position: Position{se.Token.Position.Line, se.Token.Position.Column}, Msg: se.Message}
		}
		return nil, nil, &SyntaxError{Msg: strings.TrimSpace(err.Error())}
	}
	r := &yamlReader{spec: &Spec{pos: map[string]Position{}}, anchors: map[string]ast.Node{}}
	var body ast.Node
	for _, d := range f.Docs {
		if d == nil || d.Body == nil {
			continue
		}
		if _, isComment := d.Body.(*ast.CommentGroupNode); isComment {
			continue
		}
		if body != nil {
			r.problem("", posOf(d.Body), "a spec is one YAML document, found another")
			break
		}
		body = d.Body
	}
	if body == nil {
		r.problem("", Position{}, "empty spec (want name, source, processors, sink)")
		return r.spec, r.probs, nil
	}
	body = r.resolve(body)
	m, ok := body.(*ast.MappingNode)
	if !ok {
		if body != nil {
			r.problem("", posOf(body), "a spec is a mapping with keys name, source, processors, sink; found %s", kindOf(body))
		}
		return r.spec, r.probs, nil
	}
	seen := map[string]string{} // canonical top-level key → key as written
	once := func(canon, key string, at Position) bool {
		if prev, dup := seen[canon]; dup {
			r.problem(canon, at, "given twice (as %q and %q)", prev, key)
			return false
		}
		seen[canon] = key
		return true
	}
	for _, mv := range m.Values {
		key, kpos, ok := r.key(mv, "")
		if !ok {
			continue
		}
		val := r.resolve(mv.Value)
		switch key {
		case "name":
			if once("name", key, kpos) {
				r.spec.pos["name"] = posOrKey(val, kpos)
				if v, ok := r.scalar("name", val, kpos); ok {
					r.spec.Name = v
				}
			}
		case "source", "extractor":
			if once("source", key, kpos) {
				r.spec.Source = r.plugin(RoleSource, "source", val, kpos)
			}
		case "sink", "connector":
			if once("sink", key, kpos) {
				r.spec.Sink = r.plugin(RoleSink, "sink", val, kpos)
			}
		case "processor":
			if once("processors", key, kpos) {
				r.spec.Processors = []PluginSpec{r.plugin(RoleProcessor, "processors[0]", val, kpos)}
			}
		case "processors":
			if !once("processors", key, kpos) {
				continue
			}
			switch seq := val.(type) {
			case nil, *ast.NullNode:
			case *ast.SequenceNode:
				for i, item := range seq.Values {
					path := fmt.Sprintf("processors[%d]", i)
					r.spec.Processors = append(r.spec.Processors, r.plugin(RoleProcessor, path, r.resolve(item), posOrKey(item, kpos)))
				}
			default:
				r.problem("processors", posOrKey(val, kpos), "must be a list of processors, found %s", kindOf(val))
			}
		default:
			r.problem(key, kpos, "unknown key (known: name, source, processors, sink; IoTDB's extractor, processor, connector)")
		}
	}
	return r.spec, r.probs, nil
}

func posOrKey(n ast.Node, kpos Position) Position {
	if p := posOf(n); p.Line > 0 {
		return p
	}
	return kpos
}

// key reads a mapping key as a string.
func (r *yamlReader) key(mv *ast.MappingValueNode, prefix string) (string, Position, bool) {
	at := posOf(mv.Key)
	where := strings.TrimSuffix(prefix, ".")
	switch k := mv.Key.(type) {
	case *ast.MergeKeyNode:
		r.problem(where, at, "merge keys (<<) are not supported")
		return "", at, false
	case *ast.MappingKeyNode:
		r.problem(where, at, "complex keys (?) are not supported")
		return "", at, false
	default:
		v, ok := r.scalarText(r.resolve(k))
		if !ok || v == "" {
			r.problem(where, at, "a key must be a non-empty string")
			return "", at, false
		}
		return v, at, true
	}
}

// unresolved stands for an alias that named no anchor (already reported).
var unresolved = &ast.NullNode{}

// resolve unwraps anchors, tags and aliases.
func (r *yamlReader) resolve(n ast.Node) ast.Node {
	for i := 0; i < 64 && n != nil; i++ {
		switch v := n.(type) {
		case *ast.AnchorNode:
			val := v.Value
			if name, ok := v.Name.(*ast.StringNode); ok {
				defer func() { r.anchors[name.Value] = val }()
			}
			n = val
		case *ast.TagNode:
			n = v.Value
		case *ast.AliasNode:
			name := ""
			if s, ok := v.Value.(*ast.StringNode); ok {
				name = s.Value
			}
			target, ok := r.anchors[name]
			if !ok {
				r.probs = append(r.probs, &Problem{Msg: fmt.Sprintf("unknown alias *%s", name), Position: posOf(v)})
				return unresolved
			}
			n = target
		default:
			return n
		}
	}
	return n
}

func kindOf(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "nothing"
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	}
	return "a value"
}

// scalarText returns a scalar's text: strings decoded, numbers and booleans as written.
func (r *yamlReader) scalarText(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		var s string
		if err := yaml.NodeToValue(v, &s); err != nil {
			return "", false
		}
		return s, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, true
	}
	return "", false
}

// scalar reads the value of key as a string, reporting anything else.
func (r *yamlReader) scalar(key string, n ast.Node, kpos Position) (string, bool) {
	if v, ok := r.scalarText(n); ok {
		return v, true
	}
	if n == unresolved {
		return "", false
	}
	if _, isNull := n.(*ast.NullNode); isNull || n == nil {
		r.problem(key, kpos, `no value (write "" for an empty string)`)
		return "", false
	}
	r.problem(key, posOrKey(n, kpos), "must be a single value, found %s", kindOf(n))
	return "", false
}

// plugin reads a plugin map (or a bare plugin name) at path.
func (r *yamlReader) plugin(role Role, path string, n ast.Node, kpos Position) PluginSpec {
	var ps PluginSpec
	r.spec.pos[path] = posOrKey(n, kpos)
	if v, ok := r.scalarText(n); ok {
		ps.Plugin = v
		return ps
	}
	switch m := n.(type) {
	case nil, *ast.NullNode:
		return ps
	case *ast.MappingNode:
		named := ""
		for _, mv := range m.Values {
			key, at, ok := r.key(mv, path+".")
			if !ok {
				continue
			}
			val := r.resolve(mv.Value)
			switch {
			case isNameKey(role, key):
				if named != "" {
					r.problem(path, at, "plugin named twice (by %q and %q)", named, key)
					continue
				}
				named = key
				r.spec.pos[path] = posOrKey(val, at)
				if v, ok := r.scalar(path, val, at); ok {
					ps.Plugin = v
				}
			case key == paramsKey:
				switch pm := val.(type) {
				case nil, *ast.NullNode:
				case *ast.MappingNode:
					for _, pmv := range pm.Values {
						if k, at, ok := r.key(pmv, path+"."); ok {
							r.param(&ps, path, k, r.resolve(pmv.Value), at, 3)
						}
					}
				default:
					r.problem(path+"."+paramsKey, posOrKey(val, at), "must be a mapping of parameters, found %s", kindOf(val))
				}
			default:
				r.param(&ps, path, key, val, at, 3)
			}
		}
		return ps
	}
	r.problem(path, posOrKey(n, kpos), "must be a plugin name or a mapping with key \"plugin\", found %s", kindOf(n))
	return ps
}

// param stores the value of key (flattening nested maps into dotted keys).
func (r *yamlReader) param(ps *PluginSpec, path, key string, n ast.Node, at Position, depth int) {
	r.nodes++
	full := path + "." + key
	if depth > maxSpecDepth || r.nodes > maxSpecNodes {
		if !r.tooBig {
			r.tooBig = true
			r.problem(full, at, "nested too deeply or too large (at most %d levels, %d values)", maxSpecDepth, maxSpecNodes)
		}
		return
	}
	set := func(v string, vat Position) {
		if ps.Params == nil {
			ps.Params = map[string]string{}
		}
		if _, dup := ps.Params[key]; dup {
			r.problem(full, at, "given twice")
			return
		}
		ps.Params[key] = v
		r.spec.pos[full] = at
	}
	if v, ok := r.scalarText(n); ok {
		set(v, at)
		return
	}
	switch v := n.(type) {
	case *ast.MappingNode:
		if len(v.Values) == 0 {
			r.problem(full, at, "empty mapping is not a value")
		}
		for _, mv := range v.Values {
			if k, kat, ok := r.key(mv, full+"."); ok {
				r.param(ps, path, key+"."+k, r.resolve(mv.Value), kat, depth+1)
			}
		}
	case *ast.SequenceNode:
		var parts []string
		for _, item := range v.Values {
			item = r.resolve(item)
			if item == unresolved {
				return
			}
			s, ok := r.scalarText(item)
			if !ok {
				r.problem(full, posOrKey(item, at), "a list value may hold only single values")
				return
			}
			parts = append(parts, s)
		}
		set(strings.Join(parts, ","), at)
	default:
		r.scalar(full, n, at)
	}
}

// ---------------------------------------------------------------- validation

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName reports whether s is a valid pipe name: 1-64 letters, digits, '_' or '-'.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// pluginAt returns the plugin spec of a role (i for processors) and its key path.
func (s *Spec) pluginAt(role Role, i int) (PluginSpec, string) {
	switch role {
	case RoleSource:
		return s.Source, "source"
	case RoleSink:
		return s.Sink, "sink"
	}
	if i < 0 || i >= len(s.Processors) {
		return PluginSpec{}, fmt.Sprintf("processors[%d]", i)
	}
	return s.Processors[i], fmt.Sprintf("processors[%d]", i)
}

// ResolvePlugin finds a plugin of role by a name as a spec may write it: a registered name
// or alias, any letter case, IoTDB's iotdb-source/iotdb-extractor (DefaultSource), or with
// the role's IoTDB suffix (-source/-extractor, -processor, -sink/-connector). An empty
// source name is DefaultSource.
func ResolvePlugin(role Role, name string) (PluginInfo, bool) {
	if role == RoleSource && name == "" {
		name = DefaultSource
	}
	if info, ok := Lookup(role, name); ok {
		return info, true
	}
	n := strings.ToLower(strings.TrimSpace(name))
	if info, ok := Lookup(role, n); ok {
		return info, true
	}
	if role == RoleSource && (n == "iotdb-source" || n == "iotdb-extractor") {
		return Lookup(role, DefaultSource)
	}
	for _, suf := range nameSuffixes[role] {
		if len(n) > len(suf) && strings.HasSuffix(n, suf) {
			if info, ok := Lookup(role, strings.TrimSuffix(n, suf)); ok {
				return info, true
			}
		}
	}
	return PluginInfo{}, false
}

// canonicalKey maps a parameter key as written to the plugin's declared key: the key
// itself, without the role's IoTDB prefix, or either in lower case; "" if none matches.
func canonicalKey(role Role, info PluginInfo, raw string) string {
	declared := func(k string) bool {
		return slices.ContainsFunc(info.Params, func(p ParamSpec) bool { return p.Key == k })
	}
	for _, k := range []string{raw, strings.ToLower(raw)} {
		if declared(k) {
			return k
		}
		for _, pre := range keyPrefixes[role] {
			if len(k) > len(pre) && strings.HasPrefix(strings.ToLower(k), pre) && declared(k[len(pre):]) {
				return k[len(pre):]
			}
		}
	}
	return ""
}

// stripPrefix removes the role's IoTDB prefix from a key (for plugins not registered).
func stripPrefix(role Role, raw string) string {
	for _, pre := range keyPrefixes[role] {
		if len(raw) > len(pre) && strings.HasPrefix(strings.ToLower(raw), pre) {
			return raw[len(pre):]
		}
	}
	return raw
}

// Validate checks the spec against the plugin registry and returns every problem, each a
// *Problem naming its key: the name, unknown plugins, unknown parameter keys, bad values
// and missing required parameters.
func (s *Spec) Validate() []error {
	var errs []error
	add := func(key string, format string, a ...any) {
		errs = append(errs, &Problem{Key: key, Msg: fmt.Sprintf(format, a...), Position: s.pos[key]})
	}
	switch {
	case s.Name == "":
		add("name", "required: 1-64 chars of letters, digits, '_' '-'")
	case !ValidName(s.Name):
		add("name", "must be 1-64 chars of letters, digits, '_' '-'")
	}
	errs = append(errs, s.validatePlugin(RoleSource, 0)...)
	for i := range s.Processors {
		errs = append(errs, s.validatePlugin(RoleProcessor, i)...)
	}
	errs = append(errs, s.validatePlugin(RoleSink, 0)...)
	return errs
}

func (s *Spec) validatePlugin(role Role, i int) []error {
	ps, path := s.pluginAt(role, i)
	var errs []error
	add := func(key string, at Position, format string, a ...any) {
		errs = append(errs, &Problem{Key: key, Msg: fmt.Sprintf(format, a...), Position: at})
	}
	at := s.pos[path]
	if ps.Plugin == "" && role != RoleSource {
		if role == RoleSink && len(ps.Params) == 0 {
			add(path, at, "required: name a sink plugin (registered: %s)", registered(role))
		} else {
			add(path, at, "no plugin named (key %q; in SQL '%s')", "plugin", nameKeys[role][1])
		}
		return errs
	}
	info, ok := ResolvePlugin(role, ps.Plugin)
	if !ok {
		name, what := ps.Plugin, ""
		if name == "" {
			name, what = DefaultSource, " (the default)"
		}
		msg := fmt.Sprintf("unknown %s %q%s (registered: %s)", role, name, what, registered(role))
		if m := suggest(name, pluginNameList(role)); m != "" {
			msg += fmt.Sprintf("; did you mean %q?", m)
		}
		add(path, at, "%s", msg)
		return errs
	}
	given := map[string]string{} // canonical key → raw key
	for _, raw := range sortedKeys(ps.Params) {
		kat := s.pos[path+"."+raw]
		key := canonicalKey(role, info, raw)
		if key == "" {
			shown := stripPrefix(role, raw)
			msg := "unknown key (" + knownKeys(info) + ")"
			if m := suggest(shown, paramKeys(info)); m != "" {
				msg += fmt.Sprintf("; did you mean %q?", m)
			}
			add(path+"."+shown, kat, "%s", msg)
			continue
		}
		if prev, dup := given[key]; dup {
			add(path+"."+key, kat, "given twice (as %q and %q)", prev, raw)
			continue
		}
		given[key] = raw
		spec := paramSpec(info, key)
		if err := spec.CheckValue(ps.Params[raw]); err != nil {
			add(path+"."+key, kat, "%s", err.Error())
		}
	}
	for _, p := range info.Params {
		if _, ok := given[p.Key]; p.Required && !ok {
			add(path+"."+p.Key, at, "missing, required by %s %s", role, info.Name)
		}
	}
	if len(errs) == 0 && info.Validate != nil {
		params := map[string]string{} // as the plugin gets them: defaults filled in
		for _, p := range info.Params {
			if p.Default != "" {
				params[p.Key] = p.Default
			}
		}
		for key, raw := range given {
			params[key] = ps.Params[raw]
		}
		for _, err := range info.Validate(NewParams(params)) {
			var pr *Problem
			if !errors.As(err, &pr) || pr.Key == "" {
				add(path, at, "%s", err.Error())
				continue
			}
			kat := at
			if raw, ok := given[pr.Key]; ok {
				kat = s.pos[path+"."+raw]
			}
			add(path+"."+pr.Key, kat, "%s", pr.Msg)
		}
	}
	return errs
}

func registered(role Role) string {
	if n := pluginNames(role); n != "" {
		return n
	}
	return "none"
}

func pluginNameList(role Role) []string {
	var out []string
	for _, p := range Plugins(role) {
		out = append(out, p.Name)
		out = append(out, p.Aliases...)
	}
	return out
}

func paramSpec(info PluginInfo, key string) ParamSpec {
	for _, p := range info.Params {
		if p.Key == key {
			return p
		}
	}
	return ParamSpec{Key: key}
}

func paramKeys(info PluginInfo) []string {
	var out []string
	for _, p := range info.Params {
		out = append(out, p.Key)
	}
	return out
}

func knownKeys(info PluginInfo) string {
	if len(info.Params) == 0 {
		return fmt.Sprintf("%s %s takes no parameters", info.Role, info.Name)
	}
	return "known: " + strings.Join(paramKeys(info), ", ")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// suggest returns the candidate closest to s if it is close enough to be a typo.
func suggest(s string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if d <= max(1, min(len(c), len(s))/3) && (best == "" || d < bestD) {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ---------------------------------------------------------------- normalization

// Normalize validates the spec and returns a new one in canonical form: plugin names
// resolved to their registered names (aliases, IoTDB names and suffixes, the default
// source), parameter keys without IoTDB prefixes, and every declared default filled in.
// Two specs of the same pipe normalize to equal values (reflect.DeepEqual), whichever
// form they were written in. On failure the error joins every problem (see Problems).
func (s *Spec) Normalize() (*Spec, error) {
	if errs := s.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	n := &Spec{Name: s.Name}
	norm := func(role Role, i int) PluginSpec {
		info, _ := ResolvePlugin(role, s.pluginAtName(role, i))
		ps := PluginSpec{Plugin: info.Name, Params: s.ParamsOf(role, i).Map()}
		if len(ps.Params) == 0 {
			ps.Params = nil
		}
		return ps
	}
	n.Source = norm(RoleSource, 0)
	for i := range s.Processors {
		n.Processors = append(n.Processors, norm(RoleProcessor, i))
	}
	n.Sink = norm(RoleSink, 0)
	return n, nil
}

func (s *Spec) pluginAtName(role Role, i int) string {
	ps, _ := s.pluginAt(role, i)
	return ps.Plugin
}

// ParamsOf returns the parameters of the source, the i-th processor or the sink, keyed by
// their declared keys (IoTDB prefixes stripped) with defaults filled in. Meant for a
// validated spec; for an invalid one it returns what it can.
func (s *Spec) ParamsOf(role Role, i int) Params {
	ps, _ := s.pluginAt(role, i)
	info, known := ResolvePlugin(role, ps.Plugin)
	m := make(map[string]string, len(ps.Params)+len(info.Params))
	for _, raw := range sortedKeys(ps.Params) {
		key := stripPrefix(role, raw)
		if known {
			if k := canonicalKey(role, info, raw); k != "" {
				key = k
			}
		}
		if _, dup := m[key]; !dup || key == raw {
			m[key] = ps.Params[raw]
		}
	}
	for _, p := range info.Params {
		if _, ok := m[p.Key]; !ok && p.Default != "" {
			m[p.Key] = p.Default
		}
	}
	return NewParams(m)
}

// Clone returns a deep copy of the spec.
func (s *Spec) Clone() *Spec {
	c := &Spec{Name: s.Name, Source: s.Source.clone(), Sink: s.Sink.clone(), pos: s.pos}
	for _, p := range s.Processors {
		c.Processors = append(c.Processors, p.clone())
	}
	return c
}

func (p PluginSpec) clone() PluginSpec {
	c := PluginSpec{Plugin: p.Plugin}
	if p.Params != nil {
		c.Params = make(map[string]string, len(p.Params))
		for k, v := range p.Params {
			c.Params[k] = v
		}
	}
	return c
}

// ---------------------------------------------------------------- output

// JSON returns the spec as indented JSON in the struct's own shape (parameters nested
// under "params"), which ParseSpec reads back.
func (s *Spec) JSON() []byte {
	b, _ := json.MarshalIndent(s, "", "  ")
	return append(b, '\n')
}

// YAML returns the spec in the documented YAML form (plugin maps with their parameters
// as keys, sorted), which ParseSpec reads back to an equal spec. A source without plugin
// or parameters (the default source) is left out.
func (s *Spec) YAML() []byte {
	var b bytes.Buffer
	b.WriteString("name: " + yamlString(s.Name) + "\n")
	if s.Source.Plugin != "" || len(s.Source.Params) > 0 {
		b.WriteString("source:\n")
		writeYAMLPlugin(&b, RoleSource, s.Source, "  ", "  ")
	}
	if len(s.Processors) > 0 {
		b.WriteString("processors:\n")
		for _, p := range s.Processors {
			if len(p.Params) == 0 {
				b.WriteString("  - plugin: " + yamlString(p.Plugin) + "\n")
				continue
			}
			writeYAMLPlugin(&b, RoleProcessor, p, "  - ", "    ")
		}
	}
	if s.Sink.Plugin != "" || len(s.Sink.Params) > 0 {
		b.WriteString("sink:\n")
		writeYAMLPlugin(&b, RoleSink, s.Sink, "  ", "  ")
	}
	return b.Bytes()
}

func writeYAMLPlugin(b *bytes.Buffer, role Role, p PluginSpec, first, indent string) {
	lead := first
	line := func(k, v string) {
		if v == "" {
			b.WriteString(lead + yamlString(k) + ":\n")
		} else {
			b.WriteString(lead + yamlString(k) + ": " + v + "\n")
		}
		lead = indent
	}
	if p.Plugin != "" {
		line("plugin", yamlString(p.Plugin))
	} else if len(p.Params) == 0 {
		b.WriteString(first + "{}\n")
		return
	}
	nested := false
	for k := range p.Params {
		if isNameKey(role, k) || strings.EqualFold(k, paramsKey) {
			nested = true
		}
	}
	if nested {
		line(paramsKey, "")
		indent += "  "
		lead = indent
	}
	for _, k := range orderedKeys(role, p) {
		line(k, yamlString(p.Params[k]))
	}
}

// orderedKeys lists a plugin's parameter keys in the order the plugin declares them (when
// it is registered), then the others sorted.
func orderedKeys(role Role, p PluginSpec) []string {
	var keys []string
	if info, ok := ResolvePlugin(role, p.Plugin); ok && p.Plugin != "" {
		for _, ps := range info.Params {
			if _, given := p.Params[ps.Key]; given {
				keys = append(keys, ps.Key)
			}
		}
	}
	for _, k := range sortedKeys(p.Params) {
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

var plainYAML = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./*\-]*$`)

// yamlString writes s as a YAML scalar that reads back as s: plain when safe (numbers and
// booleans included, since ParseSpec keeps their text), otherwise double-quoted.
func yamlString(s string) string {
	switch s {
	case "null", "Null", "NULL":
	default:
		if plainYAML.MatchString(s) {
			return s
		}
	}
	return strconv.Quote(s)
}
