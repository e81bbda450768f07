package fetch_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/fetch"
)

func TestExtractsZipAndTarGz(t *testing.T) {
	g := NewWithT(t)
	o, err := fetchArchive(t, zipArchive(t, map[string]string{"scene/band1.tif": "B1", "scene/meta.json": "{}"},
		map[string]string{"scene/latest.tif": "band1.tif"}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "scene", "band1.tif"))).To(Equal([]byte("B1")))
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "scene", "latest.tif"))).To(Equal([]byte("B1")), "links inside the tree are kept")

	o, err = fetchArchive(t, tarGz(t, []tar.Header{
		{Name: "scene/", Typeflag: tar.TypeDir, Mode: 0o700},
		regular("scene/band2.tif"),
		symlink("scene/all", "."),                // a link to its own directory stays inside
		symlink("top", "scene/all/../scene/all"), // and so does a path through it that comes back
	}, map[string]string{"scene/band2.tif": "B2"}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.ReadFile(filepath.Join(o.Dest, "top", "band2.tif"))).To(Equal([]byte("B2")))
	g.Expect(tree(t, o.Dest)).To(ConsistOf("scene/", "scene/band2.tif", "scene/all -> .", "top -> scene/all/../scene/all",
		".taskdownload.json"), "only the extracted tree and fetch's record are left")
}

// Each case is an archive that must be refused with exit code 5, leaving nothing in the destination.
func TestRefusesUnsafeArchives(t *testing.T) {
	for _, tc := range []struct {
		name    string
		archive func(t *testing.T) []byte
		want    string
	}{
		// y -> . is harmless on its own, and x -> y/.. looks like "." on its own text; through y it is
		// the destination's parent.
		{"tar y -> . then x -> y/..", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{symlink("y", "."), symlink("x", "y/..")}, nil)
		}, `"x" is a symbolic link that resolves outside the destination`},
		{"tar x -> y/.. then y -> .", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{symlink("x", "y/.."), symlink("y", ".")}, nil)
		}, `"x" is a symbolic link that resolves outside the destination`},
		{"tar link chain out", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{symlink("a/b", ".."), symlink("c", "a/b/..")}, nil)
		}, `"c" is a symbolic link that resolves outside the destination`},
		{"zip y -> . and x -> y/..", func(t *testing.T) []byte {
			return zipArchive(t, nil, map[string]string{"y": ".", "x": "y/.."})
		}, "resolves outside the destination"},
		{"zip slip", func(t *testing.T) []byte {
			return zipArchive(t, map[string]string{"../../evil.sh": "boom"}, nil)
		}, "outside the destination"},
		{"zip absolute path", func(t *testing.T) []byte {
			return zipArchive(t, map[string]string{"/etc/evil": "boom"}, nil)
		}, "outside the destination"},
		{"zip symlink out", func(t *testing.T) []byte {
			return zipArchive(t, nil, map[string]string{"link": "../../../etc/passwd"})
		}, "resolves outside the destination"},
		{"tar symlink to an absolute path", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{symlink("dir", "/tmp"), regular("dir/evil")}, map[string]string{"dir/evil": "boom"})
		}, "absolute path"},
		{"tar relative symlink escape", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{symlink("a/link", "../../x")}, nil)
		}, "resolves outside the destination"},
		{"tar write through inner symlink", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{symlink("inner", "sub"), regular("inner/evil")}, map[string]string{"inner/evil": "boom"})
		}, "passes through a symbolic link"},
		{"tar file replaced by a link", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{regular("f"), symlink("f", "../../etc/passwd")}, nil)
		}, "resolves outside the destination"},
		{"tar entry twice", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{regular("f"), regular("f")}, nil)
		}, "appears twice"},
		{"tar hard link", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{{Name: "h", Typeflag: tar.TypeLink, Linkname: "/etc/passwd"}}, nil)
		}, "hard links"},
		{"tar device", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{{Name: "d", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, nil)
		}, "devices"},
		{"tar name with control characters", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{regular("a\x1b[2Jb")}, nil)
		}, "control characters"},
		{"tar 100 levels deep", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{regular(strings.Repeat("d/", 99) + "f")}, nil)
		}, "levels deep"},
		{"tar entry named like fetch's own files", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{regular(".fetch-download.partial")}, nil)
		}, "fetch keeps for its own files"},
		{"tar name too long", func(t *testing.T) []byte {
			return tarGz(t, []tar.Header{regular(strings.Repeat("n", 300))}, nil)
		}, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			o, err := fetchArchive(t, tc.archive(t))
			g.Expect(err).To(MatchError(ContainSubstring(tc.want)))
			g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitRefused))
			g.Expect(tree(t, o.Dest)).To(BeEmpty(), "nothing of a refused archive is left in the destination")
		})
	}
}

