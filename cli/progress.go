package cli

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how far a long job is: a bar on a terminal, a line every few seconds otherwise.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	desc  string
	total int64
	done  atomic.Int64
	start time.Time
	stop  chan struct{}
	ended chan struct{}
}

func newProgress(w io.Writer, total int64, desc string) *progress {
	p := &progress{w: w, desc: desc, total: total, start: time.Now(), stop: make(chan struct{}), ended: make(chan struct{})}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("pts"),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionSetWidth(30))
		close(p.ended)
		return p
	}
	go func() {
		defer close(p.ended)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				d := p.done.Load()
				fmt.Fprintf(w, "%s: %d/%d (%.0f%%)\n", desc, d, total, 100*float64(d)/float64(max(total, 1)))
			}
		}
	}()
	return p
}

func (p *progress) add(n int64) {
	p.done.Add(n)
	if p.bar != nil {
		_ = p.bar.Add64(n)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
		return
	}
	close(p.stop)
	<-p.ended
	fmt.Fprintf(p.w, "%s: %d/%d (100%%) in %s\n", p.desc, p.done.Load(), p.total, time.Since(p.start).Round(time.Millisecond))
}
