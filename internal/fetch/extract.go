package fetch

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pixxel-space/taskdownload-operator/internal/textutil"
)

// stagingPattern names the directories archives are extracted into (os.MkdirTemp); leftovers of a
// killed run are removed by the next one.
const stagingPattern = ".fetch-extract-*"

// detectFormat decides how to unpack a package: as asked, or by its first bytes when auto.
func detectFormat(o Options, head []byte) string {
	if o.Extract != FormatAuto {
		return o.Extract
	}
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return FormatZip
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return FormatTarGz
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return FormatTar
	default:
		return FormatNone
	}
}

// detectLength is how many first bytes detectFormat looks at.
const detectLength = 512

// streams reports whether a format is extracted while it downloads.
func streams(format string) bool { return format == FormatTar || format == FormatTarGz }

// newStaging makes the directory an archive is extracted into, inside Dest (Dest is usually a volume's
// mount point, which cannot itself be replaced by a rename).
func newStaging(o Options) (string, error) {
	return os.MkdirTemp(o.Dest, stagingPattern)
}

// place renames each top-level entry of the finished staging directory into Dest, and removes it.
// Until then a refused or broken archive leaves Dest as it was.
func place(o Options, staging string) error {
	defer func() { _ = os.RemoveAll(staging) }()
	entries, err := os.ReadDir(staging)
	if err != nil {
		return err
	}
	for _, e := range entries {
		target := filepath.Join(o.Dest, e.Name())
		if err := os.RemoveAll(target); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(staging, e.Name()), target); err != nil {
			return fmt.Errorf("moving %q into place: %w", e.Name(), err)
		}
	}
	return nil
}

// extractFile unpacks the downloaded archive in f (a zip: its directory is at its end) into a staging
// directory, and places the result.
func extractFile(o Options, f *os.File, format string) error {
	staging, err := newStaging(o)
	if err != nil {
		return err
	}
	if err := unpack(o, f, format, staging); err != nil {
		_ = os.RemoveAll(staging)
		return err
	}
	return place(o, staging)
}

// unpack extracts the archive in f into dir.
func unpack(o Options, f *os.File, format, dir string) error {
	if format == FormatZip {
		return withExtractor(o, dir, func(x *extractor) error { return x.zipArchive(f) })
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return unpackStream(o, f, format, dir)
}

// unpackStream extracts a tar or tar.gz read from r into dir, and reads r to its end.
func unpackStream(o Options, r io.Reader, format, dir string) error {
	return withExtractor(o, dir, func(x *extractor) error { return x.tarStream(r, format) })
}

// withExtractor runs fill with an extractor confined to dir, then checks the links of the finished tree.
func withExtractor(o Options, dir string, fill func(*extractor) error) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	x := newExtractor(o, root)
	defer x.close()
	if err := fill(x); err != nil {
		return err
	}
	return x.checkLinks()
}

// zipArchive extracts a zip. Its entries are counted from the central directory's own records before
// archive/zip reads it, which allocates for every entry.
func (x *extractor) zipArchive(f *os.File) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if err := checkZipEntries(f, info.Size(), x.o.MaxEntries); err != nil {
		return err
	}
	zr, err := zip.NewReader(f, info.Size())
	if err != nil {
		return fmt.Errorf("reading zip archive: %w", err)
	}
	if len(zr.File) > x.o.MaxEntries {
		return x.tooManyEntries()
	}
	for _, zf := range zr.File {
		if err := x.zipEntry(zf); err != nil {
			return err
		}
	}
	return nil
}

// maxTrailer bounds what a tar.gz may expand to after the end of its tar stream: tar pads its last
// record with at most 10 KiB of zeros; more is a decompression bomb.
const maxTrailer = 1 << 20

// tarStream extracts a tar, or a gzip-compressed one, and reads r to its end, so that the whole
// download passes through the digest and gzip's own checksum is verified.
func (x *extractor) tarStream(r io.Reader, format string) error {
	if format != FormatTarGz {
		if err := x.tarEntries(tar.NewReader(r)); err != nil {
			return err
		}
		_, err := io.Copy(io.Discard, r) // the download's own --max-bytes bounds this
		return err
	}
	gz, err := gzip.NewReader(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return fmt.Errorf("reading gzip stream: %w", err)
	}
	defer func() { _ = gz.Close() }()
	// Entries' headers are small; everything else is file data, bounded by --max-bytes.
	limit := x.o.MaxBytes + int64(x.o.MaxEntries)*(8<<10) + maxTrailer
	expanded := &limitedExpansion{r: gz, left: limit}
	if err := x.tarEntries(tar.NewReader(expanded)); err != nil {
		if expanded.left < 0 {
			return x.bomb()
		}
		return err
	}
	n, err := io.Copy(io.Discard, io.LimitReader(gz, maxTrailer+1))
	if err != nil {
		return fmt.Errorf("reading gzip stream: %w", err)
	}
	if n > maxTrailer {
		return x.bomb()
	}
	return nil
}

func (x *extractor) bomb() error {
	return refused("the archive expands to more than its entries hold (a decompression bomb)")
}

// limitedExpansion ends a decompressed stream that outgrows what its entries can account for.
type limitedExpansion struct {
	r    io.Reader
	left int64
}

func (l *limitedExpansion) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errBomb
	}
	return n, err
}

var errBomb = errors.New("decompression bomb")

func (x *extractor) tarEntries(tr *tar.Reader) error {
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if errors.Is(err, errBomb) {
			return x.bomb()
		}
		if err != nil {
			return fmt.Errorf("reading tar archive: %w", err)
		}
		if err := x.count(); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = x.dir(h.Name)
		case tar.TypeReg:
			err = x.file(h.Name, h.Size, tr)
		case tar.TypeSymlink:
			err = x.symlink(h.Name, h.Linkname)
		case tar.TypeXGlobalHeader:
		default:
			err = refused("archive entry %q has type %q (hard links, devices and FIFOs are not extracted)",
				cleanName(h.Name), string(h.Typeflag))
		}
		if err != nil {
			return err
		}
	}
}

func (x *extractor) zipEntry(zf *zip.File) error {
	if err := x.count(); err != nil {
		return err
	}
	mode := zf.Mode()
	switch {
	case mode.IsDir():
		return x.dir(zf.Name)
	case mode&os.ModeSymlink != 0:
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("reading zip entry %q: %w", cleanName(zf.Name), err)
		}
		target, err := io.ReadAll(io.LimitReader(rc, MaxPathLength+1))
		_ = rc.Close()
		if err != nil {
			return fmt.Errorf("reading zip entry %q: %w", cleanName(zf.Name), err)
		}
		return x.symlink(zf.Name, string(target))
	case mode.IsRegular():
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("reading zip entry %q: %w", cleanName(zf.Name), err)
		}
		defer func() { _ = rc.Close() }()
		return x.file(zf.Name, int64(min(zf.UncompressedSize64, 1<<62)), rc)
	default:
		return refused("archive entry %q is not a regular file, directory or symbolic link", cleanName(zf.Name))
	}
}

// cleanName is how an archive's entry name appears in errors (always through %q, which escapes
// control characters): cut, and valid UTF-8.
func cleanName(name string) string {
	return strings.ToValidUTF8(textutil.Truncate(name, 200, "…"), "\uFFFD")
}
