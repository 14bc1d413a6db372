package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weir-dev/weir/tsfile"
)

func init() { register(newTsfileCmd) }

// verifyRegionDir, when set, verifies a region directory (its manifest and every file the
// manifest lists, sizes and checksums included) for `pipectl tsfile verify DIR`. Each error
// should name the file it is about. Nil: directories are refused.
var verifyRegionDir func(dir string) []error

// manifestEntry, when set, looks up file in the MANIFEST of its directory: the size and CRC32C
// recorded for it; ok is false when there is no manifest or it does not list the file. Nil:
// checksums are computed and shown but not compared.
var manifestEntry func(file string) (size int64, crc uint32, ok bool, err error)

func newTsfileCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "tsfile", Short: "Inspect and verify TsFiles"}
	var asJSON bool
	inspect := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print a TsFile's metadata, devices, columns and stats, its CRC32C and whether its structure is sound",
		Long: `Print what a TsFile holds: format version, region, version and epoch, time range, rows,
points, compression, progress index, WAL index range, the columns with their types and stats
(over all devices), and the devices (rows, time range, batches). It also computes the file's
size and CRC32C and reads every batch to check the structure; a damaged structure is reported
and the command exits 1.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tsfInspect(cmd.OutOrStdout(), args[0], asJSON)
		},
	}
	inspect.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	verify := &cobra.Command{
		Use:   "verify PATH...",
		Short: "Check TsFiles (structure, and size and checksum where a MANIFEST lists them)",
		Long: `Check each PATH: a TsFile is read completely and every batch, the metadata and the stats
are checked; when the MANIFEST next to it lists it, its size and CRC32C are compared first.
Prints "ok  FILE" or "BAD FILE: reason" per file and exits 1 if any is bad.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return tsfVerify(cmd.OutOrStdout(), args)
		},
	}
	cmd.AddCommand(inspect, verify)
	return cmd
}

// tsfColumn is a file-level column summary: stats merged over the devices.
type tsfColumn struct {
	Name    string          `json:"name"`
	Type    tsfile.DataType `json:"type"`
	Devices int             `json:"devices"`
	Count   int64           `json:"count"`
	Min     any             `json:"min"`
	Max     any             `json:"max"`
}

// tsfReport is the --json output of inspect.
type tsfReport struct {
	File      string          `json:"file"`
	Size      int64           `json:"size"`
	CRC32C    string          `json:"crc32c"`
	Checksum  string          `json:"checksum"`
	Structure string          `json:"structure"`
	OK        bool            `json:"ok"`
	Batches   int             `json:"batches"`
	Columns   []tsfColumn     `json:"columns"`
	Meta      tsfile.FileMeta `json:"meta"`
}