func TestManyEmptyEntriesAreRefusedOverMaxEntries(t *testing.T) {
	g := NewWithT(t)
	g.Expect(fetch.DefaultOptions().MaxEntries).To(Equal(100_000))
	entries := make([]tar.Header, 50_000)
	for i := range entries {
		entries[i] = regular(fmt.Sprintf("e/%d/%d", i%100, i))
	}
	withLimit := func(o *fetch.Options) { o.MaxEntries = 1000 }
	o, err := fetchArchive(t, tarGz(t, entries, nil), withLimit)
	g.Expect(err).To(MatchError(ContainSubstring("more than --max-entries (1000)")))
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitRefused))
	g.Expect(tree(t, o.Dest)).To(BeEmpty())

	_, err = fetchArchive(t, tarGz(t, entries[:1000], nil), withLimit)
	g.Expect(err).NotTo(HaveOccurred(), "--max-entries entries are accepted")
}

func TestExtractedSizeOverMaxBytesIsRefused(t *testing.T) {
	g := NewWithT(t)
	archive := tarGz(t, []tar.Header{regular("a"), regular("b")},
		map[string]string{"a": strings.Repeat("x", 30_000), "b": strings.Repeat("y", 30_000)})
	o, err := fetchArchive(t, archive, func(o *fetch.Options) { o.MaxBytes = 50_000 })
	g.Expect(err).To(MatchError(ContainSubstring("the extracted package is larger than --max-bytes")))
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitRefused))
	g.Expect(tree(t, o.Dest)).To(BeEmpty())
}

func TestFailedExtractionLeavesTheDestinationAsItWas(t *testing.T) {
	g := NewWithT(t)
	archive := tarGz(t, []tar.Header{regular("scene/new.tif"), regular("keep.txt"), symlink("x", "../..")},
		map[string]string{"scene/new.tif": "new", "keep.txt": "overwritten"})
	_, err := fetchArchive(t, archive, func(o *fetch.Options) {
		g.Expect(os.MkdirAll(filepath.Join(o.Dest, "scene"), 0o755)).To(Succeed())
		g.Expect(os.WriteFile(filepath.Join(o.Dest, "scene", "old.tif"), []byte("old"), 0o644)).To(Succeed())
		g.Expect(os.WriteFile(filepath.Join(o.Dest, "keep.txt"), []byte("mine"), 0o644)).To(Succeed())
		t.Cleanup(func() {
			g.Expect(tree(t, o.Dest)).To(ConsistOf("scene/", "scene/old.tif", "keep.txt"))
			g.Expect(os.ReadFile(filepath.Join(o.Dest, "keep.txt"))).To(Equal([]byte("mine")))
		})
	})
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitRefused))
}

// Whatever the archive and the umask say, files are 0644 and directories 0755, so that the pod's
// other containers (other UIDs, same fsGroup or not) can read them; --file-mode/--dir-mode change that.
func TestModes(t *testing.T) {
	old := syscall.Umask(0o077)
	t.Cleanup(func() { syscall.Umask(old) })
	archive := tarGz(t, []tar.Header{
		{Name: "scene/", Typeflag: tar.TypeDir, Mode: 0o700},
		{Name: "scene/deep/band.tif", Typeflag: tar.TypeReg, Mode: 0o600},
		{Name: "run.sh", Typeflag: tar.TypeReg, Mode: 0o777},
	}, nil)
	for _, tc := range []struct {
		name            string
		file, dir       os.FileMode
		wantFile, wantD os.FileMode
	}{
		{"defaults", 0, 0, 0o644, 0o755},
		{"--file-mode=0640 --dir-mode=0750", 0o640, 0o750, 0o640, 0o750},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			o, err := fetchArchive(t, archive, func(o *fetch.Options) { o.FileMode, o.DirMode = tc.file, tc.dir })
			g.Expect(err).NotTo(HaveOccurred())
			for _, f := range []string{"scene/deep/band.tif", "run.sh"} {
				info, err := os.Stat(filepath.Join(o.Dest, f))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(info.Mode().Perm()).To(Equal(tc.wantFile), f)
			}
			for _, d := range []string{"scene", "scene/deep"} {
				info, err := os.Stat(filepath.Join(o.Dest, d))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(info.Mode().Perm()).To(Equal(tc.wantD), d)
			}
		})
	}
}

