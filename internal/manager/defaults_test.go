package manager_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/pixxel-space/taskdownload-operator/internal/manager"
)

// repoFile reads a file of the repository from this package's directory.
func repoFile(t *testing.T, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// same reports whether a default written in a file (a Go duration, a number or a URL) is want.
func same(written string, want any) bool {
	if d, ok := want.(time.Duration); ok {
		got, err := time.ParseDuration(written)
		return err == nil && got == d
	}
	return written == fmt.Sprint(want)
}

// The manager's defaults (DefaultOptions and the constants beside it) are their one home: the chart's
// values, the kustomize Deployment's arguments and the README's flag table must say the same.
func TestDefaultsAgreeEverywhere(t *testing.T) {
	d := manager.DefaultOptions()

	var values struct {
		Operator       map[string]any `json:"operator"`
		LeaderElection map[string]any `json:"leaderElection"`
	}
	if err := yaml.Unmarshal([]byte(repoFile(t, "dist/chart/values.yaml")), &values); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]any{
		"apiURL": d.APIURL, "pollInterval": d.PollInterval, "maxPollInterval": d.MaxPollInterval,
		"requestTimeout": d.RequestTimeout, "defaultURLTTL": d.DefaultURLTTL, "apiQPS": d.APIQPS,
		"minURLLifetime": d.MinURLLifetime,
		"apiBurst":       d.APIBurst, "maxConcurrentReconciles": d.MaxConcurrentReconciles,
		"kubeAPIQPS": manager.DefaultKubeAPIQPS, "kubeAPIBurst": manager.DefaultKubeAPIBurst,
	} {
		if got := fmt.Sprint(values.Operator[key]); !same(got, want) {
			t.Errorf("dist/chart/values.yaml operator.%s is %s; the manager's default is %v", key, got, want)
		}
	}

	for key, want := range map[string]time.Duration{
		"leaseDuration": manager.DefaultLeaseDuration, "renewDeadline": manager.DefaultRenewDeadline,
		"retryPeriod": manager.DefaultRetryPeriod,
	} {
		if got := fmt.Sprint(values.LeaderElection[key]); !same(got, want) {
			t.Errorf("dist/chart/values.yaml leaderElection.%s is %s; the manager's default is %v", key, got, want)
		}
	}

	deployment := repoFile(t, "config/manager/manager.yaml")
	for flag, want := range map[string]any{
		"api-url": d.APIURL, "poll-interval": d.PollInterval, "max-poll-interval": d.MaxPollInterval,
	} {
		m := regexp.MustCompile(`- --` + flag + `=(\S+)`).FindStringSubmatch(deployment)
		if m == nil || !same(m[1], want) {
			t.Errorf("config/manager/manager.yaml: --%s is %v; the manager's default is %v", flag, m, want)
		}
	}

	readme := repoFile(t, "README.md")
	for flags, want := range map[string][]any{
		"`--api-url`":                          {d.APIURL},
		"`--poll-interval`":                    {d.PollInterval},
		"`--max-poll-interval`":                {d.MaxPollInterval},
		"`--request-timeout`":                  {d.RequestTimeout},
		"`--default-url-ttl`":                  {d.DefaultURLTTL},
		"`--min-url-lifetime`":                 {d.MinURLLifetime},
		"`--api-qps`, `--api-burst`":           {d.APIQPS, d.APIBurst},
		"`--max-concurrent-reconciles`":        {d.MaxConcurrentReconciles},
		"`--kube-api-qps`, `--kube-api-burst`": {manager.DefaultKubeAPIQPS, manager.DefaultKubeAPIBurst},
		"`--leader-elect`, `--leader-election-namespace`, `--leader-elect-lease-duration` / `-renew-deadline` / `-retry-period`": {
			manager.DefaultLeaseDuration, manager.DefaultRenewDeadline, manager.DefaultRetryPeriod},
	} {
		row := regexp.MustCompile(`(?m)^\| ` + regexp.QuoteMeta(flags) + ` \| ([^|]*) \|`).FindStringSubmatch(readme)
		if row == nil {
			t.Errorf("README.md: no flag table row for %s", flags)
			continue
		}
		quoted := regexp.MustCompile("`([^`]*)`").FindAllStringSubmatch(row[1], -1)
		written := make([]string, 0, len(quoted))
		for _, m := range quoted {
			written = append(written, m[1])
		}
		ok := len(written) == len(want)
		for i := 0; ok && i < len(want); i++ {
			ok = same(written[i], want[i])
		}
		if !ok {
			t.Errorf("README.md: %s defaults to %s; the manager's defaults are %v", flags, strings.TrimSpace(row[1]), want)
		}
	}
}
