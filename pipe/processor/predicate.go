package processor

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/pipe"
	"github.com/weir-dev/weir/tsfile"
)

// Predicate is a compiled value predicate over a tablet's rows, such as
//
//	temp > 80 and (state != "off" or not ok = true)
//
// Comparisons are =, ==, !=, <>, <, <=, >, >= between a measurement (a name; `quoted` when
// it is not a plain word), the row's time (time), and constants: numbers, strings ("x" or
// 'x') and true/false. They combine with and, or, not (also &&, ||, !) and parentheses.
// Every comparison names a measurement or time; a measurement is compared with one kind of
// value only (numbers, strings or booleans); booleans compare with = and != only; time
// compares with numbers or RFC 3339 times in quotes (unix milliseconds).
//
// A row's comparison with a null (or absent) measurement is unknown; and, or and not
// follow SQL's three-valued logic, and a row is kept only when the predicate is true.
type Predicate struct {
	src   string
	root  pnode
	kinds map[string]valueKind // measurement → what it is compared with
}

type valueKind uint8

const (
	kindNone valueKind = iota
	kindNumber
	kindText
	kindBool
)

func (k valueKind) String() string {
	return [...]string{"nothing", "a number", "a string", "a boolean"}[k]
}

func kindOf(t tsfile.DataType) valueKind {
	switch t {
	case tsfile.Boolean:
		return kindBool
	case tsfile.Text:
		return kindText
	case tsfile.Int32, tsfile.Int64, tsfile.Float, tsfile.Double:
		return kindNumber
	}
	return kindNone
}

// The grammar (participle).
var predLexer = lexer.MustSimple([]lexer.SimpleRule{
	{Name: "whitespace", Pattern: `\s+`},
	{Name: "Number", Pattern: `[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?`},
	{Name: "String", Pattern: `"(\\.|[^"\\])*"|'(''|[^'])*'`},
	{Name: "Quoted", Pattern: "`[^`]*`"},
	{Name: "Word", Pattern: `[A-Za-z_][A-Za-z0-9_-]*`},
	{Name: "Op", Pattern: `&&|\|\||[<>=!~]+`},
	{Name: "Punct", Pattern: `[()]`},
})

type pExpr struct {
	Terms []*pAnd `parser:"@@ ( ( 'or' | '||' ) @@ )*"`
}

type pAnd struct {
	Factors []*pUnary `parser:"@@ ( ( 'and' | '&&' ) @@ )*"`
}

type pUnary struct {
	Not   *pUnary `parser:"  ( 'not' | '!' ) @@"`
	Group *pExpr  `parser:"| '(' @@ ')'"`
	Cmp   *pCmp   `parser:"| @@"`
}

type pCmp struct {
	Left  *pOperand `parser:"@@"`
	Op    *pOp      `parser:"@@"`
	Right *pOperand `parser:"@@"`
}

type pOp struct {
	Pos  lexer.Position
	Text string `parser:"@Op"`
}

type pOperand struct {
	Pos    lexer.Position
	Number *string `parser:"  @Number"`
	String *string `parser:"| @String"`
	Quoted *string `parser:"| @Quoted"`
	Word   *string `parser:"| @Word"`
}

var predParser = participle.MustBuild[pExpr](
	participle.Lexer(predLexer),
	participle.CaseInsensitive("Word"),
	participle.UseLookahead(2),
)

// comparison operators → compute function names
var cmpFuncs = map[string]string{
	"=": "equal", "==": "equal", "!=": "not_equal", "<>": "not_equal",
	"<": "less", "<=": "less_equal", ">": "greater", ">=": "greater_equal",
}

// swapped gives the operator with its operands exchanged (3 < temp is temp > 3).
var swapped = map[string]string{
	"equal": "equal", "not_equal": "not_equal",
	"less": "greater", "less_equal": "greater_equal", "greater": "less", "greater_equal": "less_equal",
}

// negated gives the comparison that is true exactly when the operator is false (on
// non-null values): not pushes down to the comparisons, nulls stay unknown.
var negated = map[string]string{
	"equal": "not_equal", "not_equal": "equal",
	"less": "greater_equal", "less_equal": "greater", "greater": "less_equal", "greater_equal": "less",
}

type pnode interface{}

type andNode struct{ l, r pnode }
type orNode struct{ l, r pnode }

