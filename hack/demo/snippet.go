package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// operatorRepository is the image repository of the release; VERSION names its tag.
const operatorRepository = "ghcr.io/pixxel-space/taskdownload-operator"

// podSnippet is the part of a pod spec that downloads and unpacks what a TaskDownload published to the
// ConfigMap configMap: an init container running the fetch helper of the operator's image. The image's
// entrypoint is /manager, so the container names /fetch as its command. snippet_test.go runs it.
func podSnippet(image, configMap string) string {
	return fmt.Sprintf(`initContainers:
  - name: fetch
    image: %s
    command: ["/fetch"]
    args: [--url-file=/etc/taskdownload/SIGNED_URL, --dest=/data]
    volumeMounts:
      - {name: download, mountPath: /etc/taskdownload, readOnly: true}
      - {name: data, mountPath: /data}
volumes:
  - {name: download, configMap: {name: %s}}
  - {name: data, emptyDir: {}}
`, image, configMap)
}

// releaseImage is the operator image of this checkout's VERSION.
func releaseImage() string {
	v, err := os.ReadFile(filepath.Join(envtestutil.RepoRoot(), "VERSION"))
	if err != nil {
		return operatorRepository + ":<version>"
	}
	return operatorRepository + ":" + strings.TrimSpace(string(v))
}

// indent prefixes every non-empty line of s with prefix.
func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}
