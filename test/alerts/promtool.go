// Package alerts runs unit tests of the operator's alerting rules, written in promtool's test format
// (https://prometheus.io/docs/prometheus/latest/configuration/unit_testing_rules/), on Prometheus's
// own rule engine: series are loaded with promqltest's lazy loader, rules are loaded and evaluated by
// package rules, exactly as `promtool test rules` does (cmd/promtool/unittest.go, which is a main
// package and cannot be imported). It is its own module so that the Prometheus server module stays
// out of the operator's go.mod.
//
// Supported: rule_files, evaluation_interval, tests[].interval, input_series, alert_rule_test and
// promql_expr_test (float samples). One difference from promtool: an expected alert without
// exp_annotations is compared on its labels only, so that a test does not repeat every description;
// with exp_annotations, they must match exactly, as in promtool. Every firing alert's annotations
// must expand without a template error.
package alerts

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
)

var promqlParser = parser.NewParser(parser.Options{})

// run evaluates one test group: every rule at every evaluation interval from 0 to the last eval_time,
// checking the firing alerts and the expressions at their eval_time. It returns what did not match.
func (tg *testGroup) run(evalInterval time.Duration, ruleFiles []string) []error {
	var load strings.Builder
	fmt.Fprintf(&load, "load %v\n", tg.Interval)
	for _, s := range tg.InputSeries {
		fmt.Fprintf(&load, "  %s %s\n", s.Series, s.Values)
	}
	suite, err := promqltest.NewLazyLoader(load.String(), promqltest.LazyLoaderOpts{
		EnableAtModifier: true, EnableNegativeOffset: true, Parser: promqlParser,
	})
	if err != nil {
		return []error{err}
	}
	defer func() { _ = suite.Close() }()
	suite.SubqueryInterval = evalInterval

	groups, errs := tg.loadGroups(suite, ruleFiles)
	if errs != nil {
		return errs
	}
	start := time.Unix(0, 0).UTC()
	var failures []error
	for ts := start; !ts.After(start.Add(tg.maxEvalTime())); ts = ts.Add(evalInterval) {
		if evalErrs := eval(suite, groups, start, ts); len(evalErrs) > 0 {
			return append(failures, evalErrs...)
		}
		// As promtool: an eval_time is checked on the evaluation at or just before it.
		inStep := func(at model.Duration) bool {
			return ts.Sub(start) <= time.Duration(at) && time.Duration(at) < ts.Add(evalInterval).Sub(start)
		}
		for _, tc := range tg.AlertRuleTests {
			if inStep(tc.EvalTime) {
				failures = append(failures, tc.check(groups)...)
			}
		}
		for _, tc := range tg.PromqlExprTest {
			if inStep(tc.EvalTime) {
				failures = append(failures, tc.check(suite, ts)...)
			}
		}
	}
	return failures
}

// loadGroups loads the rule files into a rule manager over the suite's storage, and returns their
// groups in name order, with every alert marked restored.
func (tg *testGroup) loadGroups(suite *promqltest.LazyLoader, ruleFiles []string) ([]*rules.Group, []error) {
	m := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(suite.QueryEngine(), suite.Storage()),
		AppendableV2: suite.Storage(),
		Context:      context.Background(),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		Logger:       promslog.NewNopLogger(),
		Parser:       promqlParser,
	})
	groupsByName, errs := m.LoadGroups(time.Duration(tg.Interval), labels.EmptyLabels(), "", nil, false, ruleFiles...)
	if errs != nil {
		return nil, errs
	}
	groups := make([]*rules.Group, 0, len(groupsByName))
	for _, g := range groupsByName {
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b *rules.Group) int { return strings.Compare(a.Name(), b.Name()) })
	for _, g := range groups {
		for _, r := range g.Rules() {
			if ar, ok := r.(*rules.AlertingRule); ok {
				ar.SetRestored(true) // as promtool: alerts go on without waiting for a restore
			}
		}
	}
	return groups, nil
}

// maxEvalTime is the latest eval_time of the group's tests.
func (tg *testGroup) maxEvalTime() time.Duration {
	var maxEval time.Duration
	for _, a := range tg.AlertRuleTests {
		maxEval = max(maxEval, time.Duration(a.EvalTime))
	}
	for _, p := range tg.PromqlExprTest {
		maxEval = max(maxEval, time.Duration(p.EvalTime))
	}
	return maxEval
}

