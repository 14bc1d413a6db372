package pipe

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// StmtKind is the kind of a pipe statement.
type StmtKind int

// Pipe statement kinds. SHOW PIPE name is ShowPipes with a Name.
const (
	CreatePipe StmtKind = iota + 1
	StartPipe
	StopPipe
	DropPipe
	ShowPipes
)

func (k StmtKind) String() string {
	switch k {
	case CreatePipe:
		return "create-pipe"
	case StartPipe:
		return "start-pipe"
	case StopPipe:
		return "stop-pipe"
	case DropPipe:
		return "drop-pipe"
	case ShowPipes:
		return "show-pipes"
	}
	return fmt.Sprintf("StmtKind(%d)", int(k))
}

// MarshalText writes the kind by name (for JSON).
func (k StmtKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Statement is one parsed pipe statement of IoTDB's SQL.
type Statement struct {
	Kind        StmtKind `json:"kind"`
	Name        string   `json:"name,omitempty"` // empty for SHOW PIPES
	IfNotExists bool     `json:"if_not_exists,omitempty"`
	IfExists    bool     `json:"if_exists,omitempty"`
	Spec        *Spec    `json:"spec,omitempty"` // CreatePipe only
}

// The grammar of pipe statements (participle). Keywords are matched case-insensitively
// and reserved: a pipe called "source" is written `source`.
type sqlInput struct {
	Stmt *sqlStmt `parser:"@@ ';'?"`
}

type sqlStmt struct {
	Create *sqlCreate `parser:"'CREATE' 'PIPE' @@"`
	Start  *sqlIdent  `parser:"| 'START' 'PIPE' @@"`
	Stop   *sqlIdent  `parser:"| 'STOP' 'PIPE' @@"`
	Drop   *sqlDrop   `parser:"| 'DROP' 'PIPE' @@"`
	Show   *sqlShow   `parser:"| 'SHOW' @@"`
}

type sqlCreate struct {
	IfNotExists bool         `parser:"@('IF' 'NOT' 'EXISTS')?"`
	Name        sqlIdent     `parser:"@@"`
	Clauses     []*sqlClause `parser:"@@*"`
}

type sqlDrop struct {
	IfExists bool     `parser:"@('IF' 'EXISTS')?"`
	Name     sqlIdent `parser:"@@"`
}

type sqlShow struct {
	All  bool      `parser:"@'PIPES'"`
	Name *sqlIdent `parser:"| 'PIPE' @@"`
}

type sqlIdent struct {
	Pos    lexer.Position
	Bare   string `parser:"(?! 'CREATE' | 'START' | 'STOP' | 'DROP' | 'SHOW' | 'PIPE' | 'PIPES' | 'IF' | 'NOT' | 'EXISTS' | 'WITH' | 'SOURCE' | 'EXTRACTOR' | 'PROCESSOR' | 'SINK' | 'CONNECTOR') @Ident"`
	Quoted string `parser:"| @QuotedIdent"`
}

type sqlClause struct {
	Pos   lexer.Position
	Kind  string     `parser:"'WITH' @('SOURCE' | 'EXTRACTOR' | 'PROCESSOR' | 'SINK' | 'CONNECTOR')"`
	Pairs []*sqlPair `parser:"'(' (@@ (',' @@)*)? ')'"`
}

type sqlPair struct {
	Pos   lexer.Position
	Key   string `parser:"@String"`
	Value string `parser:"'=' @String"`
}

var (
	sqlLexer = lexer.MustSimple([]lexer.SimpleRule{
		{Name: "Comment", Pattern: `--[^\n]*|/\*(?s:.*?)\*/`},
		{Name: "Whitespace", Pattern: `\s+`},
		{Name: "String", Pattern: `'(?:[^']|'')*'|"(?:[^"]|"")*"`},
		{Name: "QuotedIdent", Pattern: "`(?:[^`]|``)*`"},
		{Name: "Ident", Pattern: `[A-Za-z0-9_][A-Za-z0-9_\-]*`},
		{Name: "Punct", Pattern: `[(),;=]`},
	})
	sqlParser = participle.MustBuild[sqlInput](
		participle.Lexer(sqlLexer),
		participle.Elide("Comment", "Whitespace"),
		participle.CaseInsensitive("Ident"),
		// The grammar is LL(1): commit to a branch once it has matched a token, so that
		// an error is reported where it is, with what was expected there.
		participle.UseLookahead(0),
	)
)

// sqlUnquote removes a literal's quotes and undoes doubled quote characters.
func sqlUnquote(s string) string {
	if len(s) < 2 {
		return s
	}
	q := s[:1]
	return strings.ReplaceAll(s[1:len(s)-1], q+q, q)
}

func (id sqlIdent) name() string {
	if id.Quoted != "" {
		return sqlUnquote(id.Quoted)
	}
	return id.Bare
}

func lexPos(p lexer.Position) Position { return Position{Line: p.Line, Column: p.Column} }

// ParseSQL parses one pipe statement of IoTDB's SQL, with an optional trailing ';':
//
//	CREATE PIPE [IF NOT EXISTS] name
//	  [WITH SOURCE ('source'='hybrid', 'pattern'='root.demo.**', ...)]
//	  [WITH PROCESSOR ('processor'='do-nothing', ...)] ...
//	  WITH SINK ('sink'='write-back', 'database'='root.copy', ...)
//	START PIPE name | STOP PIPE name | DROP PIPE [IF EXISTS] name | SHOW PIPES | SHOW PIPE name
//
// EXTRACTOR is an alias of SOURCE and CONNECTOR of SINK; keywords are case-insensitive;
// literals are single- or double-quoted (a quote doubled inside stands for itself); names
// may be back-quoted; -- and /* */ are comments. In a clause the key 'source' or
// 'extractor' (SOURCE), 'processor' (PROCESSOR), 'sink' or 'connector' (SINK) names the
// plugin and every other pair is a parameter. Several PROCESSOR clauses run in order.
// A syntax error is a *SyntaxError with the line, column and what was expected; other
// problems (a clause or key given twice) are *Problems joined (see Problems). The spec of
// CREATE PIPE is not checked against the plugin registry: see Spec.Validate.
func ParseSQL(sql string) (*Statement, error) {
	st, probs, err := parseSQL(sql)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		return nil, errors.Join(probs...)
	}
	return st, nil
}

