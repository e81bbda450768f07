package manager_test

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/pixxel-space/taskdownload-operator/internal/injection"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
)

// --enable-injection without the gates controller would inject gates no one removes: it is refused at
// start, saying why.
func TestInjectionNeedsSchedulingGates(t *testing.T) {
	g := NewWithT(t)
	o := manager.DefaultOptions()
	o.Injection = &injection.SetupOptions{Config: injection.Config{Image: "img"}}
	g.Expect(o.Validate()).To(MatchError(ContainSubstring("--enable-injection requires --enable-scheduling-gates")))
	o.EnableSchedulingGates = true
	g.Expect(o.Validate()).To(Succeed())
	o.Injection.Config.Image = ""
	g.Expect(o.Validate()).To(MatchError(ContainSubstring("--enable-injection requires --injection-image")))
}
