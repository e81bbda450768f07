package deploytest

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metricsql"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
)

// TestPrometheusRules: the chart's and config/prometheus's alerts are the same, and each is valid
// PromQL over metrics the operator exports.
func TestPrometheusRules(t *testing.T) {
	g := NewWithT(t)
	chartRule := find(helmTemplate(t, "--set", "prometheus.prometheusRule.enabled=true"), "PrometheusRule", nil)
	kustRule := find(render(t, "kustomize", "build", overlay(t, nil, "config/prometheus")), "PrometheusRule", nil)
	g.Expect(chartRule).NotTo(BeNil())
	g.Expect(kustRule).NotTo(BeNil())
	g.Expect(kustRule.Object["spec"]).To(Equal(chartRule.Object["spec"]),
		"config/prometheus/prometheus_rule.yaml differs from the chart's rules with default values")

	runbooks := readRunbooks(t)
	groups, _, _ := unstructured.NestedSlice(chartRule.Object, "spec", "groups")
	alerts := map[string]map[string]any{}
	for _, grp := range groups {
		rules, _ := grp.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			rule := r.(map[string]any)
			name, _ := rule["alert"].(string)
			alerts[name] = rule
			t.Run(name, func(t *testing.T) {
				g := NewWithT(t)
				g.Expect(checkPromQL(t, rule["expr"].(string))).To(Succeed())
				if d, ok := rule["for"].(string); ok {
					g.Expect(d).To(MatchRegexp(`^([0-9]+(ms|s|m|h|d|w|y))+$`))
				}
				g.Expect(rule["labels"]).To(HaveKeyWithValue("severity", "warning"))
				g.Expect(rule["for"]).NotTo(BeEmpty(), "every alert waits before firing")
				g.Expect(rule["annotations"]).To(HaveKeyWithValue("summary", Not(BeEmpty())))
				g.Expect(rule["annotations"]).To(HaveKeyWithValue("description", Not(BeEmpty())))
				g.Expect(rule["annotations"]).To(HaveKeyWithValue("runbook_url",
					"https://github.com/pixxel-space/taskdownload-operator/blob/main/docs/runbooks.md#"+strings.ToLower(name)))
				g.Expect(runbooks).To(HaveKey(strings.ToLower(name)), "docs/runbooks.md has no section %s", name)
			})
		}
	}
	g.Expect(slices.Collect(maps.Keys(alerts))).To(ConsistOf("TaskDownloadNotReady", "TaskDownloadStalled", "TaskDownloadURLExpiringSoon",
		"TaskDownloadAPIErrors", "TaskDownloadOperatorAbsent"))
	anchors := make([]string, 0, len(alerts))
	for name := range alerts {
		anchors = append(anchors, strings.ToLower(name))
	}
	g.Expect(slices.Collect(maps.Keys(runbooks))).To(ConsistOf(anchors), "docs/runbooks.md has a section for each alert, no more")
	for name, body := range runbooks {
		for _, part := range []string{"**What it means.**", "**What to check.**", "**The fix.**"} {
			g.Expect(body).To(ContainSubstring(part), "runbook %s", name)
		}
	}
	// What each rule does is tested on series in test/alerts (promtool's unit test format).
}

// readRunbooks returns the sections of docs/runbooks.md by their anchor (the "## " heading, lower case).
func readRunbooks(t *testing.T) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(envtestutil.RepoRoot(), "docs", "runbooks.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	for _, part := range strings.Split(string(data), "\n## ")[1:] {
		heading, body, _ := strings.Cut(part, "\n")
		sections[strings.ToLower(strings.TrimSpace(heading))] = body
	}
	return sections
}

