package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/weir-dev/weir/tsfile"
)

// tsfTestFile writes a small TsFile (two devices, three columns) to dir/name.
func tsfTestFile(t *testing.T, dir, name string) string {
	t.Helper()
	var data []tsfile.DeviceData
	for d, dev := range []string{"root.sg.d2", "root.sg.d1"} {
		cols := []tsfile.Column{{Name: "temp", Type: tsfile.Double}, {Name: "state", Type: tsfile.Text}}
		if d == 0 {
			cols = append(cols, tsfile.Column{Name: "on", Type: tsfile.Boolean})
		}
		tb := tsfile.NewTabletBuilder(memory.DefaultAllocator, dev, cols)
		for i := 0; i < 10; i++ {
			vals := []any{float64(i) + float64(d)/2, "s" + string(rune('a'+i))}
			if d == 0 {
				vals = append(vals, i%2 == 0)
			}
			if err := tb.AppendRow(int64(100*i+d), vals...); err != nil {
				t.Fatal(err)
			}
		}
		tab, err := tb.Build()
		tb.Release()
		if err != nil {
			t.Fatal(err)
		}
		defer tab.Release()
		data = append(data, tsfile.DeviceData{Device: dev, Rec: tab.Rec})
	}
	var buf bytes.Buffer
	_, err := tsfile.WriteFile(&buf, tsfile.FileMeta{Region: "sg-1", Version: 7, Epoch: 5, Progress: map[uint32]uint64{1: 42, 2: 7}, MinIndex: 3, MaxIndex: 42},
		data, tsfile.WriteOptions{MaxBatchRows: 4})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runPipectl(args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	root := NewRoot(&out, &errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func TestTsfileInspect(t *testing.T) {
	p := tsfTestFile(t, t.TempDir(), "1.tsfile")
	out, _, err := runPipectl("tsfile", "inspect", p)
	if err != nil {
		t.Fatal(err)
	}
	size, crc, _ := tsfile.FileChecksum(p)
	for _, want := range []string{
		"region           sg-1", "version          7", "epoch            5", "compression      zstd",
		"time range       0 .. 901", "rows             20", "points           50", "devices          2",
		"batches          6", "progress index   1:42 2:7", "wal index range  3 .. 42", "structure        ok",
		"crc32c           0x", "checksum         not listed in a MANIFEST",
		"on     BOOLEAN  1        10     false  true",
		"temp   DOUBLE   2        20     0      9.5",
		`state  TEXT     2        20     "sa"   "sj"`,
		"root.sg.d1  10    1         901       0-2      state,temp",
		"root.sg.d2  10    0         900       3-5      on,state,temp",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "crc32c           "+crcHex(crc)+"\n") || !strings.Contains(out, fmt.Sprintf("size             %d bytes", size)) {
		t.Errorf("size/crc: %s", out)
	}

	out, _, err = runPipectl("tsfile", "inspect", "--json", p)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		File, CRC32C, Structure string
		Size                    int64
		OK                      bool
		Batches                 int
		Columns                 []struct {
			Name  string
			Count int64
		}
		Meta tsfile.FileMeta
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if rep.File != p || rep.Size != size || rep.CRC32C != crcHex(crc) || !rep.OK || rep.Batches != 6 ||
		rep.Meta.Region != "sg-1" || len(rep.Meta.Devices) != 2 || rep.Meta.Progress[1] != 42 || len(rep.Columns) != 3 {
		t.Errorf("json report %+v", rep)
	}
	if strings.Count(out, "\n") != 1 {
		t.Errorf("--json prints more than one line")
	}
}

func crcHex(crc uint32) string { return fmt.Sprintf("0x%08x", crc) }

func TestTsfileVerify(t *testing.T) {
	dir := t.TempDir()
	good := tsfTestFile(t, dir, "1.tsfile")
	b, _ := os.ReadFile(good)
	trunc := filepath.Join(dir, "2.tsfile")
	os.WriteFile(trunc, b[:len(b)-3], 0o644)

	out, _, err := runPipectl("tsfile", "verify", good)
	if err != nil || out != "ok  "+good+"\n" {
		t.Fatalf("good file: %q %v", out, err)
	}
	out, _, err = runPipectl("tsfile", "verify", good, trunc, dir)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 1 {
		t.Fatalf("want exit 1, got %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "ok  "+good || !strings.HasPrefix(lines[1], "BAD "+trunc+": footer: ") ||
		!strings.HasPrefix(lines[2], "BAD "+dir+": ") || !strings.Contains(lines[2], "MANIFEST") {
		t.Fatalf("output:\n%s", out)
	}

	// with a manifest lookup: size and checksum compared
	size, crc, _ := tsfile.FileChecksum(good)
	oldEntry, oldVerify := manifestEntry, verifyRegionDir
	defer func() { manifestEntry, verifyRegionDir = oldEntry, oldVerify }()
	manifestEntry = func(file string) (int64, uint32, bool, error) {
		if file == good {
			return size, crc + 1, true, nil
		}
		return 0, 0, false, nil
	}
	verifyRegionDir = func(string) []error { return nil }
	out, _, err = runPipectl("tsfile", "verify", good, dir)
	if !errors.As(err, &ee) || !strings.Contains(out, "BAD "+good+": checksum mismatch: manifest says 0x") || !strings.Contains(out, "ok  "+dir) {
		t.Fatalf("%v:\n%s", err, out)
	}
	out, _, _ = runPipectl("tsfile", "inspect", good)
	if !strings.Contains(out, "checksum         MISMATCH: manifest says 0x") {
		t.Errorf("inspect with manifest:\n%s", out)
	}
}
