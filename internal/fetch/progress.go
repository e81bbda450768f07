package fetch

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// progress logs bytes, percent and rate at a steady cadence while a download runs.
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

func (p *progress) Write(b []byte) (int, error) {
	p.written.Add(int64(len(b)))
	return len(b), nil
}

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
	elapsed := time.Since(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(have-p.startAt) / elapsed
	}
	attrs := []any{"bytes", have, "rate", humanBytes(rate) + "/s"}
	if p.total > 0 {
		attrs = append(attrs, "total", p.total, "percent", fmt.Sprintf("%.1f%%", 100*float64(have)/float64(p.total)))
	}
	p.o.Log.Info(msg, attrs...)
}

func (p *progress) stop() { p.once.Do(func() { close(p.done) }) }

func (p *progress) finish(have int64) {
	p.stop()
	p.log("Transfer ended", have)
}

func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}
