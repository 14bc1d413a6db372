package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRoot(&out, &errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

// The README's example specs lint clean in both forms, and normalise to the same spec.
func TestExampleSpecsLint(t *testing.T) {
	y, _, err := runCLI(t, "lint", "../examples/specs/copy.yaml")
	if err != nil {
		t.Fatalf("copy.yaml: %v", err)
	}
	s, _, err := runCLI(t, "lint", "../examples/specs/copy.sql")
	if err != nil {
		t.Fatalf("copy.sql: %v", err)
	}
	if y != s {
		t.Fatalf("the YAML and SQL forms differ:\n%s\n---\n%s", y, s)
	}
	if _, _, err := runCLI(t, "lint", "../examples/specs/audit.yaml"); err != nil {
		t.Fatalf("audit.yaml: %v", err)
	}
	_, errOut, err := runCLI(t, "lint", "../examples/specs/broken.yaml")
	if err == nil {
		t.Fatal("broken.yaml linted clean")
	}
	for _, key := range []string{"name:", "source.patern:", "source.selector.max-lag:", "sink.database:"} {
		if !strings.Contains(errOut, key) {
			t.Errorf("broken.yaml: no problem names %s in:\n%s", key, errOut)
		}
	}
	if _, err := os.Stat("../examples/specs/copy.yaml"); err != nil {
		t.Fatal(err)
	}
}
