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
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
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

// run measures the chosen formats, printing a line for each, and writes every run's figures to out.
func run(fetchBin, cache, work string, runs int, formats []string, out string) error {
	if err := checkTools(fetchBin); err != nil {
		return err
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

// checkTools makes sure the references' tools and the fetch binary are there, before gigabytes are
// generated.
func checkTools(fetchBin string) error {
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
	return nil
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