// cmpNode compares a measurement (or time) with a constant, or two measurements.
type cmpNode struct {
	fn    string // compute function: equal, less, ...
	left  string // measurement name, or "time"
	right string // measurement name when rhs is a column
	c     constant
	isCol bool // right is a measurement (or time)
}

type constant struct {
	kind  valueKind
	num   float64
	isInt bool
	i     int64
	str   string
	b     bool
}

// operand is a parsed operand: a column (measurement or time) or a constant.
type operand struct {
	col   string
	isCol bool
	c     constant
	pos   lexer.Position
}

// ParsePredicate parses and checks a predicate; errors name the column of the problem.
func ParsePredicate(s string) (*Predicate, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty predicate")
	}
	ast, err := predParser.ParseString("", s)
	if err != nil {
		return nil, predSyntaxError(err)
	}
	p := &Predicate{src: s, kinds: map[string]valueKind{}}
	c := &checker{p: p, parent: map[string]string{}, kind: map[string]valueKind{}}
	root, err := c.expr(ast, false)
	if err != nil {
		return nil, err
	}
	c.finish(root)
	p.root = root
	return p, nil
}

func predSyntaxError(err error) error {
	var perr participle.Error
	if errors.As(err, &perr) {
		msg := perr.Message()
		msg = strings.Replace(msg, "unexpected token \"<EOF>\"", "unexpected end of predicate", 1)
		msg = strings.Replace(msg, "POperand", "a measurement, time or a constant", 1)
		return fmt.Errorf("column %d: %s", perr.Position().Column, msg)
	}
	return err
}

// checker builds the tree and unifies the kinds of measurements compared with each other.
type checker struct {
	p      *Predicate
	parent map[string]string    // union-find over measurements compared with each other
	kind   map[string]valueKind // root → kind
	where  map[string]string    // root → description of where its kind came from
}

func (c *checker) find(m string) string {
	for c.parent[m] != "" && c.parent[m] != m {
		m = c.parent[m]
	}
	return m
}

func (c *checker) constrain(m string, k valueKind, at lexer.Position) error {
	if k == kindNone {
		return nil
	}
	r := c.find(m)
	if c.where == nil {
		c.where = map[string]string{}
	}
	switch old := c.kind[r]; {
	case old == kindNone:
		c.kind[r] = k
		c.where[r] = fmt.Sprintf("%s at column %d", k, at.Column)
	case old != k:
		return fmt.Errorf("column %d: %s is compared with %s and with %s: a measurement has one type", at.Column, quoteName(m), c.where[r], k)
	}
	return nil
}

func (c *checker) union(a, b string, at lexer.Position) error {
	ra, rb := c.find(a), c.find(b)
	if ra == rb {
		return nil
	}
	if c.parent[ra] == "" {
		c.parent[ra] = ra
	}
	c.parent[rb] = ra
	if k := c.kind[rb]; k != kindNone {
		delete(c.kind, rb)
		return c.constrain(ra, k, at)
	}
	return nil
}

// finish records the kind of every measurement the tree reads.
func (c *checker) finish(root pnode) {
	var walk func(n pnode)
	walk = func(n pnode) {
		switch x := n.(type) {
		case *andNode:
			walk(x.l)
			walk(x.r)
		case *orNode:
			walk(x.l)
			walk(x.r)
		case *cmpNode:
			if x.left != "time" {
				c.p.kinds[x.left] = c.kind[c.find(x.left)]
			}
			if x.isCol && x.right != "time" {
				c.p.kinds[x.right] = c.kind[c.find(x.right)]
			}
		}
	}
	walk(root)
}

// expr converts the AST; neg pushes a not down (De Morgan; comparisons negated).
func (c *checker) expr(e *pExpr, neg bool) (pnode, error) {
	var out pnode
	for _, t := range e.Terms {
		n, err := c.and(t, neg)
		if err != nil {
			return nil, err
		}
		switch {
		case out == nil:
			out = n
		case neg:
			out = &andNode{out, n}
		default:
			out = &orNode{out, n}
		}
	}
	return out, nil
}

func (c *checker) and(e *pAnd, neg bool) (pnode, error) {
	var out pnode
	for _, f := range e.Factors {
		n, err := c.unary(f, neg)
		if err != nil {
			return nil, err
		}
		switch {
		case out == nil:
			out = n
		case neg:
			out = &orNode{out, n}
		default:
			out = &andNode{out, n}
		}
	}
	return out, nil
}

