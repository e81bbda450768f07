package alerts

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// repoRoot is the operator's repository: this module lives in test/alerts.
var repoRoot = filepath.Join("..", "..")

// TestAlertingRules runs rules_test.yaml (promtool's unit test format) on the spec of
// config/prometheus/prometheus_rule.yaml, which internal/deploytest keeps equal to the Helm chart's
// rules with default values.
func TestAlertingRules(t *testing.T) {
	dir := t.TempDir()
	writeRuleFile(t, filepath.Join(repoRoot, "config", "prometheus", "prometheus_rule.yaml"),
		filepath.Join(dir, "rules.yaml"))
	f, err := parseTestFile("rules_test.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tests) == 0 {
		t.Fatal("rules_test.yaml has no tests")
	}
	for _, tg := range f.Tests {
		t.Run(tg.Name, func(t *testing.T) {
			for _, err := range tg.run(time.Duration(f.EvaluationInterval), f.RuleFiles) {
				t.Error(err)
			}
		})
	}
}

// writeRuleFile writes the spec of a PrometheusRule as a Prometheus rule file.
func writeRuleFile(t *testing.T, prometheusRule, ruleFile string) {
	t.Helper()
	data, err := os.ReadFile(prometheusRule)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Spec any `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ruleFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
}
