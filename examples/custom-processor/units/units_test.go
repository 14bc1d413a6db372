package units

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"go.uber.org/goleak"

	"github.com/weir-dev/weir/engine"
	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/connector/writeback"
	_ "github.com/weir-dev/weir/pipe/extractor"
	"github.com/weir-dev/weir/tsfile"
)

func TestMain(m *testing.M) {
	Register()
	goleak.VerifyTestMain(m)
}

var cols = []tsfile.Column{{Name: "temp", Type: tsfile.Double}, {Name: "pressure", Type: tsfile.Int32}, {Name: "state", Type: tsfile.Text}}

func tablet(t *testing.T, device string, rows [][]any) *tsfile.Tablet {
	t.Helper()
	b := tsfile.NewTabletBuilder(nil, device, cols)
	defer b.Release()
	for _, r := range rows {
		if err := b.AppendRow(r[0].(int64), r[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	tb, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestParseConversions(t *testing.T) {
	c, err := ParseConversions("temp:F->C, pressure : psi -> kPa")
	if err != nil || len(c) != 2 || c["pressure"].To != "kPa" {
		t.Fatalf("%v %v", c, err)
	}
	for in, want := range map[string]string{
		"temp":                "is not measurement:from->to",
		"temp:F->X":           `unknown conversion "F->X" for temp`,
		"temp:F->C,temp:C->K": "converted twice",
		"time:F->C":           "reserved",
	} {
		if _, err := ParseConversions(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
}

// Conversion is exact for non-spikes; an isolated spike goes; a level that moves for
// longer than spike.max-run comes through; other columns pass unchanged; state survives a
// restart.
func TestConvertAndDespike(t *testing.T) {
	p := New(map[string]Conversion{"temp": Conversions["F->C"], "pressure": Conversions["psi->kPa"]}, 20, 2)
	in := tablet(t, "root.plant.a", [][]any{
		{int64(1), 212.0, int32(10), "on"},
		{int64(2), 214.0, nil, "on"},
		{int64(3), 900.0, nil, nil}, // a spike: the row goes
		{int64(4), 216.0, int32(11), "on"},
	})
	defer in.Release()
	out, err := p.Tablet(in)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Release()
	got := rows(out)
	want := []string{"1 temp=100 pressure=68.94757293168361 state=on", "2 temp=101.11111111111111 state=on", "4 temp=102.22222222222223 pressure=75.84233022485196 state=on"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// a level shift: two rejected points, then the third is kept and so the ones after
	st, _ := p.SaveState()
	q := New(p.conv, 20, 2)
	if err := q.LoadState(st); err != nil {
		t.Fatal(err)
	}
	shift := tablet(t, "root.plant.a", [][]any{{int64(5), 400.0, nil, nil}, {int64(6), 401.0, nil, nil}, {int64(7), 402.0, nil, nil}, {int64(8), 403.0, nil, nil}, {int64(4), 0.0, nil, nil}})
	defer shift.Release()
	out2, _ := q.Tablet(shift)
	defer out2.Release()
	if got := strings.Join(rows(out2), "|"); !strings.HasPrefix(got, "7 temp=205.5") || !strings.Contains(got, "8 temp=206.1") || strings.Contains(got, "4 temp") {
		t.Fatalf("level shift: %s", got)
	}
}

func rows(tb *tsfile.Tablet) []string {
	var out []string
	ts := tb.Times()
	for r := range ts {
		s := fmt.Sprint(ts[r])
		for c, col := range tb.Columns() {
			if v := tsfile.Value(tb.Rec.Column(c+1), r); v != nil {
				s += fmt.Sprintf(" %s=%v", col.Name, v)
			}
		}
		out = append(out, s)
	}
	return out
}

// The whole pipe of pipe.yaml: a hybrid source on a real region, the units processor,
// write-back into a second database, stopped and started midway. The target holds
// exactly the written points in the new units, spikes removed.
func TestPipeMovesConvertedData(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := engine.Open(engine.Options{Dir: filepath.Join(dir, "plant"), Name: "plant", Origin: 1, Durability: wal.Async, FlushAge: -1, MemtableSize: 8 << 10, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := engine.Open(engine.Options{Dir: filepath.Join(dir, "metric"), Name: "metric", Origin: 2, Durability: wal.Async, FlushAge: -1, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	mgr, err := pipe.NewManager(pipe.ManagerOptions{
		Dir:           filepath.Join(dir, "pipes"),
		SourceRegions: func(*pipe.Spec) ([]*engine.Region, error) { return []*engine.Region{src}, nil },
		Databases:     func(string) (*engine.Region, error) { return dst, nil },
		Logger:        log,
		SaveInterval:  5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	spec, errs := pipe.CheckSpec([]byte(mustRead(t, "../pipe.yaml")))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := mgr.Create(spec, false); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start("metric"); err != nil {
		t.Fatal(err)
	}

	// temperatures near 70 °F and pressures near 30 psi, one spike now and then
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	var want []string
	next := map[string]int64{}
	level := map[string]float64{}
	spiked := map[string]bool{} // the device's last point was a spike
	write := func(n int) {
		for i := 0; i < n; i++ {
			dev := fmt.Sprintf("root.plant.line%d", rng.Intn(3))
			var rs [][]any
			for j, k := 0, 1+rng.Intn(8); j < k; j++ {
				next[dev] += int64(1 + rng.Intn(3))
				level[dev] += float64(rng.Intn(5) - 2)
				temp := 70 + level[dev]
				row := []any{next[dev], temp, int32(30 + rng.Intn(3)), "on"}
				m := "root.metric" + strings.TrimPrefix(dev, "root.plant")
				// a spike (277 °C away) now and then, never first nor twice in a row
				if spike := len(want) > 0 && next[dev] > 3 && !spiked[dev] && rng.Intn(15) == 0; spike {
					row[1] = temp + 500
					spiked[dev] = true
				} else {
					spiked[dev] = false
					want = append(want, fmt.Sprintf("%s %d temp %.6f", m, next[dev], (temp-32)*5/9))
				}
				want = append(want,
					fmt.Sprintf("%s %d pressure %.6f", m, next[dev], float64(row[2].(int32))*6.894757293168361),
					fmt.Sprintf("%s %d state on", m, next[dev]))
				rs = append(rs, row)
			}
			tb := tablet(t, dev, rs)
			if _, err := src.Write(tb); err != nil {
				t.Fatal(err)
			}
			tb.Release()
			if rng.Intn(20) == 0 {
				if err := src.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	write(100)
	if err := mgr.Stop("metric"); err != nil {
		t.Fatal(err)
	}
	write(50)
	if err := mgr.Start("metric"); err != nil {
		t.Fatal(err)
	}
	write(100)
	sort.Strings(want)

	deadline := time.Now().Add(60 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		if got = scan(t, dst); strings.Join(got, "\n") == strings.Join(want, "\n") {
			st, _ := mgr.Describe("metric")
			t.Logf("%d points arrived; committed %d events, carrier switches %d", len(got), st.CommittedEvents, st.Switches)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the target holds %d points, want %d; first differences:\n%s", len(got), len(want), firstDiff(got, want))
}

func scan(t *testing.T, r *engine.Region) []string {
	var out []string
	err := r.Scan(engine.Query{}, func(device string, rec arrow.Record) error {
		tb := tsfile.NewTablet(device, rec)
		ts := tb.Times()
		for c, col := range tb.Columns() {
			for i := range ts {
				switch v := tsfile.Value(rec.Column(c+1), i).(type) {
				case nil:
				case float64:
					out = append(out, fmt.Sprintf("%s %d %s %.6f", device, ts[i], col.Name, v))
				default:
					out = append(out, fmt.Sprintf("%s %d %s %v", device, ts[i], col.Name, v))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func firstDiff(got, want []string) string {
	for i := 0; i < len(got) || i < len(want); i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("at %d: got %q, want %q", i, g, w)
		}
	}
	return "none"
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