func (c *checker) unary(u *pUnary, neg bool) (pnode, error) {
	switch {
	case u.Not != nil:
		return c.unary(u.Not, !neg)
	case u.Group != nil:
		return c.expr(u.Group, neg)
	}
	return c.cmp(u.Cmp, neg)
}

func (c *checker) cmp(x *pCmp, neg bool) (pnode, error) {
	fn, ok := cmpFuncs[x.Op.Text]
	if !ok {
		return nil, fmt.Errorf("column %d: unknown operator %q (use =, !=, <, <=, >, >=)", x.Op.Pos.Column, x.Op.Text)
	}
	l, err := c.operand(x.Left)
	if err != nil {
		return nil, err
	}
	r, err := c.operand(x.Right)
	if err != nil {
		return nil, err
	}
	if !l.isCol && !r.isCol {
		return nil, fmt.Errorf("column %d: compares two constants: name a measurement or time", x.Left.Pos.Column)
	}
	if !l.isCol {
		l, r = r, l
		fn = swapped[fn]
	}
	ordering := fn != "equal" && fn != "not_equal"
	if neg {
		fn = negated[fn]
	}
	n := &cmpNode{fn: fn, left: l.col}
	if r.isCol {
		n.isCol, n.right = true, r.col
		switch {
		case l.col == "time" && r.col == "time":
		case l.col == "time" || r.col == "time":
			m := l.col
			if m == "time" {
				m = r.col
			}
			if err := c.constrain(m, kindNumber, x.Op.Pos); err != nil {
				return nil, err
			}
		default:
			if err := c.union(l.col, r.col, x.Op.Pos); err != nil {
				return nil, err
			}
		}
		return n, nil
	}
	k := r.c
	if k.kind == kindBool && ordering {
		return nil, fmt.Errorf("column %d: booleans compare only with = and !=", x.Op.Pos.Column)
	}
	if l.col == "time" {
		switch k.kind {
		case kindNumber:
		case kindText:
			ms, err := pipe.ParseTime(k.str)
			if err != nil {
				return nil, fmt.Errorf("column %d: time compares with numbers or RFC 3339 times: %w", r.pos.Column, err)
			}
			k = constant{kind: kindNumber, num: float64(ms), isInt: true, i: ms}
		default:
			return nil, fmt.Errorf("column %d: time compares with numbers or RFC 3339 times, not %s", r.pos.Column, k.kind)
		}
	} else if err := c.constrain(l.col, k.kind, r.pos); err != nil {
		return nil, err
	}
	n.c = k
	return n, nil
}

func (c *checker) operand(o *pOperand) (operand, error) {
	out := operand{pos: o.Pos}
	switch {
	case o.Number != nil:
		f, err := strconv.ParseFloat(*o.Number, 64)
		if err != nil || math.IsInf(f, 0) {
			return out, fmt.Errorf("column %d: %q is not a finite number", o.Pos.Column, *o.Number)
		}
		out.c = constant{kind: kindNumber, num: f}
		if i, err := strconv.ParseInt(*o.Number, 10, 64); err == nil {
			out.c.isInt, out.c.i = true, i
		}
	case o.String != nil:
		s := *o.String
		if s[0] == '\'' {
			s = strings.ReplaceAll(s[1:len(s)-1], "''", "'")
		} else {
			var err error
			if s, err = strconv.Unquote(s); err != nil {
				return out, fmt.Errorf("column %d: bad string %s: %w", o.Pos.Column, *o.String, err)
			}
		}
		out.c = constant{kind: kindText, str: s}
	case o.Word != nil && (strings.EqualFold(*o.Word, "true") || strings.EqualFold(*o.Word, "false")):
		out.c = constant{kind: kindBool, b: strings.EqualFold(*o.Word, "true")}
	default:
		name := ""
		if o.Word != nil {
			name = *o.Word
			if strings.EqualFold(name, "time") {
				name = "time"
			}
		} else {
			name = strings.Trim(*o.Quoted, "`")
		}
		if name != "time" {
			if err := tsfile.ValidateMeasurement(name); err != nil {
				return out, fmt.Errorf("column %d: %w", o.Pos.Column, err)
			}
		}
		out.col, out.isCol = name, true
	}
	return out, nil
}

func quoteName(m string) string { return "measurement " + strconv.Quote(m) }

// String returns the predicate as written.
func (p *Predicate) String() string { return p.src }

