package main

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"crypto/md5" //nolint:gosec // the ETag S3 sends for a single-part upload, which fetch verifies
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
)

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
