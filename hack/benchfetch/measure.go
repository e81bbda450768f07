package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// measure runs fetch and the reference alternately (which goes first alternates too), each into an
// empty destination that is removed afterwards.
func measure(fetchBin, work, url string, p pkg, runs int) (result, error) {
	r := result{Format: p.format}
	for i := range runs {
		var fetchS, refS float64
		var err error
		order := []bool{i%2 == 0, i%2 != 0}
		for _, isFetch := range order {
			if isFetch {
				var peak, extracted, rss float64
				if fetchS, peak, extracted, rss, err = runFetch(fetchBin, work, url, p.format); err != nil {
					return r, err
				}
				r.FetchS = append(r.FetchS, fetchS)
				r.PeakDiskMiB = append(r.PeakDiskMiB, peak)
				r.ExtractedMiB = append(r.ExtractedMiB, extracted)
				r.PeakDiskRatio = append(r.PeakDiskRatio, peak/extracted)
				r.RSSMiB = append(r.RSSMiB, rss)
			} else {
				if refS, err = runRef(work, url, p); err != nil {
					return r, err
				}
				r.RefS = append(r.RefS, refS)
			}
		}
		r.Ratio = append(r.Ratio, fetchS/refS)
		fmt.Fprintf(os.Stderr, "bench-fetch: %s run %d: fetch %.2f s (peak disk %.0f MiB of %.0f, RSS %.0f MiB), "+
			"reference %.2f s, ratio %.2f\n", p.format, i+1, fetchS, r.PeakDiskMiB[i], r.ExtractedMiB[i], r.RSSMiB[i],
			refS, fetchS/refS)
	}
	return r, nil
}

func runFetch(fetchBin, work, url, format string) (secs, peakMiB, extractedMiB, rssMiB float64, err error) {
	dest := filepath.Join(work, "fetch-dest")
	_ = os.RemoveAll(dest)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return 0, 0, 0, 0, err
	}
	defer func() { _ = os.RemoveAll(dest) }()
	interval := 200 * time.Millisecond
	if strings.HasPrefix(format, "small") {
		interval = 2 * time.Second // a walk of 100,000 files costs CPU that would slow what is measured
	}
	settle()
	stop := sampleDisk(dest, interval)
	cmd := exec.Command(fetchBin, "--url-env=BENCH_URL", "--dest", dest, "--max-entries=200000",
		"--progress-interval=1h", "--retries=0")
	cmd.Env = append(os.Environ(), "BENCH_URL="+url)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	secs = time.Since(start).Seconds()
	peak := stop()
	if err != nil {
		return 0, 0, 0, 0, fmt.Errorf("fetch: %w: %s", err, stderr.String())
	}
	extracted := diskUse(dest)
	rss := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
	return secs, float64(max(peak, extracted)) / (1 << 20), float64(extracted) / (1 << 20), rss, nil
}

func runRef(work, url string, p pkg) (float64, error) {
	dest, tmp := filepath.Join(work, "ref-dest"), filepath.Join(work, "ref-tmp")
	for _, d := range []string{dest, tmp} {
		_ = os.RemoveAll(d)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
		defer func() { _ = os.RemoveAll(d) }()
	}
	settle()
	cmd := exec.Command("sh", "-c", p.ref)
	cmd.Env = append(os.Environ(), "URL="+url, "DEST="+dest, "TMP="+tmp)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("reference %q: %w: %s", p.ref, err, stderr.String())
	}
	return time.Since(start).Seconds(), nil
}

// settle writes out what the previous run left dirty (a removed tree of 100,000 files keeps the disk
// busy for seconds), so that it does not slow whichever command runs next.
func settle() {
	syscall.Sync()
	time.Sleep(time.Second)
}

// sampleDisk records the most dir used (allocated blocks) until the returned function is called.
func sampleDisk(dir string, every time.Duration) func() int64 {
	var peak atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if n := diskUse(dir); n > peak.Load() {
					peak.Store(n)
				}
			}
		}
	})
	return func() int64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// diskUse is what du counts: the blocks allocated under dir.
func diskUse(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // entries come and go while fetch works
		}
		if info, err := d.Info(); err == nil {
			n += info.Sys().(*syscall.Stat_t).Blocks * 512
		}
		return nil
	})
	return n
}