// TestGrafanaDashboard: the chart and config/grafana ship the same dashboard, for Grafana's sidecar,
// and every panel's query is valid.
func TestGrafanaDashboard(t *testing.T) {
	g := NewWithT(t)
	chartCM := find(helmTemplate(t, "--set", "grafanaDashboard.enabled=true"), "ConfigMap", nil)
	kustCM := find(render(t, "kustomize", "build", overlay(t, nil, "config/grafana")), "ConfigMap", nil)
	for _, cm := range []*unstructured.Unstructured{chartCM, kustCM} {
		g.Expect(cm).NotTo(BeNil())
		g.Expect(cm.GetLabels()).To(HaveKeyWithValue("grafana_dashboard", "1"))
	}
	chartJSON, _, _ := unstructured.NestedString(chartCM.Object, "data", "taskdownload-operator.json")
	kustJSON, _, _ := unstructured.NestedString(kustCM.Object, "data", "taskdownload-operator.json")
	g.Expect(kustJSON).To(MatchJSON(chartJSON), "config/grafana/taskdownload-operator.json differs from dist/chart/dashboards")

	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	g.Expect(json.Unmarshal([]byte(chartJSON), &dash)).To(Succeed())
	g.Expect(dash.UID).NotTo(BeEmpty())
	g.Expect(dash.Panels).NotTo(BeEmpty())
	panelOf := map[string]string{} // query → the panel that shows it
	titles := map[string]bool{}
	queried := map[string]bool{} // metric names any panel queries
	metricName := regexp.MustCompile(`\b(taskdownload_[a-z0-9_]+)`)
	for _, p := range dash.Panels {
		g.Expect(p.Targets).NotTo(BeEmpty(), p.Title)
		g.Expect(titles).NotTo(HaveKey(p.Title), "two panels are titled %q", p.Title)
		titles[p.Title] = true
		for _, target := range p.Targets {
			// Grafana's variables, as Grafana substitutes them.
			expr := strings.NewReplacer("$__rate_interval", "5m", "$job", ".*").Replace(target.Expr)
			g.Expect(checkPromQL(t, expr)).To(Succeed(), "panel %q", p.Title)
			query := strings.Join(strings.Fields(target.Expr), " ")
			g.Expect(panelOf).NotTo(HaveKey(query), "panel %q repeats the query of panel %q", p.Title, panelOf[query])
			panelOf[query] = p.Title
			for _, m := range metricName.FindAllStringSubmatch(expr, -1) {
				queried[strings.TrimSuffix(m[1], "_bucket")] = true
			}
		}
	}
	for m := range exportedMetrics(t) {
		if strings.HasPrefix(m, "taskdownload_") {
			g.Expect(queried).To(HaveKey(m), "no panel shows the operator's metric %s", m)
		}
	}
}

// TestServiceMonitor: the ServiceMonitor authenticates with a token Secret (no deprecated
// bearerTokenFile) whose ServiceAccount may read /metrics.
func TestServiceMonitor(t *testing.T) {
	g := NewWithT(t)
	for name, objs := range map[string][]*unstructured.Unstructured{
		"chart":     helmTemplate(t, monitoringArgs...),
		"kustomize": render(t, "kustomize", "build", overlay(t, nil, "config/prometheus")),
	} {
		sm := find(objs, "ServiceMonitor", nil)
		g.Expect(sm).NotTo(BeNil(), name)
		data, _ := json.Marshal(sm.Object)
		g.Expect(string(data)).NotTo(ContainSubstring("bearerTokenFile"), name)
		endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		g.Expect(endpoints).To(HaveLen(1))
		ep := endpoints[0].(map[string]any)
		g.Expect(ep).To(HaveKeyWithValue("honorLabels", true))
		secretName, _, _ := unstructured.NestedString(ep, "authorization", "credentials", "name")
		secret := find(objs, "Secret", func(o *unstructured.Unstructured) bool { return o.GetName() == secretName })
		g.Expect(secret).NotTo(BeNil(), "%s: the ServiceMonitor's token Secret %q is not rendered", name, secretName)
		g.Expect(secret.Object["type"]).To(Equal("kubernetes.io/service-account-token"))
		scraper := secret.GetAnnotations()["kubernetes.io/service-account.name"]
		g.Expect(find(objs, "ServiceAccount", func(o *unstructured.Unstructured) bool { return o.GetName() == scraper })).NotTo(BeNil())
		binding := find(objs, "ClusterRoleBinding", named("metrics-reader-rolebinding"))
		g.Expect(binding).NotTo(BeNil(), name)
		g.Expect(binding.Object["subjects"]).To(ContainElement(HaveKeyWithValue("name", scraper)))
	}

	// An existing token Secret: the chart makes no scraper of its own.
	objs := helmTemplate(t, append(monitoringArgs, "--set", "prometheus.serviceMonitor.bearerTokenSecret.name=prom-token")...)
	sm := find(objs, "ServiceMonitor", nil)
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	g.Expect(endpoints[0]).To(HaveKeyWithValue("authorization", HaveKeyWithValue("credentials",
		map[string]any{"name": "prom-token", "key": "token"})))
	g.Expect(find(objs, "ServiceAccount", named("metrics-scraper"))).To(BeNil())
}