// eval evaluates every group at ts, with the input series loaded up to ts, and returns the errors of
// the rules that failed.
func eval(suite *promqltest.LazyLoader, groups []*rules.Group, start, ts time.Time) []error {
	var evalErrs []error
	suite.WithSamplesTill(ts, func(err error) {
		if err != nil {
			evalErrs = append(evalErrs, err)
			return
		}
		for _, g := range groups {
			g.Eval(suite.Context(), ts)
			for _, r := range g.Rules() {
				if r.LastError() != nil {
					evalErrs = append(evalErrs, fmt.Errorf("rule %s at %s: %w", r.Name(), ts.Sub(start), r.LastError()))
				}
			}
		}
	})
	return evalErrs
}

// check compares the firing alerts named tc.Alertname with the expected ones.
func (tc alertTestCase) check(groups []*rules.Group) []error {
	var got []*rules.Alert
	for _, g := range groups {
		for _, r := range g.Rules() {
			if ar, ok := r.(*rules.AlertingRule); ok && ar.Name() == tc.Alertname {
				for _, a := range ar.ActiveAlerts() {
					if a.State == rules.StateFiring {
						got = append(got, a)
					}
				}
			}
		}
	}
	var errs []error
	for _, a := range got {
		a.Annotations.Range(func(l labels.Label) {
			if strings.Contains(l.Value, "error expanding template") {
				errs = append(errs, fmt.Errorf("%s at %v: annotation %s: %s", tc.Alertname, tc.EvalTime, l.Name, l.Value))
			}
		})
	}
	unmatched := slices.Clone(got)
	for _, exp := range tc.ExpAlerts {
		want := map[string]string{labels.AlertName: tc.Alertname}
		maps.Copy(want, exp.ExpLabels)
		i := slices.IndexFunc(unmatched, func(a *rules.Alert) bool { return labels.Equal(a.Labels, labels.FromMap(want)) })
		if i < 0 {
			errs = append(errs, fmt.Errorf("%s at %v: no firing alert with labels %v; firing: %s",
				tc.Alertname, tc.EvalTime, labels.FromMap(want), alertsString(got)))
			continue
		}
		if exp.ExpAnnotations != nil && !labels.Equal(unmatched[i].Annotations, labels.FromMap(exp.ExpAnnotations)) {
			errs = append(errs, fmt.Errorf("%s at %v: annotations %v, want %v",
				tc.Alertname, tc.EvalTime, unmatched[i].Annotations, labels.FromMap(exp.ExpAnnotations)))
		}
		unmatched = slices.Delete(unmatched, i, i+1)
	}
	if len(unmatched) > 0 {
		errs = append(errs, fmt.Errorf("%s at %v: unexpected firing alerts %s",
			tc.Alertname, tc.EvalTime, alertsString(unmatched)))
	}
	return errs
}

func alertsString(alerts []*rules.Alert) string {
	if len(alerts) == 0 {
		return "none"
	}
	out := make([]string, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, a.Labels.String())
	}
	return strings.Join(out, ", ")
}

// check evaluates tc.Expr at ts and compares the float samples with the expected ones.
func (tc promqlTestCase) check(suite *promqltest.LazyLoader, ts time.Time) []error {
	q, err := suite.QueryEngine().NewInstantQuery(suite.Context(), suite.Queryable(), nil, tc.Expr, ts)
	if err != nil {
		return []error{fmt.Errorf("expr %q: %w", tc.Expr, err)}
	}
	defer q.Close()
	res := q.Exec(suite.Context())
	if res.Err != nil {
		return []error{fmt.Errorf("expr %q at %v: %w", tc.Expr, tc.EvalTime, res.Err)}
	}
	vec, err := res.Vector()
	if err != nil {
		if s, serr := res.Scalar(); serr == nil {
			vec = promql.Vector{{T: s.T, F: s.V}}
		} else {
			return []error{fmt.Errorf("expr %q: %w", tc.Expr, err)}
		}
	}
	got := map[string]float64{}
	for _, s := range vec {
		got[s.Metric.String()] = s.F
	}
	want := map[string]float64{}
	for _, s := range tc.ExpSamples {
		lbls := labels.EmptyLabels()
		if s.Labels != "" {
			if lbls, err = promqlParser.ParseMetric(s.Labels); err != nil {
				return []error{fmt.Errorf("expr %q: labels %q: %w", tc.Expr, s.Labels, err)}
			}
		}
		want[lbls.String()] = s.Value
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return []error{fmt.Errorf("expr %q at %v: got %v, want %v", tc.Expr, tc.EvalTime, got, want)}
	}
	return nil
}