// CheckSQL parses a statement and, for CREATE PIPE, validates and normalizes its spec,
// returning the statement (with the normalized spec) or every problem found.
func CheckSQL(sql string) (*Statement, []error) {
	st, probs, err := parseSQL(sql)
	if err != nil {
		return nil, []error{err}
	}
	if st.Kind != CreatePipe {
		if len(probs) > 0 {
			return nil, probs
		}
		return st, nil
	}
	n, errs := check(st.Spec, probs)
	if len(errs) > 0 {
		return nil, errs
	}
	st.Spec = n
	return st, nil
}

func parseSQL(sql string) (*Statement, []error, error) {
	if !utf8.ValidString(sql) {
		return nil, nil, &SyntaxError{Msg: "statement is not valid UTF-8"}
	}
	in, err := sqlParser.ParseString("", sql)
	if err != nil {
		return nil, nil, sqlSyntaxError(sql, err)
	}
	s := in.Stmt
	switch {
	case s.Start != nil:
		return &Statement{Kind: StartPipe, Name: s.Start.name()}, nil, nil
	case s.Stop != nil:
		return &Statement{Kind: StopPipe, Name: s.Stop.name()}, nil, nil
	case s.Drop != nil:
		return &Statement{Kind: DropPipe, Name: s.Drop.Name.name(), IfExists: s.Drop.IfExists}, nil, nil
	case s.Show != nil:
		st := &Statement{Kind: ShowPipes}
		if s.Show.Name != nil {
			st.Name = s.Show.Name.name()
		}
		return st, nil, nil
	}
	c := s.Create
	spec := &Spec{Name: c.Name.name(), pos: map[string]Position{"name": lexPos(c.Name.Pos)}}
	var probs []error
	problem := func(key string, at lexer.Position, format string, a ...any) {
		probs = append(probs, &Problem{Key: key, Msg: fmt.Sprintf(format, a...), Position: lexPos(at)})
	}
	var haveSource, haveSink bool
	for _, cl := range c.Clauses {
		var role Role
		var path string
		switch strings.ToUpper(cl.Kind) {
		case "SOURCE", "EXTRACTOR":
			role, path = RoleSource, "source"
			if haveSource {
				problem(path, cl.Pos, "WITH SOURCE given twice")
				continue
			}
			haveSource = true
		case "SINK", "CONNECTOR":
			role, path = RoleSink, "sink"
			if haveSink {
				problem(path, cl.Pos, "WITH SINK given twice")
				continue
			}
			haveSink = true
		default:
			role, path = RoleProcessor, fmt.Sprintf("processors[%d]", len(spec.Processors))
		}
		var ps PluginSpec
		spec.pos[path] = lexPos(cl.Pos)
		named := ""
		for _, p := range cl.Pairs {
			k, v := sqlUnquote(p.Key), sqlUnquote(p.Value)
			if isNameKey(role, k) {
				if named != "" {
					problem(path, p.Pos, "plugin named twice (by '%s' and '%s')", named, k)
					continue
				}
				named, ps.Plugin = k, v
				spec.pos[path] = lexPos(p.Pos)
				continue
			}
			if k == "" {
				problem(path, p.Pos, "empty key")
				continue
			}
			if _, dup := ps.Params[k]; dup {
				problem(path+"."+k, p.Pos, "given twice")
				continue
			}
			if ps.Params == nil {
				ps.Params = map[string]string{}
			}
			ps.Params[k] = v
			spec.pos[path+"."+k] = lexPos(p.Pos)
		}
		switch role {
		case RoleSource:
			spec.Source = ps
		case RoleSink:
			spec.Sink = ps
		default:
			spec.Processors = append(spec.Processors, ps)
		}
	}
	return &Statement{Kind: CreatePipe, Name: spec.Name, IfNotExists: c.IfNotExists, Spec: spec}, probs, nil
}

