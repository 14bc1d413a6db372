package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/node/api"
	"github.com/weir-dev/weir/pipe"
)

func TestPipeBook(t *testing.T) {
	dir := t.TempDir()
	b, err := loadPipeBook(dir)
	if err != nil {
		t.Fatal(err)
	}
	g := newGeneration()
	if err := checkGeneration(g); err != nil {
		t.Fatalf("a drawn generation is refused: %v", err)
	}
	for _, bad := range []string{"", "xyz", "abc", strings.Repeat("ab", 17)} {
		if checkGeneration(bad) == nil {
			t.Errorf("generation %q accepted", bad)
		}
	}
	if err := b.set("copy", g); err != nil {
		t.Fatal(err)
	}
	// a later start or stop wins; an earlier one is not recorded
	t0 := time.Now()
	if ok, err := b.intend("copy", pipe.StateStopped, t0); !ok || err != nil {
		t.Fatalf("intend: %v %v", ok, err)
	}
	if ok, _ := b.intend("copy", pipe.StateRunning, t0.Add(-time.Second)); ok || b.get("copy").Intent != pipe.StateStopped {
		t.Fatalf("an earlier start replaced a later stop: %+v", b.get("copy"))
	}
	if b.get("copy").Gen != g {
		t.Fatalf("intend lost the generation: %+v", b.get("copy"))
	}
	if err := b.drop("copy"); err != nil {
		t.Fatal(err)
	}
	// kept across a restart; a dropped generation is known, another is not
	b, err = loadPipeBook(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !b.dropped("copy", g) || b.dropped("copy", newGeneration()) || b.gen("copy") != "" {
		t.Fatalf("after reload: %+v", b)
	}
	// merging is idempotent and keeps the newest maxDropped
	var many []api.DroppedPipe
	for i := 0; i < maxDropped+10; i++ {
		many = append(many, api.DroppedPipe{Name: "p", Generation: newGeneration(), At: time.Unix(int64(i+1), 0).UTC()})
	}
	if err := b.merge(many); err != nil {
		t.Fatal(err)
	}
	if err := b.merge(many); err != nil {
		t.Fatal(err)
	}
	if len(b.Dropped) != maxDropped || b.dropped("p", many[0].Generation) || !b.dropped("p", many[len(many)-1].Generation) {
		t.Fatalf("after merging %d: %d kept", len(many), len(b.Dropped))
	}
	// a corrupt file is an error naming it, not an empty book
	if err := os.WriteFile(filepath.Join(dir, pipeBookFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadPipeBook(dir); err == nil || !strings.Contains(err.Error(), pipeBookFile) {
		t.Fatalf("corrupt book: %v", err)
	}
}
