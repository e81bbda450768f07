package imagetest

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
)

func TestParseDockerfile(t *testing.T) {
	g := NewWithT(t)
	file := filepath.Join(t.TempDir(), "Dockerfile")
	g.Expect(os.WriteFile(file, []byte(`# builder
FROM --platform=${BUILDPLATFORM} golang:1.26 AS builder
COPY go.mod ./
USER root
RUN go build \
    -o /out/ ./cmd
LABEL stage="builder"

FROM example.com/base:nonroot
LABEL a="one two" \
      b=plain c="${VERSION}"
COPY --from=builder /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager", "--flag"]
`), 0o600)).To(Succeed())

	d, err := ParseDockerfile(file)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(d).To(Equal(&Dockerfile{
		Base:       "example.com/base:nonroot",
		User:       "65532:65532",
		Entrypoint: []string{"/manager", "--flag"},
		CopyDests:  []string{"/manager"},
		Labels:     map[string]string{"a": "one two", "b": "plain", "c": "${VERSION}"},
		BuildRuns:  []string{"go build  -o /out/ ./cmd"},
	}), "only the final stage describes the image; RUNs of every stage are kept")
}

func TestParseDockerfileRejects(t *testing.T) {
	for name, body := range map[string]string{
		"shell-form entrypoint": "FROM x\nENTRYPOINT /manager\n",
		"unterminated label":    "FROM x\nLABEL a=\"b\n",
		"dangling continuation": "FROM x\nRUN true \\\n",
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "Dockerfile")
			if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := ParseDockerfile(file); err == nil {
				t.Errorf("ParseDockerfile accepted %q", body)
			}
		})
	}
}
