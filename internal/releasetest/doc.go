// Package releasetest checks what a release ships (make release, make build-installer's rendering)
// and that VERSION, the chart and config/manager name one version and one image.
package releasetest