// TestMetricsReaderBinding: metrics.readerSubjects binds the metrics-reader ClusterRole for any scraper.
func TestMetricsReaderBinding(t *testing.T) {
	g := NewWithT(t)
	g.Expect(find(helmTemplate(t), "ClusterRoleBinding", named("metrics-reader-rolebinding"))).To(BeNil())
	objs := helmTemplate(t, "--set", "metrics.readerSubjects[0].kind=ServiceAccount",
		"--set", "metrics.readerSubjects[0].name=prometheus-k8s", "--set", "metrics.readerSubjects[0].namespace=monitoring")
	b := find(objs, "ClusterRoleBinding", named("metrics-reader-rolebinding"))
	g.Expect(b).NotTo(BeNil())
	g.Expect(b.Object["roleRef"]).To(HaveKeyWithValue("name", find(objs, "ClusterRole", named("metrics-reader")).GetName()))
	g.Expect(b.Object["subjects"]).To(Equal([]any{map[string]any{
		"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"}}))
}

// promQLFunctions are PromQL's functions and aggregations; MetricsQL, which parses the expressions,
// knows many more that Prometheus would reject.
var promQLFunctions = map[string]bool{
	"abs": true, "absent": true, "absent_over_time": true, "avg": true, "avg_over_time": true, "ceil": true,
	"changes": true, "clamp": true, "clamp_max": true, "clamp_min": true, "count": true, "count_over_time": true,
	"count_values": true, "delta": true, "deriv": true, "exp": true, "floor": true, "group": true,
	"histogram_quantile": true, "idelta": true, "increase": true, "irate": true, "label_replace": true,
	"last_over_time": true, "max": true, "max_over_time": true, "min": true, "min_over_time": true,
	"predict_linear": true, "quantile": true, "quantile_over_time": true, "rate": true, "resets": true,
	"round": true, "scalar": true, "sort": true, "sort_desc": true, "stddev": true, "sum": true,
	"sum_over_time": true, "time": true, "timestamp": true, "topk": true, "bottomk": true, "vector": true,
}

// checkPromQL parses expr (MetricsQL's parser, a superset of PromQL) and then applies PromQL's stricter
// rules that matter here: only PromQL functions, an explicit range for every range function, and only
// metric names the operator or controller-runtime exports.
func checkPromQL(t *testing.T, expr string) error {
	t.Helper()
	parsed, err := metricsql.Parse(expr)
	if err != nil {
		return fmt.Errorf("%q: %w", expr, err)
	}
	known := exportedMetrics(t)
	var errs []string
	metricsql.VisitAll(parsed, func(e metricsql.Expr) {
		switch e := e.(type) {
		case *metricsql.FuncExpr:
			if !promQLFunctions[e.Name] {
				errs = append(errs, "not a PromQL function: "+e.Name)
			}
			if metricsql.IsRollupFunc(e.Name) {
				for _, a := range e.Args {
					if r, ok := a.(*metricsql.RollupExpr); !ok || r.Window == nil {
						errs = append(errs, e.Name+" needs a range vector, e.g. [5m]")
					}
				}
			}
		case *metricsql.AggrFuncExpr:
			if !promQLFunctions[e.Name] {
				errs = append(errs, "not a PromQL aggregation: "+e.Name)
			}
		case *metricsql.MetricExpr:
			for _, lfs := range e.LabelFilterss {
				for _, lf := range lfs {
					if lf.Label == "__name__" && !known[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(lf.Value, "_bucket"), "_sum"), "_count")] {
						errs = append(errs, "no such metric: "+lf.Value)
					}
				}
			}
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("%q: %s", expr, strings.Join(errs, "; "))
	}
	return nil
}

// controllerRuntimeMetrics are the controller-runtime metrics the dashboard uses.
var controllerRuntimeMetrics = []string{"controller_runtime_reconcile_total", "workqueue_depth"}

// exportedMetrics returns the metric names the operator's code defines (string literals
// "taskdownload_..." in internal/) and the controller-runtime metrics the dashboard uses.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	for _, m := range controllerRuntimeMetrics {
		known[m] = true
	}
	re := regexp.MustCompile(`"(taskdownload_[a-z0-9_]+)"`)
	root := filepath.Join(envtestutil.RepoRoot(), "internal")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		data, err := os.ReadFile(path)
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			known[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return known
}
