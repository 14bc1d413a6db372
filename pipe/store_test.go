package pipe

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestStoreProgressRoundTrip(t *testing.T) {
	s, err := NewStore(nil, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LoadProgress("p", "r1"); ok || err != nil {
		t.Fatalf("missing progress: ok=%v err=%v", ok, err)
	}
	ck := Checkpoint{
		Progress:        ProgressIndex{1: 42, 7: 3},
		ExtractorState:  []byte{0, 1, 2, 0xff},
		ProcessorStates: [][]byte{nil, []byte("sum=3")},
		CommitID:        99,
		MaxIndex:        42,
		CommittedEvents: 99,
		CommittedBytes:  1234,
		CommittedPoints: 500,
		Updated:         time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
	}
	if err := s.SaveProgress("p", "root.sg/r1", ck); err != nil {
		t.Fatal(err)
	}
	path := s.ProgressPath("p", "root.sg/r1")
	if filepath.Base(path) != "progress-root.sg%2Fr1.json" {
		t.Fatalf("progress file name %s", filepath.Base(path))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "weir-progress v1 crc32c=") {
		t.Fatalf("header: %q", strings.SplitN(string(data), "\n", 2)[0])
	}
	got, ok, err := s.LoadProgress("p", "root.sg/r1")
	if err != nil || !ok {
		t.Fatalf("load: ok=%v err=%v", ok, err)
	}
	if !reflect.DeepEqual(got, ck) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, ck)
	}
}

func TestStoreRefusesCorruptProgress(t *testing.T) {
	s, _ := NewStore(nil, t.TempDir())
	if err := s.SaveProgress("p", "r", Checkpoint{CommitID: 5, Progress: ProgressIndex{1: 5}}); err != nil {
		t.Fatal(err)
	}
	path := s.ProgressPath("p", "r")
	good, _ := os.ReadFile(path)
	flip := append([]byte(nil), good...)
	i := strings.Index(string(flip), `"commit_id": 5`) + len(`"commit_id": `)
	flip[i] = '6'
	for name, data := range map[string][]byte{
		"flipped":   flip,
		"truncated": good[:len(good)-5],
		"no header": good[strings.IndexByte(string(good), '\n')+1:],
		"empty":     {},
		"bad crc":   []byte(strings.Replace(string(good), "crc32c=", "crc32c=zz", 1)),
	} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, err := s.LoadProgress("p", "r")
		var ce *CorruptProgressError
		if !errors.As(err, &ce) || ce.Path != path || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: got %v, want a CorruptProgressError naming %s", name, err, path)
		}
	}
}

func TestStoreSpecStateAndRemove(t *testing.T) {
	root := t.TempDir()
	s, _ := NewStore(nil, root)
	spec := &Spec{Name: "p1", Source: PluginSpec{Plugin: "x", Params: map[string]string{"a": "1"}}, Sink: PluginSpec{Plugin: "y"}}
	if err := s.SaveSpec(spec); err != nil {
		t.Fatal(err)
	}
	if st, err := s.LoadState("p1"); err != nil || st.State != StateCreated {
		t.Fatalf("state without file: %+v %v", st, err)
	}
	if err := s.SaveState("p1", StateRecord{State: StateRunning, LastError: "boom"}); err != nil {
		t.Fatal(err)
	}
	st, err := s.LoadState("p1")
	if err != nil || st.State != StateRunning || st.LastError != "boom" || st.Updated.IsZero() {
		t.Fatalf("state: %+v %v", st, err)
	}
	got, err := s.LoadSpec("p1")
	if err != nil || !reflect.DeepEqual(got.Source, spec.Source) || got.Sink.Plugin != "y" {
		t.Fatalf("spec: %+v %v", got, err)
	}
	_ = os.MkdirAll(filepath.Join(root, "not-a-pipe"), 0o755)
	if names, err := s.Pipes(); err != nil || !reflect.DeepEqual(names, []string{"p1"}) {
		t.Fatalf("pipes: %v %v", names, err)
	}
	if err := os.WriteFile(filepath.Join(root, "p1", StateFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadState("p1"); err == nil || !strings.Contains(err.Error(), StateFile) {
		t.Fatalf("corrupt state: %v", err)
	}
	if err := s.Remove("p1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "p1")); !os.IsNotExist(err) {
		t.Fatalf("pipe dir still there: %v", err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", `a\b`, "a\x00b"} {
		if CheckPipeName(bad) == nil {
			t.Errorf("CheckPipeName(%q) accepted", bad)
		}
	}
}
