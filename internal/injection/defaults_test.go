package injection

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"
)

// The chart's injection values say what the manager's flags default to.
func TestChartValuesAreTheDefaults(t *testing.T) {
	g := NewWithT(t)
	data, err := os.ReadFile(filepath.Join("..", "..", "dist", "chart", "values.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var values struct {
		Injection struct {
			SizeLimit string         `json:"sizeLimit"`
			Resources map[string]any `json:"resources"`
		} `json:"injection"`
	}
	g.Expect(yaml.Unmarshal(data, &values)).To(Succeed())
	g.Expect(values.Injection.SizeLimit).To(Equal(DefaultSizeLimit))
	raw, err := yaml.Marshal(values.Injection.Resources)
	g.Expect(err).NotTo(HaveOccurred())
	chart, err := ParseResources(string(must(yaml.YAMLToJSON(raw))))
	g.Expect(err).NotTo(HaveOccurred())
	def, err := ParseResources(DefaultResources)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(equality.Semantic.DeepEqual(chart, def)).To(BeTrue(), "chart %v, default %v", chart, def)
}

func TestParseEnv(t *testing.T) {
	g := NewWithT(t)
	e, err := ParseEnv("NO_PROXY=.svc,10.0.0.0/8")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(e.Name).To(Equal("NO_PROXY"))
	g.Expect(e.Value).To(Equal(".svc,10.0.0.0/8"))
	_, err = ParseEnv("HTTPS_PROXY")
	g.Expect(err).To(MatchError(ContainSubstring("want NAME=VALUE")))
	_, err = ParseEnv("1X=y")
	g.Expect(err).To(HaveOccurred())
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
