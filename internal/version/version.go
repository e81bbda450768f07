// Package version tells which build of the operator is running. Release builds set Version and Revision
// with -ldflags "-X github.com/pixxel-space/taskdownload-operator/internal/version.Version=v0.1.0 ...";
// other builds fall back to what the Go toolchain stamped into the binary (module version, VCS revision).
package version

import (
	"runtime/debug"
	"sync"
)

// Set at link time by release builds; empty otherwise.
var (
	Version  string
	Revision string
)

var fromBuildInfo = sync.OnceValues(func() (string, string) {
	v, r := "(devel)", "unknown"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v, r
	}
	if info.Main.Version != "" {
		v = info.Main.Version
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" {
			r = s.Value
		}
	}
	return v, r
})

// Get returns the build's version and VCS revision.
func Get() (version, revision string) {
	version, revision = fromBuildInfo()
	if Version != "" {
		version = Version
	}
	if Revision != "" {
		revision = Revision
	}
	return version, revision
}

// String is the one-line form printed by --version: "v0.1.0 (revision 1a2b3c4)".
func String() string {
	v, r := Get()
	return v + " (revision " + r + ")"
}