// expectations rewrites participle's grammar-speak in "expected ..." into words.
var expectations = strings.NewReplacer(
	`("SOURCE" | "EXTRACTOR" | "PROCESSOR" | "SINK" | "CONNECTOR") "(" (SqlPair ("," SqlPair)*)? ")"`, `SOURCE, EXTRACTOR, PROCESSOR, SINK or CONNECTOR`,
	`"(" (SqlPair ("," SqlPair)*)? ")"`, `"("`,
	`"PIPE" SqlCreate`, `PIPE`,
	`SqlCreate`, `[IF NOT EXISTS] name`,
	`SqlShow`, `PIPES or PIPE name`,
	`SqlPair`, `'key'='value'`,
	`SqlIdent`, `a pipe name`,
	`"=" <string>`, `"="`,
	`<string>`, `a quoted string`,
	`<ident>`, `a pipe name`,
)

// sqlSyntaxError turns a participle error into a SyntaxError that says what was expected.
func sqlSyntaxError(sql string, err error) *SyntaxError {
	var pe participle.Error
	if !errors.As(err, &pe) {
		return &SyntaxError{Msg: err.Error()}
	}
	at := lexPos(pe.Position())
	var ute *participle.UnexpectedTokenError
	if !errors.As(err, &ute) {
		msg := pe.Message()
		if text, ok := strings.CutPrefix(msg, "lexer: invalid input text "); ok {
			text, _ = strconv.Unquote(text)
			switch {
			case strings.HasPrefix(text, "'"), strings.HasPrefix(text, `"`):
				msg = "unterminated string"
			case strings.HasPrefix(text, "`"):
				msg = "unterminated quoted name"
			case strings.HasPrefix(text, "/*"):
				msg = "unterminated comment"
			default:
				r, _ := utf8.DecodeRuneInString(text)
				msg = fmt.Sprintf("unexpected character %q", r)
			}
		}
		return &SyntaxError{Position: at, Msg: msg}
	}
	tok := ute.Unexpected
	what := fmt.Sprintf("unexpected %q", tok.Value)
	if tok.EOF() {
		what = "unexpected end of input"
	}
	msg := ute.Message()
	if i := strings.Index(msg, " (expected "); i >= 0 {
		return &SyntaxError{Position: at, Msg: what + " (expected " + expectations.Replace(strings.TrimSuffix(msg[i+len(" (expected "):], ")")) + ")"}
	}
	// No expectation: the token is where a statement starts, a name that is a keyword,
	// or a token after a complete statement.
	var prev []string
	if toks, lerr := sqlLexer.LexString("", sql); lerr == nil {
		for {
			t, e := toks.Next()
			if e != nil || t.EOF() || t.Pos.Offset >= tok.Pos.Offset {
				break
			}
			if strings.TrimSpace(t.Value) != "" && !strings.HasPrefix(t.Value, "--") && !strings.HasPrefix(t.Value, "/*") {
				prev = append(prev, strings.ToUpper(t.Value))
			}
		}
	}
	last := ""
	if len(prev) > 0 {
		last = prev[len(prev)-1]
	}
	switch {
	case len(prev) == 0:
		return &SyntaxError{Position: at, Msg: what + " (expected CREATE PIPE, START PIPE, STOP PIPE, DROP PIPE or SHOW PIPES)"}
	case sqlKeywords[strings.ToUpper(tok.Value)] && (last == "PIPE" || last == "EXISTS"):
		return &SyntaxError{Position: at, Msg: fmt.Sprintf("%s (expected a pipe name; a name that is a keyword is written `%s`)", what, tok.Value)}
	case last == ";":
		return &SyntaxError{Position: at, Msg: what + " (expected the end: one statement at a time)"}
	case prev[0] == "CREATE":
		return &SyntaxError{Position: at, Msg: what + ` (expected WITH, ";" or the end)`}
	}
	return &SyntaxError{Position: at, Msg: what + ` (expected ";" or the end)`}
}

