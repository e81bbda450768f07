// Command benchfetch measures bin/fetch against curl and tar (or curl then unzip) on the same local HTTP
// server, for `make bench-fetch`: a 1 GiB package (8 × 128 MiB random files and 2,000 small ones) as
// tar, tar.gz and stored zip, and 100,000 small files as tar.gz. Each format runs fetch and its
// reference alternately, -runs times, and prints one line:
//
//	FETCH format=tar fetch_s=… ref_s=… ratio=… peak_disk_mib=… peak_disk_ratio=… rss_mib=…
//
// fetch_s and ref_s are medians, ratio the median of each run's fetch/ref, peak_disk_mib the median
// of fetch's peak use of the destination (sampled), peak_disk_ratio that over the extracted tree's
// size, and rss_mib the largest resident set fetch reached. The packages are generated once into
// -cache and reused.
package main

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"crypto/md5" //nolint:gosec // the ETag S3 sends for a single-part upload, which fetch verifies
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	fetchBin := flag.String("fetch", "bin/fetch", "the fetch binary to measure")
	cache := flag.String("cache", "bin/bench-fetch-cache", "where the packages are generated, once")
	work := flag.String("work", "", "where packages are extracted (default: -cache/work)")
	runs := flag.Int("runs", 3, "runs of fetch and of the reference per format")
	formats := flag.String("formats", "tar,tar.gz,zip,small-tar.gz", "formats to measure, comma-separated")
	out := flag.String("out", "bench-fetch.json", "where every run's figures are written")
	serveOnly := flag.Bool("serve", false, "only generate and serve the packages (for profiling), until killed")
	flag.Parse()
	if *serveOnly {
		fmt.Fprintln(os.Stderr, "bench-fetch:", serveForever(*cache))
		os.Exit(1)
	}
	if err := run(*fetchBin, *cache, *work, *runs, strings.Split(*formats, ","), *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench-fetch:", err)
		os.Exit(1)
	}
}

// pkg is one package to serve and its reference command.
type pkg struct {
	format string
	file   string // in the cache
	// ref is the reference, run by sh with $URL and $DEST (and $TMP, outside DEST) set.
	ref string
}

var packages = []pkg{
	{"tar", "package.tar", `curl -sSf "$URL" | tar -x -C "$DEST"`},
	{"tar.gz", "package.tar.gz", `curl -sSf "$URL" | tar -xz -C "$DEST"`},
	{"zip", "package.zip", `curl -sSf -o "$TMP/package.zip" "$URL" && unzip -q "$TMP/package.zip" -d "$DEST"`},
	{"small-tar.gz", "small.tar.gz", `curl -sSf "$URL" | tar -xz -C "$DEST"`},
}

// result is one format's figures.
type result struct {
	Format        string    `json:"format"`
	FetchS        []float64 `json:"fetch_s"`
	RefS          []float64 `json:"ref_s"`
	Ratio         []float64 `json:"ratio"`
	PeakDiskMiB   []float64 `json:"peak_disk_mib"`
	ExtractedMiB  []float64 `json:"extracted_mib"`
	PeakDiskRatio []float64 `json:"peak_disk_ratio"`
	RSSMiB        []float64 `json:"rss_mib"`
}

func run(fetchBin, cache, work string, runs int, formats []string, out string) error {
	var missing []string
	for _, tool := range []string{"curl", "tar", "unzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the references need curl, tar and unzip on PATH; missing: %s "+
			"(Debian/Ubuntu: apt-get install %s)", strings.Join(missing, ", "), strings.Join(missing, " "))
	}
	if _, err := os.Stat(fetchBin); err != nil {
		return fmt.Errorf("no fetch binary at %s (make build, or go build -o bin/fetch ./cmd/fetch)", fetchBin)
	}
	if work == "" {
		work = filepath.Join(cache, "work")
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	sums, err := generate(cache)
	if err != nil {
		return fmt.Errorf("generating the packages: %w", err)
	}
	srv, base, err := serve(cache, sums)
	if err != nil {
		return err
	}
	defer func() { _ = srv.Close() }()

	var results []result
	for _, p := range packages {
		if !slices.Contains(formats, p.format) {
			continue
		}
		r, err := measure(fetchBin, work, base+"/"+p.file, p, runs)
		if err != nil {
			return fmt.Errorf("%s: %w", p.format, err)
		}
		results = append(results, r)
		fmt.Printf("FETCH format=%s fetch_s=%.2f ref_s=%.2f ratio=%.2f peak_disk_mib=%.0f "+
			"peak_disk_ratio=%.2f rss_mib=%.0f\n", r.Format, median(r.FetchS), median(r.RefS), median(r.Ratio),
			median(r.PeakDiskMiB),
			median(r.PeakDiskRatio), slices.Max(r.RSSMiB))
	}
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

// serveForever serves the packages until the process is killed; it returns only an error.
func serveForever(cache string) error {
	sums, err := generate(cache)
	if err != nil {
		return err
	}
	_, base, err := serve(cache, sums)
	if err != nil {
		return err
	}
	for _, p := range packages {
		fmt.Println(base + "/" + p.file)
	}
	select {}
}

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

// serve serves the cache's packages as GCS does: Content-Length, Range, If-Range, an ETag that is the
// object's MD5, and x-goog-hash with its CRC-32C and MD5. fetch verifies one of them while it streams.
func serve(cache string, sums map[string]sum) (*http.Server, string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			name := filepath.Base(r.URL.Path)
			f, err := os.Open(filepath.Join(cache, name))
			if err != nil {
				http.NotFound(w, r)
				return
			}
			defer func() { _ = f.Close() }()
			info, err := f.Stat()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			s := sums[name]
			w.Header().Set("ETag", `"`+hex.EncodeToString(s.MD5)+`"`)
			if !*md5Only {
				w.Header().Set("X-Goog-Hash", "crc32c="+base64.StdEncoding.EncodeToString(s.CRC32C)+
					",md5="+base64.StdEncoding.EncodeToString(s.MD5))
			}
			http.ServeContent(w, r, name, info.ModTime(), f)
		})}
	go func() { _ = srv.Serve(l) }()
	return srv, "http://" + l.Addr().String(), nil
}

