package fetch

import (
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// The final link check of 100,000 links 63 levels deep, each leading through the root to the link
// before it (chains of 30), walks each element of each target once: linear in the archive, where a
// walk of the tree per element took hours. It needs no system call, so it counts steps, not time.
func TestLinkCheckIsLinear(t *testing.T) {
	g := NewWithT(t)
	const links, chain = 100_000, 30
	dir := strings.Repeat("d/", MaxPathDepth-1)
	up := strings.Repeat("../", MaxPathDepth-1)
	x := &extractor{links: make(map[string]string, links)}
	elements := 0
	for i := range links {
		p := fmt.Sprintf("%sl%d", dir, i)
		target := up + "target"
		if i%chain != 0 {
			target = fmt.Sprintf("%s%sl%d", up, dir, i-1)
		}
		x.links[p] = target
		x.linkOrder = append(x.linkOrder, p)
		elements += strings.Count(target, "/") + 1
	}
	g.Expect(x.checkLinks()).To(Succeed())
	g.Expect(x.linkSteps).To(BeNumerically("<=", elements), "each element of each target is walked once")

	// The same links with one of them leading out are refused.
	x.links[x.linkOrder[links/2]] = up + "../etc"
	g.Expect(x.checkLinks()).To(MatchError(ContainSubstring("resolves outside the destination")))
}

func TestLinkCycleIsRefused(t *testing.T) {
	x := &extractor{links: map[string]string{"a": "b/x", "b": "a/y"}, linkOrder: []string{"a", "b"}}
	NewWithT(t).Expect(x.checkLinks()).To(MatchError(ContainSubstring("too many levels of symbolic links")))
}
