package fetch

import (
	"archive/tar"
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tarOf(t testing.TB, entries ...tar.Header) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Name))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(h.Name))
		}
	}
	_ = tw.Close()
	return buf.Bytes()
}

// FuzzExtractTar feeds arbitrary tar streams to the extractor. Whatever it accepts must stay inside the
// destination: nothing is written next to it, and every link of the tree resolves inside it.
func FuzzExtractTar(f *testing.F) {
	link := func(name, target string) tar.Header {
		return tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}
	}
	reg := func(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644} }
	dir := func(name string) tar.Header { return tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755} }
	for _, seed := range [][]tar.Header{
		{dir("scene/"), reg("scene/band1.tif"), link("scene/latest", "band1.tif")},
		{link("y", "."), link("x", "y/..")},
		{link("x", "y/.."), link("y", ".")},
		{link("a/b", ".."), link("c", "a/b/..")},
		{link("d", "sub"), reg("d/f")},
		{reg("../evil")},
		{link("l", "/etc/passwd")},
		{dir("a/"), link("a/up", "../a/../.."), reg("a/f")},
	} {
		f.Add(tarOf(f, seed...))
	}
	f.Fuzz(func(t *testing.T, archive []byte) {
		base := t.TempDir()
		stage := filepath.Join(base, "stage")
		if err := os.Mkdir(stage, 0o700); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "archive.tar")
		if err := os.WriteFile(file, archive, 0o600); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = in.Close() }()
		o := DefaultOptions()
		o.MaxBytes, o.MaxEntries = 1<<20, 1000
		err = unpack(o, in, FormatTar, stage)

		if entries, _ := os.ReadDir(base); len(entries) != 1 {
			t.Fatalf("something was written next to the destination: %v", entries)
		}
		if err != nil {
			return
		}
		walkErr := filepath.WalkDir(stage, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.Type()&fs.ModeSymlink == 0 {
				return err
			}
			resolved, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil // dangling or a loop: leads nowhere
			}
			if resolved != stage && !strings.HasPrefix(resolved, stage+string(filepath.Separator)) {
				target, _ := os.Readlink(p)
				t.Fatalf("link %s -> %s resolves outside the destination, to %s", p, target, resolved)
			}
			return nil
		})
		if walkErr != nil {
			t.Fatal(walkErr)
		}
	})
}