// The case measured in issue 19: 100 links 63 levels deep, each climbing to the root and down again
// (3 KiB of tar.gz). Each link is resolved once, from the extractor's own record of the tree.
func TestDeepLinksAreExtracted(t *testing.T) {
	g := NewWithT(t)
	dir := strings.Repeat("d/", fetch.MaxPathDepth-1)
	up := strings.Repeat("../", fetch.MaxPathDepth-1)
	entries := make([]tar.Header, 0, 101)
	entries = append(entries, regular(dir+"band.tif"))
	for i := range 100 {
		entries = append(entries, symlink(fmt.Sprintf("%sl%d", dir, i), up+dir+"band.tif"))
	}
	o, err := fetchArchive(t, tarGz(t, entries, map[string]string{dir + "band.tif": "B1"}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.ReadFile(filepath.Join(o.Dest, dir, "l99"))).To(Equal([]byte("B1")))
}

// A zip's entries are counted before archive/zip reads its central directory: 400,000 entries are
// refused (exit 5) with a few MiB allocated, not the 250 MiB archive/zip allocates for them.
func TestZipWithTooManyEntriesIsRefusedBeforeItsDirectoryIsRead(t *testing.T) {
	g := NewWithT(t)
	archive := emptyEntriesZip(400_000)
	s := newStorage(t, archive)
	o, _ := serveURL(t, s.url("good"))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	err := fetch.Run(context.Background(), o)
	runtime.ReadMemStats(&after)
	g.Expect(err).To(MatchError(ContainSubstring("more than --max-entries (100000)")))
	g.Expect(fetch.ExitCode(err)).To(Equal(fetch.ExitRefused))
	g.Expect(after.TotalAlloc-before.TotalAlloc).To(BeNumerically("<", 20<<20), "bytes allocated")
	g.Expect(tree(t, o.Dest)).To(BeEmpty())

	// The same check lets a zip of --max-entries entries through.
	_, err = fetchArchive(t, emptyEntriesZip(1000), func(o *fetch.Options) { o.MaxEntries = 1000 })
	g.Expect(err).NotTo(HaveOccurred())
}

// emptyEntriesZip writes a zip of n empty stored files by hand: archive/zip's writer would keep
// n headers in memory and take seconds.
func emptyEntriesZip(n int) []byte {
	var local, dir bytes.Buffer
	le := binary.LittleEndian
	for i := range n {
		name := fmt.Sprintf("f%07d", i)
		offset := local.Len()
		h := make([]byte, 30)
		le.PutUint32(h, 0x04034b50)
		le.PutUint16(h[4:], 10)
		le.PutUint16(h[26:], uint16(len(name)))
		local.Write(h)
		local.WriteString(name)
		d := make([]byte, 46)
		le.PutUint32(d, 0x02014b50)
		le.PutUint16(d[4:], 0x031e) // made by unix
		le.PutUint16(d[6:], 10)
		le.PutUint16(d[28:], uint16(len(name)))
		le.PutUint32(d[38:], 0o100644<<16)
		le.PutUint32(d[42:], uint32(offset))
		dir.Write(d)
		dir.WriteString(name)
	}
	end := make([]byte, 22)
	le.PutUint32(end, 0x06054b50)
	le.PutUint16(end[8:], uint16(min(n, 0xffff)))
	le.PutUint16(end[10:], uint16(min(n, 0xffff)))
	le.PutUint32(end[12:], uint32(dir.Len()))
	le.PutUint32(end[16:], uint32(local.Len()))
	return append(append(local.Bytes(), dir.Bytes()...), end...)
}
