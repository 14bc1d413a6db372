package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --dir: a missing or empty directory is used, a previous demo's data is removed, anything
// else is refused and left alone.
func TestClearDemoDir(t *testing.T) {
	dir := t.TempDir()
	if err := clearDemoDir(io.Discard, filepath.Join(dir, "new")); err != nil {
		t.Fatalf("missing dir: %v", err)
	}
	prev := filepath.Join(dir, "prev")
	for _, n := range []string{"n1/root.demo-0", "n2", "n3"} {
		if err := os.MkdirAll(filepath.Join(prev, n), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := clearDemoDir(io.Discard, prev); err != nil {
		t.Fatalf("previous demo: %v", err)
	}
	if entries, _ := os.ReadDir(prev); len(entries) != 0 {
		t.Fatalf("previous demo's data left: %v", entries)
	}
	other := filepath.Join(dir, "other")
	if err := os.MkdirAll(filepath.Join(other, "n1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := clearDemoDir(io.Discard, other); err == nil || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("foreign dir: %v", err)
	}
	if _, err := os.Stat(filepath.Join(other, "n1")); err != nil {
		t.Fatalf("a refused dir was touched: %v", err)
	}
}
