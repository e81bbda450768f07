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
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

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

// extractInto unpacks the archive into a staging directory inside Dest, then renames each top-level
// entry into place, so that readers never see a half-extracted tree.
func extractInto(o Options, f *os.File, kind string) error {
	staging, err := os.MkdirTemp(o.Dest, ".fetch-extract-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(staging) }()
	x := &extractor{root: staging, limit: o.MaxBytes}

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
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("reading tar archive: %w", err)
			}
			if err := x.tarEntry(h, tr); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown archive format %q", kind)
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
			return fmt.Errorf("moving %s into place: %w", e.Name(), err)
		}
	}
	return nil
}

// extractor writes archive entries under root, refusing anything that would land outside it.
type extractor struct {
	root    string
	limit   int64
	written int64
}

// resolve maps an entry name to a path under root, refusing absolute paths, ".." escapes and paths
// that pass through a symbolic link.
func (x *extractor) resolve(name string) (string, error) {
	clean := filepath.Clean(filepath.FromSlash(name))
	if filepath.IsAbs(clean) || strings.HasPrefix(name, "/") || clean == ".." ||
		strings.HasPrefix(clean, ".."+string(filepath.Separator)) || filepath.VolumeName(clean) != "" {
		return "", fmt.Errorf("archive entry %q points outside the destination; refusing to extract", name)
	}
	if clean == "." {
		return x.root, nil
	}
	// No parent may be a symlink: writing through one could escape the destination.
	parts := strings.Split(clean, string(filepath.Separator))
	cur := x.root
	for _, p := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, p)
		info, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			return "", fmt.Errorf("archive entry %q passes through a symbolic link; refusing to extract", name)
		}
	}
	return filepath.Join(x.root, clean), nil
}

func (x *extractor) symlink(name, target, dest string) error {
	if filepath.IsAbs(target) {
		return fmt.Errorf("archive entry %q is a symbolic link to an absolute path; refusing to extract", name)
	}
	resolved := filepath.Join(filepath.Dir(dest), target)
	rel, err := filepath.Rel(x.root, resolved)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("archive entry %q is a symbolic link that leaves the destination; refusing to extract", name)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	return os.Symlink(target, dest)
}

func (x *extractor) file(name, dest string, mode fs.FileMode, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm()|0o600)
	if err != nil {
		return fmt.Errorf("extracting %q: %w", name, err)
	}
	n, err := io.Copy(out, io.LimitReader(r, x.limit-x.written+1))
	x.written += n
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extracting %q: %w", name, err)
	}
	if x.written > x.limit {
		return fmt.Errorf("the extracted package exceeds the limit of %d bytes; refusing to extract", x.limit)
	}
	return nil
}

func (x *extractor) zipEntry(zf *zip.File) error {
	dest, err := x.resolve(zf.Name)
	if err != nil {
		return err
	}
	mode := zf.Mode()
	switch {
	case mode.IsDir():
		return os.MkdirAll(dest, 0o755)
	case mode&fs.ModeSymlink != 0:
		rc, err := zf.Open()
		if err != nil {
			return err
		}
		target, err := io.ReadAll(io.LimitReader(rc, 4096))
		_ = rc.Close()
		if err != nil {
			return err
		}
		return x.symlink(zf.Name, string(target), dest)
	case mode.IsRegular():
		rc, err := zf.Open()
		if err != nil {
			return fmt.Errorf("extracting %q: %w", zf.Name, err)
		}
		defer func() { _ = rc.Close() }()
		return x.file(zf.Name, dest, mode, rc)
	default:
		return fmt.Errorf("archive entry %q is not a regular file, directory or symlink; refusing to extract", zf.Name)
	}
}

func (x *extractor) tarEntry(h *tar.Header, r io.Reader) error {
	dest, err := x.resolve(h.Name)
	if err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return os.MkdirAll(dest, 0o755)
	case tar.TypeReg:
		return x.file(h.Name, dest, fs.FileMode(h.Mode), r)
	case tar.TypeSymlink:
		return x.symlink(h.Name, h.Linkname, dest)
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("archive entry %q has type %q (hard links, devices and FIFOs are not extracted)", h.Name, string(h.Typeflag))
	}
}
