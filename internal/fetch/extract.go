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

// archiveKind decides how to unpack the download: as asked, or by its first bytes when auto.
func archiveKind(o Options, f *os.File) (string, error) {
	if o.Extract != FormatAuto {
		return o.Extract, nil
	}
	head := make([]byte, 512)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte("PK\x03\x04")), bytes.HasPrefix(head, []byte("PK\x05\x06")):
		return FormatZip, nil
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return FormatTarGz, nil
	case len(head) >= 262 && string(head[257:262]) == "ustar":
		return FormatTar, nil
	default:
		return FormatNone, nil
	}
}

// extractInto unpacks the archive into a staging directory inside Dest (Dest is usually a volume's
// mount point, which cannot itself be replaced by a rename), checks every link of the finished tree,
// and only then renames each top-level entry into place. A refused or broken archive leaves Dest as
// it was.
func extractInto(o Options, f *os.File, kind string) error {
	staging, err := os.MkdirTemp(o.Dest, stagingPattern)
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(staging) }()
	if err := unpack(o, f, kind, staging); err != nil {
		return err
	}
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

// unpack extracts the archive in f into dir.
func unpack(o Options, f *os.File, kind, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	x := newExtractor(o, root)
	defer x.close()

	switch kind {
	case FormatZip:
		info, err := f.Stat()
		if err != nil {
			return err
		}
		zr, err := zip.NewReader(f, info.Size())
		if err != nil {
			return fmt.Errorf("reading zip archive: %w", err)
		}
		if len(zr.File) > o.MaxEntries {
			return refused("the archive has %d entries, more than --max-entries (%d)", len(zr.File), o.MaxEntries)
		}
		for _, zf := range zr.File {
			if err := x.zipEntry(zf); err != nil {
				return err
			}
		}
	case FormatTar, FormatTarGz:
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		var r io.Reader = bufio.NewReader(f)
		if kind == FormatTarGz {
			gz, err := gzip.NewReader(r)
			if err != nil {
				return fmt.Errorf("reading gzip stream: %w", err)
			}
			defer func() { _ = gz.Close() }()
			r = gz
		}
		if err := x.tarEntries(tar.NewReader(r)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown archive format %q", kind)
	}
	// Each link was checked when it was created, against the links extracted before it; a link
	// extracted later can change where an earlier one leads, so the finished tree is checked again.
	return x.checkLinks()
}

func (x *extractor) tarEntries(tr *tar.Reader) error {
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
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
