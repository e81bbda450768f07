package fetch

import (
	"archive/tar"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkExtractDeepTree extracts 2,000 files at the deepest level allowed (MaxPathDepth) in 20
// directory chains: listed directory by directory as tar writes a tree ("grouped"), and with every
// file in another directory than the one before ("interleaved"), the worst case for path walks.
func BenchmarkExtractDeepTree(b *testing.B) {
	for _, order := range []struct {
		name  string
		chain func(i int) int
	}{
		{"grouped", func(i int) int { return i / 100 }},
		{"interleaved", func(i int) int { return i % 20 }},
	} {
		b.Run(order.name, func(b *testing.B) {
			entries := make([]tar.Header, 0, 2000)
			for i := range 2000 {
				dir := strings.Repeat(fmt.Sprintf("d%d/", order.chain(i)), MaxPathDepth-1)
				entries = append(entries, tar.Header{Name: dir + fmt.Sprintf("f%d", i), Typeflag: tar.TypeReg, Mode: 0o644})
			}
			archive := filepath.Join(b.TempDir(), "deep.tar")
			if err := os.WriteFile(archive, tarOf(b, entries...), 0o600); err != nil {
				b.Fatal(err)
			}
			o := DefaultOptions()
			for b.Loop() {
				f, err := os.Open(archive)
				if err != nil {
					b.Fatal(err)
				}
				if err := unpack(o, f, FormatTar, b.TempDir()); err != nil {
					b.Fatal(err)
				}
				_ = f.Close()
			}
		})
	}
}
