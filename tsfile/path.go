package tsfile

import (
	"fmt"
	"strings"
)

// MaxPathLength bounds a device path, in bytes.
const MaxPathLength = 1024

// validNode reports whether s is a legal path node: letters, digits, '_' and '-',
// not empty, and not a wildcard.
func validNode(s string) error {
	if s == "" {
		return fmt.Errorf("empty node")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			continue
		}
		return fmt.Errorf("node %q: character %q not allowed (letters, digits, '_' and '-' only)", s, c)
	}
	return nil
}

// ValidateDevice checks a device path such as root.factory.line1.press3: it starts with
// "root", has at least one more node, and every node is letters, digits, '_' or '-'.
func ValidateDevice(device string) error {
	if len(device) > MaxPathLength {
		return fmt.Errorf("device path longer than %d bytes", MaxPathLength)
	}
	nodes := strings.Split(device, ".")
	if nodes[0] != "root" {
		return fmt.Errorf("device %q: path must start with \"root.\"", device)
	}
	if len(nodes) < 2 {
		return fmt.Errorf("device %q: path needs at least one node after root", device)
	}
	for _, n := range nodes[1:] {
		if err := validNode(n); err != nil {
			return fmt.Errorf("device %q: %w", device, err)
		}
	}
	return nil
}

// ValidateMeasurement checks a measurement name: one path node, not "time" or "device"
// (the TsFile's own columns).
func ValidateMeasurement(name string) error {
	if err := validNode(name); err != nil {
		return fmt.Errorf("measurement %q: %w", name, err)
	}
	if name == "time" || name == "device" {
		return fmt.Errorf("measurement %q: name is reserved", name)
	}
	return nil
}

// Database returns the first two nodes of a device path (root.db), the database that holds it.
func Database(device string) string {
	i := strings.IndexByte(device, '.')
	if i < 0 {
		return device
	}
	j := strings.IndexByte(device[i+1:], '.')
	if j < 0 {
		return device
	}
	return device[:i+1+j]
}

// Pattern is an IoTDB path pattern: `*` matches exactly one node, `**` one or more nodes.
// A pattern selects a series device.measurement when it matches the series path, or when it
// matches the device path itself (naming a device selects all its measurements).
type Pattern struct {
	raw   string
	nodes []string
}

// AllPattern matches every series.
var AllPattern = MustPattern("root.**")

// ParsePattern parses and validates a pattern such as root.factory.*.press3 or root.factory.**.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return Pattern{}, fmt.Errorf("empty path pattern")
	}
	if len(s) > MaxPathLength {
		return Pattern{}, fmt.Errorf("pattern longer than %d bytes", MaxPathLength)
	}
	nodes := strings.Split(s, ".")
	if nodes[0] != "root" {
		return Pattern{}, fmt.Errorf("pattern %q: must start with \"root\"", s)
	}
	for _, n := range nodes[1:] {
		if n == "*" || n == "**" {
			continue
		}
		if err := validNode(n); err != nil {
			return Pattern{}, fmt.Errorf("pattern %q: %w", s, err)
		}
	}
	return Pattern{raw: s, nodes: nodes}, nil
}

// MustPattern is ParsePattern that panics on error, for constants.
func MustPattern(s string) Pattern {
	p, err := ParsePattern(s)
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern text.
func (p Pattern) String() string { return p.raw }

// IsZero reports whether p is the zero Pattern.
func (p Pattern) IsZero() bool { return p.nodes == nil }

// MarshalText encodes the pattern as text.
func (p Pattern) MarshalText() ([]byte, error) { return []byte(p.raw), nil }

// UnmarshalText parses the pattern.
func (p *Pattern) UnmarshalText(b []byte) error {
	v, err := ParsePattern(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Match reports whether p selects measurement m of device.
func (p Pattern) Match(device, m string) bool {
	if p.nodes == nil {
		return true
	}
	dn := strings.Split(device, ".")
	if matchNodes(p.nodes, dn) {
		return true
	}
	return matchNodes(p.nodes, append(dn, m))
}

// MatchDevice reports whether p selects every measurement of device.
func (p Pattern) MatchDevice(device string) bool {
	if p.nodes == nil {
		return true
	}
	dn := strings.Split(device, ".")
	if matchNodes(p.nodes, dn) {
		return true
	}
	n := len(p.nodes)
	switch p.nodes[n-1] {
	case "*":
		return matchNodes(p.nodes[:n-1], dn)
	case "**":
		return matchNodes(p.nodes[:n-1], dn) || matchNodes(p.nodes, dn)
	}
	return false
}

// MayMatchDevice reports whether p could select some measurement of device.
func (p Pattern) MayMatchDevice(device string) bool {
	if p.nodes == nil {
		return true
	}
	dn := strings.Split(device, ".")
	return matchNodes(p.nodes, dn) || matchNodes(p.nodes, append(dn, "\x00"))
}

// matchNodes matches pattern nodes against path nodes; "\x00" in path stands for any single node.
// It runs in O(len(pn)·len(dn)) time: a row of the table "pn[:i] matches dn[:j]" per pattern node
// (plain backtracking over several "**" is exponential).
func matchNodes(pn, dn []string) bool {
	n := len(dn)
	var stack [2][32]bool
	cur, next := stack[0][:], stack[1][:]
	if n+1 > len(cur) {
		cur, next = make([]bool, n+1), make([]bool, n+1)
	}
	cur, next = cur[:n+1], next[:n+1]
	cur[0] = true
	for _, p := range pn {
		switch p {
		case "**": // one or more nodes
			seen := false
			for j := 0; j <= n; j++ {
				next[j] = seen
				seen = seen || cur[j]
			}
		case "*":
			next[0] = false
			copy(next[1:], cur[:n])
		default:
			next[0] = false
			for j := 1; j <= n; j++ {
				next[j] = cur[j-1] && (dn[j-1] == p || dn[j-1] == "\x00")
			}
		}
		cur, next = next, cur
	}
	return cur[n]
}
