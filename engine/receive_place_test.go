package engine

import (
	"encoding/json"
	"testing"
)

// A received file records where the region listed it among its own writes (After, the
// last local index then) and its count of received files (Seq); both survive a reopen,
// and the writes before it have lower epochs than its version, those after it higher.
func TestReceivedFilePlace(t *testing.T) {
	pathA, fA := sealedFileOf(t, "root.db.a")
	pathB, fB := sealedFileOf(t, "root.db.b")
	dir := t.TempDir()
	r := openTest(t, dir)
	if r.ReceivedSeq() != 0 {
		t.Fatalf("seq %d", r.ReceivedSeq())
	}
	a, err := r.LoadFile(pathA, fA.Progress) // before any local write
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, r, tab(t, "root.db.d", tempCol, []any{int64(1), 1.0}))
	i2 := mustWrite(t, r, tab(t, "root.db.d", tempCol, []any{int64(2), 2.0}))
	b, err := r.LoadFile(pathB, fB.Progress)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, r, tab(t, "root.db.d", tempCol, []any{int64(3), 3.0}))
	if !a.Placed() || a.After != 0 || a.Seq != 1 || !b.Placed() || b.After != i2 || b.Seq != 2 || r.ReceivedSeq() != 2 {
		t.Fatalf("a %+v, b %+v, seq %d", a, b, r.ReceivedSeq())
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, f := range r.Files() {
		if f.MaxIndex == 0 {
			continue
		}
		if f.MaxIndex <= b.After && f.Epoch > b.Version || f.MinIndex > b.After && f.Epoch < b.Version {
			t.Errorf("local file %+v against received %+v", f, b)
		}
	}
	if got, seq := r.ReceivedFiles(1); seq != 2 || len(got) != 1 || got[0].Name != b.Name {
		t.Fatalf("received after 1: %+v (seq %d)", got, seq)
	}
	r.Close()
	r = openTest(t, dir)
	defer r.Close()
	got, seq := r.ReceivedFiles(0)
	if seq != 2 || r.ReceivedSeq() != 2 || len(got) != 2 || got[0].After != 0 || got[0].Seq != 1 || got[1].After != i2 || got[1].Seq != 2 {
		t.Fatalf("after reopen: %+v (seq %d)", got, seq)
	}
}

// A manifest written before places were recorded loads: its received files are not
// placed, and the next one received counts from 1.
func TestOldManifestReceivedFiles(t *testing.T) {
	var f FileInfo
	if err := json.Unmarshal([]byte(`{"name":"00000000000000000002.tsfile","version":2,"epoch":2,"min_index":0,"max_index":0}`), &f); err != nil {
		t.Fatal(err)
	}
	if f.Placed() || f.After != 0 || f.Seq != 0 {
		t.Fatalf("%+v", f)
	}
	m, err := encodeManifest(&manifest{Format: 1, Region: "r", NextVersion: 3, Files: []FileInfo{f}})
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeManifest("m", m)
	if err != nil || back.ReceivedSeq != 0 || back.Files[0].Seq != 0 {
		t.Fatalf("%+v %v", back, err)
	}
	var raw map[string]any
	_ = json.Unmarshal(m[len(manifestHeader)+9:], &raw)
	if _, ok := raw["received_seq"]; ok {
		t.Fatalf("an old manifest's form changed: %s", m)
	}
}