// md5Only makes the server send only an MD5 ETag, as S3 does for a single-part upload.
var md5Only = flag.Bool("md5-only", false, "send only an MD5 ETag (S3), not GCS's x-goog-hash with a CRC-32C")

// sum is a package's digests.
type sum struct {
	MD5    []byte `json:"md5"`
	CRC32C []byte `json:"crc32c"`
}

// generate writes the packages into cache unless they are there, and returns their digests by file
// name. The bytes are pseudo-random (ChaCha8, fixed seed: incompressible like imagery, and the same
// on every machine).
func generate(cache string) (map[string]sum, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	sumsFile := filepath.Join(cache, "sums.json")
	sums := map[string]sum{}
	if b, err := os.ReadFile(sumsFile); err == nil && json.Unmarshal(b, &sums) == nil && len(sums) == len(packages) {
		return sums, nil
	}
	jobs := map[string]func(io.Writer) error{
		"package.tar":    func(w io.Writer) error { return writeTar(w, bigTree) },
		"package.tar.gz": func(w io.Writer) error { return writeTarGz(w, bigTree) },
		"package.zip":    writeZip,
		"small.tar.gz":   func(w io.Writer) error { return writeTarGz(w, smallTree) },
	}
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for name, write := range jobs {
		wg.Go(func() {
			fmt.Fprintf(os.Stderr, "bench-fetch: generating %s (once)\n", name)
			s, err := writeFile(filepath.Join(cache, name), write)
			mu.Lock()
			defer mu.Unlock()
			sums[name] = s
			errs = append(errs, err)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	b, err := json.Marshal(sums)
	if err != nil {
		return nil, err
	}
	return sums, os.WriteFile(sumsFile, b, 0o644)
}

func writeFile(path string, write func(io.Writer) error) (sum, error) {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return sum{}, err
	}
	defer func() { _ = os.Remove(tmp) }()
	m, c := md5.New(), crc32.New(crc32.MakeTable(crc32.Castagnoli)) //nolint:gosec // see serve
	bw := bufio.NewWriterSize(io.MultiWriter(f, m, c), 1<<20)
	if err := write(bw); err != nil {
		_ = f.Close()
		return sum{}, err
	}
	if err := bw.Flush(); err != nil {
		_ = f.Close()
		return sum{}, err
	}
	if err := f.Close(); err != nil {
		return sum{}, err
	}
	return sum{MD5: m.Sum(nil), CRC32C: c.Sum(nil)}, os.Rename(tmp, path)
}

// entry is a file of a generated tree.
type entry struct {
	name string
	size int64
}

// bigTree is the 1 GiB package of issue 21: 8 × 128 MiB files and 2,000 small ones (16 KiB).
func bigTree(yield func(entry) bool) {
	for i := range 8 {
		if !yield(entry{fmt.Sprintf("scene/band%d.tif", i+1), 128 << 20}) {
			return
		}
	}
	for i := range 2000 {
		if !yield(entry{fmt.Sprintf("scene/tiles/%02d/tile%04d.json", i/100, i), 16 << 10}) {
			return
		}
	}
}

// smallTree is 100,000 files of 512 B to 3.5 KiB in 100 directories.
func smallTree(yield func(entry) bool) {
	for i := range 100_000 {
		if !yield(entry{fmt.Sprintf("tiles/%02d/tile%05d.bin", i/1000, i), int64(512 + (i*7919)%3072)}) {
			return
		}
	}
}

func source() io.Reader { return rand.NewChaCha8([32]byte{'f', 'e', 't', 'c', 'h'}) }

func writeTar(w io.Writer, tree func(func(entry) bool)) error {
	tw := tar.NewWriter(w)
	src := source()
	dirs := map[string]bool{}
	var err error
	tree(func(e entry) bool {
		for _, d := range parents(e.name) {
			if !dirs[d] {
				dirs[d] = true
				if err = tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
					return false
				}
			}
		}
		if err = tw.WriteHeader(&tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: e.size}); err != nil {
			return false
		}
		_, err = io.CopyN(tw, src, e.size)
		return err == nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func writeTarGz(w io.Writer, tree func(func(entry) bool)) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if err := writeTar(gz, tree); err != nil {
		return err
	}
	return gz.Close()
}

func writeZip(w io.Writer) error {
	zw := zip.NewWriter(w)
	src := source()
	var err error
	bigTree(func(e entry) bool {
		var fw io.Writer
		if fw, err = zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Store}); err != nil {
			return false
		}
		_, err = io.CopyN(fw, src, e.size)
		return err == nil
	})
	if err != nil {
		return err
	}
	return zw.Close()
}

// parents lists the directories above name, outermost first.
func parents(name string) []string {
	var out []string
	for d := filepath.Dir(name); d != "."; d = filepath.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
