package fetch

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// progress logs size, percent, rate and ETA at a steady cadence while a download runs, in units a
// person reads at a glance ("1.2 GiB", "35.0 MiB/s", "4m10s").
type progress struct {
	o       Options
	total   int64
	start   time.Time
	startAt int64
	written atomic.Int64
	done    chan struct{}
	once    sync.Once
}

func newProgress(o Options, have, total int64) *progress {
	p := &progress{o: o, total: total, start: time.Now(), startAt: have, done: make(chan struct{})}
	p.written.Store(have)
	go p.loop()
	return p
}

func (p *progress) add(n int) { p.written.Add(int64(n)) }

func (p *progress) loop() {
	t := time.NewTicker(p.o.ProgressInterval)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			p.log("Downloading", p.written.Load())
		}
	}
}

func (p *progress) log(msg string, have int64) {
	rate := 0.0
	if elapsed := time.Since(p.start).Seconds(); elapsed > 0 {
		rate = float64(have-p.startAt) / elapsed
	}
	attrs := []any{"downloaded", humanBytes(float64(have))}
	if p.total > 0 {
		attrs = append(attrs, "total", humanBytes(float64(p.total)),
			"percent", fmt.Sprintf("%.1f%%", 100*float64(have)/float64(p.total)))
	}
	attrs = append(attrs, "rate", humanBytes(rate)+"/s")
	if p.total > 0 && rate > 0 && have < p.total {
		eta := time.Duration(float64(p.total-have) / rate * float64(time.Second))
		attrs = append(attrs, "eta", eta.Round(time.Second).String())
	}
	p.o.Log.Info(msg, attrs...)
}

func (p *progress) stop() { p.once.Do(func() { close(p.done) }) }

func (p *progress) finish(have int64) {
	p.stop()
	p.log("Transfer ended", have)
}

// humanBytes formats n bytes with binary units: "512 B", "1.2 GiB".
func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", n)
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