// sqlKeywords are the words a bare name must not be, to read back unambiguously.
var sqlKeywords = map[string]bool{
	"CREATE": true, "START": true, "STOP": true, "DROP": true, "SHOW": true, "PIPE": true, "PIPES": true,
	"IF": true, "NOT": true, "EXISTS": true, "WITH": true, "SOURCE": true, "EXTRACTOR": true,
	"PROCESSOR": true, "SINK": true, "CONNECTOR": true,
}

var bareIdent = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_\-]*$`)

func sqlName(s string) string {
	if bareIdent.MatchString(s) && !sqlKeywords[strings.ToUpper(s)] {
		return s
	}
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// String returns the statement as SQL that ParseSQL reads back to an equal statement.
func (st *Statement) String() string {
	switch st.Kind {
	case CreatePipe:
		spec := st.Spec
		if spec == nil {
			spec = &Spec{Name: st.Name}
		}
		return spec.sql(st.Name, st.IfNotExists)
	case StartPipe:
		return "START PIPE " + sqlName(st.Name)
	case StopPipe:
		return "STOP PIPE " + sqlName(st.Name)
	case DropPipe:
		if st.IfExists {
			return "DROP PIPE IF EXISTS " + sqlName(st.Name)
		}
		return "DROP PIPE " + sqlName(st.Name)
	case ShowPipes:
		if st.Name != "" {
			return "SHOW PIPE " + sqlName(st.Name)
		}
		return "SHOW PIPES"
	}
	return fmt.Sprintf("-- unknown statement kind %d", int(st.Kind))
}

// MarshalJSON writes the statement with its SQL text.
func (st *Statement) MarshalJSON() ([]byte, error) {
	type plain Statement
	return json.Marshal(struct {
		*plain
		SQL string `json:"sql"`
	}{(*plain)(st), st.String()})
}

// SQL returns the spec as an IoTDB CREATE PIPE statement (on one line) that ParseSQL reads
// back to an equal spec. A source without plugin or parameters is left out.
func (s *Spec) SQL() string { return s.sql(s.Name, false) }

func (s *Spec) sql(name string, ifNotExists bool) string {
	var b strings.Builder
	b.WriteString("CREATE PIPE ")
	if ifNotExists {
		b.WriteString("IF NOT EXISTS ")
	}
	b.WriteString(sqlName(name))
	clause := func(kw string, role Role, p PluginSpec) {
		b.WriteString(" WITH " + kw + " (")
		var pairs []string
		if p.Plugin != "" {
			pairs = append(pairs, sqlString(nameKeys[role][1])+"="+sqlString(p.Plugin))
		}
		for _, k := range sortedKeys(p.Params) {
			key := k
			if isNameKey(role, k) {
				// A parameter called like the plugin key: its IoTDB prefix keeps it a parameter.
				key = keyPrefixes[role][0] + k
			}
			pairs = append(pairs, sqlString(key)+"="+sqlString(p.Params[k]))
		}
		b.WriteString(strings.Join(pairs, ", ") + ")")
	}
	if s.Source.Plugin != "" || len(s.Source.Params) > 0 {
		clause("SOURCE", RoleSource, s.Source)
	}
	for _, p := range s.Processors {
		clause("PROCESSOR", RoleProcessor, p)
	}
	if s.Sink.Plugin != "" || len(s.Sink.Params) > 0 {
		clause("SINK", RoleSink, s.Sink)
	}
	return b.String()
}