// Measurements returns the measurements the predicate reads, sorted.
func (p *Predicate) Measurements() []string {
	out := make([]string, 0, len(p.kinds))
	for m := range p.kinds {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// CheckTypes checks the predicate against known measurement types (a database's schema):
// a measurement compared with values of another kind is an error. Measurements the schema
// does not hold are not checked.
func (p *Predicate) CheckTypes(types map[string]tsfile.DataType) error {
	for _, m := range p.Measurements() {
		t, ok := types[m]
		if !ok {
			continue
		}
		if want := p.kinds[m]; want != kindNone && kindOf(t) != want {
			return fmt.Errorf("%s is %s, the predicate compares it with %s", quoteName(m), t, want)
		}
	}
	return nil
}

// The result of a predicate on a row: false, true, or unknown (a null was compared).
const (
	triFalse   uint8 = 0
	triTrue    uint8 = 1
	triUnknown uint8 = 2
)

// Eval evaluates the predicate on t's rows: a boolean array of t.Rows() values, null where
// unknown. The caller releases it.
func (p *Predicate) Eval(t *tsfile.Tablet) (arrow.Array, error) {
	m, err := p.mask(t)
	if err != nil {
		return nil, err
	}
	b := array.NewBooleanBuilder(memory.DefaultAllocator)
	defer b.Release()
	vals, valid := make([]bool, len(m)), make([]bool, len(m))
	for i, x := range m {
		vals[i], valid[i] = x == triTrue, x != triUnknown
	}
	b.AppendValues(vals, valid)
	return b.NewArray(), nil
}

// mask evaluates the predicate on t's rows with typed loops, one tri-state value per row.
// (The compute kernels would do the same with a dispatch cost of some 13µs a call, more
// than the loop itself on a tablet of a thousand rows.)
func (p *Predicate) mask(t *tsfile.Tablet) ([]uint8, error) {
	out := make([]uint8, t.Rows())
	if err := p.eval(p.root, t, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (p *Predicate) eval(n pnode, t *tsfile.Tablet, out []uint8) error {
	switch x := n.(type) {
	case *andNode:
		return p.combine(x.l, x.r, t, out, true)
	case *orNode:
		return p.combine(x.l, x.r, t, out, false)
	case *cmpNode:
		return p.evalCmp(x, t, out)
	}
	return fmt.Errorf("predicate: unknown node %T", n)
}

// combine evaluates l and r and joins them with SQL's and (or) into out.
func (p *Predicate) combine(l, r pnode, t *tsfile.Tablet, out []uint8, and bool) error {
	if err := p.eval(l, t, out); err != nil {
		return err
	}
	rm := make([]uint8, len(out))
	if err := p.eval(r, t, rm); err != nil {
		return err
	}
	for i, a := range out {
		out[i] = join(a, rm[i], and)
	}
	return nil
}

// join is SQL's three-valued and (or).
func join(a, b uint8, and bool) uint8 {
	dominant, other := triFalse, triTrue // and: false wins; or: true wins
	if !and {
		dominant, other = triTrue, triFalse
	}
	switch {
	case a == dominant || b == dominant:
		return dominant
	case a == other && b == other:
		return other
	}
	return triUnknown
}

func (p *Predicate) column(t *tsfile.Tablet, name string) (arrow.Array, error) {
	if name == "time" {
		return t.Rec.Column(0), nil
	}
	idx := t.Rec.Schema().FieldIndices(name)
	if len(idx) == 0 {
		return nil, nil
	}
	col := t.Rec.Column(idx[0])
	dt, err := tsfile.FromArrow(col.DataType())
	if err != nil {
		return nil, fmt.Errorf("%s of %s: %w", quoteName(name), t.Device, err)
	}
	if want := p.kinds[name]; want != kindNone && kindOf(dt) != want {
		return nil, fmt.Errorf("%s of %s is %s, the predicate compares it with %s", quoteName(name), t.Device, dt, want)
	}
	return col, nil
}

// comparison operators: result of the operator for a three-way comparison -1, 0, 1
var opTable = map[string][3]bool{
	"equal":         {false, true, false},
	"not_equal":     {true, false, true},
	"less":          {true, false, false},
	"less_equal":    {true, true, false},
	"greater":       {false, false, true},
	"greater_equal": {false, true, true},
}

func (p *Predicate) evalCmp(n *cmpNode, t *tsfile.Tablet, out []uint8) error {
	l, err := p.column(t, n.left)
	if err != nil {
		return err
	}
	var r arrow.Array
	if n.isCol {
		if r, err = p.column(t, n.right); err != nil {
			return err
		}
	}
	if l == nil || (n.isCol && r == nil) {
		for i := range out {
			out[i] = triUnknown
		}
		return nil
	}
	op := opTable[n.fn]
	if n.isCol {
		lc, _ := newColumn(l)
		rc, _ := newColumn(r)
		for i := range out {
			if l.IsNull(i) || r.IsNull(i) {
				out[i] = triUnknown
				continue
			}
			out[i] = tri(op[compareCells(&lc, &rc, i)+1])
		}
		return nil
	}
	compareConst(l, n.c, op, out)
	return nil
}

func tri(b bool) uint8 {
	if b {
		return triTrue
	}
	return triFalse
}

// compareCells compares row i of two columns of the same kind: integers exactly, other
// numbers as float64, strings bytewise, booleans by equality (0 or 1).
func compareCells(a, b *column, i int) int {
	switch {
	case a.str != nil:
		return strings.Compare(a.str.Value(i), b.str.Value(i))
	case a.bl != nil:
		if a.bl.Value(i) == b.bl.Value(i) {
			return 0
		}
		return 1
	}
	av, ax := a.at(i)
	bv, bx := b.at(i)
	if (a.i32 != nil || a.i64 != nil) && (b.i32 != nil || b.i64 != nil) {
		return cmpOrdered(av.I, bv.I)
	}
	return cmpOrdered(ax, bx)
}

func cmpOrdered[T int64 | float64 | string](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareConst compares a column with a constant of its kind into out.
func compareConst(col arrow.Array, c constant, op [3]bool, out []uint8) {
	res := [3]uint8{tri(op[0]), tri(op[1]), tri(op[2])} // by three-way comparison + 1
	switch a := col.(type) {
	case *array.Int32:
		if c.isInt {
			cmpInts(a, a.Int32Values(), c.i, res, out)
		} else {
			cmpFloats(a, a.Int32Values(), c.num, res, out)
		}
	case *array.Int64:
		if c.isInt {
			cmpInts(a, a.Int64Values(), c.i, res, out)
		} else {
			cmpFloats(a, a.Int64Values(), c.num, res, out)
		}
	case *array.Float32:
		cmpFloats(a, a.Float32Values(), c.num, res, out)
	case *array.Float64:
		cmpFloats(a, a.Float64Values(), c.num, res, out)
	case *array.String:
		for i := range out {
			if a.IsNull(i) {
				out[i] = triUnknown
			} else {
				out[i] = res[strings.Compare(a.Value(i), c.str)+1]
			}
		}
	case *array.Boolean:
		bits, off := a.Data().Buffers()[1].Bytes(), a.Data().Offset()
		want := uint8(0)
		if c.b {
			want = 1
		}
		eq, ne := res[1], res[2]
		for i := range out {
			j := off + i
			if bits[j>>3]>>(j&7)&1 == want {
				out[i] = eq
			} else {
				out[i] = ne
			}
		}
		if a.NullN() > 0 {
			for i := range out {
				if a.IsNull(i) {
					out[i] = triUnknown
				}
			}
		}
	}
}

// cmpInts sets out[i] to res[cmpOrdered(int64(vals[i]), c)+1] (triUnknown for nulls).
func cmpInts[T int32 | int64](a arrow.Array, vals []T, c int64, res [3]uint8, out []uint8) {
	out = out[:len(vals)]
	for i, v := range vals {
		x, k := int64(v), 1
		if x < c {
			k = 0
		} else if x > c {
			k = 2
		}
		out[i] = res[k]
	}
	nullsUnknown(a, out)
}

// cmpFloats sets out[i] to res[cmpOrdered(float64(vals[i]), c)+1] (triUnknown for nulls).
func cmpFloats[T int32 | int64 | float32 | float64](a arrow.Array, vals []T, c float64, res [3]uint8, out []uint8) {
	out = out[:len(vals)]
	for i, v := range vals {
		x, k := float64(v), 1
		if x < c {
			k = 0
		} else if x > c {
			k = 2
		}
		out[i] = res[k]
	}
	nullsUnknown(a, out)
}

// nullsUnknown sets out to triUnknown where a is null.
func nullsUnknown(a arrow.Array, out []uint8) {
	if a.NullN() == 0 {
		return
	}
	for i := range out {
		if a.IsNull(i) {
			out[i] = triUnknown
		}
	}
}
