package kafka

import (
	"errors"
	"fmt"
	"strings"
)

// TemplateFields are the fields a topic template may use.
var TemplateFields = []string{"database", "device", "region", "pipe"}

// Template is a parsed topic name template such as "weir.{database}": literal text and
// {field} references, rendered per event.
type Template struct {
	src   string
	parts []tmplPart
}

type tmplPart struct {
	lit   string
	field string // "" for a literal
}

// TemplateValues are what a template's fields are replaced with.
type TemplateValues struct {
	Database, Device, Region, Pipe string
}

// get returns a field's value; a region or pipe name's characters that a topic name does
// not allow (a node's regions are named like root.demo/3) become '_'.
func (v TemplateValues) get(f string) string {
	switch f {
	case "database":
		return v.Database
	case "device":
		return v.Device
	case "region":
		return sanitize(v.Region)
	}
	return sanitize(v.Pipe)
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !topicChar(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

// ParseTemplate parses a topic template. Literal text must be valid in a topic name
// (letters, digits, '.', '_', '-'); fields are written {database}, {device}, {region},
// {pipe}.
func ParseTemplate(s string) (*Template, error) {
	if s == "" {
		return nil, errors.New("empty topic template")
	}
	t := &Template{src: s}
	rest := s
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, tmplPart{lit: rest})
			break
		}
		if rest[i] == '}' {
			return nil, fmt.Errorf("%q: '}' without '{'", s)
		}
		if i > 0 {
			t.parts = append(t.parts, tmplPart{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("%q: '{' without '}'", s)
		}
		f := rest[i+1 : i+j]
		known := false
		for _, k := range TemplateFields {
			known = known || f == k
		}
		if !known {
			return nil, fmt.Errorf("%q: unknown field {%s} (known: {%s})", s, f, strings.Join(TemplateFields, "}, {"))
		}
		t.parts = append(t.parts, tmplPart{field: f})
		rest = rest[i+j+1:]
	}
	for _, p := range t.parts {
		if p.field != "" {
			continue
		}
		for k := 0; k < len(p.lit); k++ {
			if !topicChar(p.lit[k]) {
				return nil, fmt.Errorf("%q: character %q is not allowed in a topic name (letters, digits, '.', '_', '-')", s, p.lit[k])
			}
		}
	}
	return t, nil
}

// String returns the template as written.
func (t *Template) String() string { return t.src }

// Uses reports whether the template refers to field.
func (t *Template) Uses(field string) bool {
	for _, p := range t.parts {
		if p.field == field {
			return true
		}
	}
	return false
}

// Render fills the template in and checks that the result is a valid topic name.
func (t *Template) Render(v TemplateValues) (string, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.field == "" {
			b.WriteString(p.lit)
		} else {
			b.WriteString(v.get(p.field))
		}
	}
	name := b.String()
	if err := ValidTopic(name); err != nil {
		return "", fmt.Errorf("topic template %q: %w", t.src, err)
	}
	return name, nil
}

func topicChar(c byte) bool {
	return c == '.' || c == '_' || c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// ValidTopic checks a Kafka topic name: 1-249 letters, digits, '.', '_' or '-', and not
// "." or "..".
func ValidTopic(name string) error {
	switch {
	case name == "":
		return errors.New("empty topic name")
	case name == "." || name == "..":
		return fmt.Errorf("topic name %q is not allowed", name)
	case len(name) > 249:
		return fmt.Errorf("topic name %q is longer than 249 characters", name)
	}
	for i := 0; i < len(name); i++ {
		if !topicChar(name[i]) {
			return fmt.Errorf("topic name %q: character %q is not allowed (letters, digits, '.', '_', '-')", name, name[i])
		}
	}
	return nil
}