func tsfInspect(out io.Writer, path string, asJSON bool) error {
	size, crc, err := tsfile.FileChecksum(path)
	if err != nil {
		return err
	}
	r, err := tsfile.OpenFile(path)
	if err != nil {
		return err
	}
	defer r.Close()
	verr := r.Verify()
	rep := tsfReport{
		File: path, Size: size, CRC32C: fmt.Sprintf("0x%08x", crc), Checksum: tsfChecksumStatus(path, size, crc),
		Structure: "ok", OK: verr == nil, Batches: r.NumBatches(), Meta: r.Meta(),
	}
	if verr != nil {
		rep.Structure = "error: " + tsfReason(path, verr)
	}
	rep.Columns = tsfColumns(rep.Meta)
	if asJSON {
		enc := json.NewEncoder(out)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := tsfPrint(out, &rep); err != nil {
		return err
	}
	if verr != nil {
		return &ExitError{Code: 1, Err: verr}
	}
	return nil
}

// tsfChecksumStatus compares the file with its MANIFEST entry, when one can be looked up.
func tsfChecksumStatus(path string, size int64, crc uint32) string {
	if manifestEntry == nil {
		return "not compared (no manifest lookup)"
	}
	msize, mcrc, ok, err := manifestEntry(path)
	switch {
	case err != nil:
		return "unknown: " + err.Error()
	case !ok:
		return "not listed in a MANIFEST"
	case msize != size:
		return fmt.Sprintf("MISMATCH: manifest says %d bytes, file has %d", msize, size)
	case mcrc != crc:
		return fmt.Sprintf("MISMATCH: manifest says 0x%08x, file has 0x%08x", mcrc, crc)
	}
	return "ok (matches MANIFEST)"
}

// tsfColumns merges the per-device stats of each column of the file.
func tsfColumns(m tsfile.FileMeta) []tsfColumn {
	cols := make([]tsfColumn, len(m.Columns))
	idx := make(map[string]int, len(m.Columns))
	for i, c := range m.Columns {
		cols[i] = tsfColumn{Name: c.Name, Type: c.Type}
		idx[c.Name] = i
	}
	for _, d := range m.Devices {
		for _, s := range d.Columns {
			i, ok := idx[s.Name]
			if !ok {
				continue
			}
			c := &cols[i]
			c.Devices++
			if s.Count == 0 {
				continue
			}
			if c.Count == 0 || tsfLess(s.Min, c.Min) {
				c.Min = s.Min
			}
			if c.Count == 0 || tsfLess(c.Max, s.Max) {
				c.Max = s.Max
			}
			c.Count += s.Count
		}
	}
	return cols
}

// tsfLess orders two stats values of the same type.
func tsfLess(a, b any) bool {
	switch x := a.(type) {
	case bool:
		y, _ := b.(bool)
		return !x && y
	case int64:
		y, _ := b.(int64)
		return x < y
	case float64:
		y, _ := b.(float64)
		return x < y
	case string:
		y, _ := b.(string)
		return x < y
	}
	return false
}

func tsfPrint(out io.Writer, rep *tsfReport) error {
	m := &rep.Meta
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "file\t%s\n", rep.File)
	fmt.Fprintf(tw, "size\t%d bytes (%s)\n", rep.Size, tsfBytes(rep.Size))
	fmt.Fprintf(tw, "crc32c\t%s\n", rep.CRC32C)
	fmt.Fprintf(tw, "checksum\t%s\n", rep.Checksum)
	fmt.Fprintf(tw, "structure\t%s\n", rep.Structure)
	fmt.Fprintf(tw, "format version\t%d\n", m.FormatVersion)
	fmt.Fprintf(tw, "region\t%s\n", m.Region)
	fmt.Fprintf(tw, "version\t%d\n", m.Version)
	fmt.Fprintf(tw, "epoch\t%d\n", m.Epoch)
	fmt.Fprintf(tw, "compression\t%s\n", m.Compression)
	if m.Rows > 0 {
		fmt.Fprintf(tw, "time range\t%d .. %d\n", m.MinTime, m.MaxTime)
	} else {
		fmt.Fprintf(tw, "time range\t(no rows)\n")
	}
	fmt.Fprintf(tw, "rows\t%d\n", m.Rows)
	fmt.Fprintf(tw, "points\t%d\n", m.Points)
	fmt.Fprintf(tw, "devices\t%d\n", len(m.Devices))
	fmt.Fprintf(tw, "batches\t%d\n", rep.Batches)
	fmt.Fprintf(tw, "progress index\t%s\n", tsfProgress(m.Progress))
	fmt.Fprintf(tw, "wal index range\t%d .. %d\n", m.MinIndex, m.MaxIndex)
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(out, "\ncolumns (%d)\n", len(rep.Columns))
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tTYPE\tDEVICES\tCOUNT\tMIN\tMAX")
	for _, c := range rep.Columns {
		fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%s\t%s\n", c.Name, c.Type, c.Devices, c.Count, tsfValue(c.Min), tsfValue(c.Max))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(out, "\ndevices (%d)\n", len(m.Devices))
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  DEVICE\tROWS\tMIN TIME\tMAX TIME\tBATCHES\tCOLUMNS")
	for _, d := range m.Devices {
		names := make([]string, len(d.Columns))
		for i, c := range d.Columns {
			names[i] = c.Name
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\t%s\n", d.Device, d.Rows, d.MinTime, d.MaxTime, tsfBatches(d.Batches), strings.Join(names, ","))
	}
	return tw.Flush()
}

// tsfBatches renders batch numbers as ranges: "0-3", "4", "5-6,9".
func tsfBatches(bs []int) string {
	var parts []string
	for i := 0; i < len(bs); {
		j := i
		for j+1 < len(bs) && bs[j+1] == bs[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(bs[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", bs[i], bs[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func tsfProgress(p map[uint32]uint64) string {
	if len(p) == 0 {
		return "(empty)"
	}
	origins := make([]uint32, 0, len(p))
	for o := range p {
		origins = append(origins, o)
	}
	sort.Slice(origins, func(i, j int) bool { return origins[i] < origins[j] })
	parts := make([]string, len(origins))
	for i, o := range origins {
		parts[i] = fmt.Sprintf("%d:%d", o, p[o])
	}
	return strings.Join(parts, " ")
}

func tsfValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if len(x) > 40 {
			x = x[:37] + "..."
		}
		return strconv.Quote(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return fmt.Sprint(v)
}

func tsfBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// tsfReason is err without the "tsfile FILE: " prefix when it is about path.
func tsfReason(path string, err error) string {
	var fe *tsfile.FormatError
	if errors.As(err, &fe) && fe.File == path {
		return fe.Check + ": " + fe.Err.Error()
	}
	return err.Error()
}

func tsfVerify(out io.Writer, paths []string) error {
	bad := 0
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(out, "BAD %s: %v\n", p, err)
			bad++
			continue
		}
		if st.IsDir() {
			if verifyRegionDir == nil {
				fmt.Fprintf(out, "BAD %s: is a directory (give the TsFiles)\n", p)
				bad++
				continue
			}
			errs := verifyRegionDir(p)
			for _, e := range errs {
				fmt.Fprintf(out, "BAD %s: %v\n", p, e)
			}
			if len(errs) > 0 {
				bad++
			} else {
				fmt.Fprintf(out, "ok  %s\n", p)
			}
			continue
		}
		if err := tsfVerifyFile(p); err != nil {
			fmt.Fprintf(out, "BAD %s: %s\n", p, tsfReason(p, err))
			bad++
			continue
		}
		fmt.Fprintf(out, "ok  %s\n", p)
	}
	if bad > 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d paths failed verification", bad, len(paths))}
	}
	return nil
}

// tsfVerifyFile checks one file: against its MANIFEST entry when there is one, else its
// structure only.
func tsfVerifyFile(path string) error {
	if manifestEntry != nil {
		size, crc, ok, err := manifestEntry(path)
		if err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		if ok {
			return tsfile.VerifyFile(path, size, crc)
		}
	}
	return tsfile.VerifyStructure(path)
}
