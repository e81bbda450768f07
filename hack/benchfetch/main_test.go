package main

import (
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

// Without the references the bench stops at once and names what to install, before generating gigabytes.
func TestMissingToolsAreNamed(t *testing.T) {
	g := NewWithT(t)
	t.Setenv("PATH", t.TempDir())
	cache := filepath.Join(t.TempDir(), "cache")
	err := run("bin/fetch", cache, "", 1, []string{"tar"}, filepath.Join(t.TempDir(), "out.json"))
	g.Expect(err).To(MatchError(ContainSubstring(
		"missing: curl, tar, unzip (Debian/Ubuntu: apt-get install curl tar unzip)")))
	g.Expect(cache).NotTo(BeADirectory())
}

func TestMedian(t *testing.T) {
	g := NewWithT(t)
	g.Expect(median([]float64{3, 1, 2})).To(Equal(2.0))
	g.Expect(median([]float64{4, 1, 3, 2})).To(Equal(2.5))
}
