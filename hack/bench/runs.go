package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"reflect"
	"slices"
)

// summary is bench-result.json: the median of each figure over the runs, then every run.
type summary struct {
	Result
	Runs   int      `json:"runs"`
	PerRun []Result `json:"per_run"`
}

// runThroughput makes c.runs throughput runs, one after the other, each on a fresh API server with its
// floors measured just before its operator run, so that the machine's drift (it is shared) touches a
// run's floor and its operator alike. It prints one line per run and the medians.
func runThroughput(c config, managerBin, work string) error {
	s := summary{Runs: c.runs}
	for i := range c.runs {
		logf("run %d of %d", i+1, c.runs)
		r, err := run(c, managerBin, work)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		s.PerRun = append(s.PerRun, r)
		fmt.Printf("RUN %d/%d ready_s=%.1f floor_same_work_s=%.1f ratio_same_work=%.2f cpu_ratio_same_work=%.2f "+
			"api_calls_per_obj=%.2f kube_writes_per_obj=%.1f\n", i+1, c.runs, r.ReadyS, r.FloorSameWorkS,
			r.RatioSameWork, r.CPURatioSameWork, r.APICallsPerObj, r.KubeWritesPerObj)
	}
	s.Result = medians(s.PerRun)
	data, _ := json.MarshalIndent(s, "", "  ")
	if err := os.WriteFile(c.out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	r := s.Result
	fmt.Printf("also: profile=%s events_per_obj=%.2f kube_reads_per_obj=%.2f floor_api_s=%.2f floor_kube_s=%.2f "+
		"floor_same_work_s=%.2f cpu_ratio_same_work=%.2f floor_cpu_s=%.1f ready_cpu_s=%.1f "+
		"(kube-apiserver %.1f of %.1f, manager %.1f)\n",
		r.Profile, r.EventsPerObj, r.KubeReadsPerObj, r.FloorAPIS, r.FloorKubeS, r.FloorSameWorkS,
		r.CPURatioSameWork, r.FloorCPUS, r.ReadyCPUS, r.FloorAPIServerCPUS, r.ReadyAPIServerCPUS, r.ReadyManagerCPUS)
	limit := ""
	if c.keyLimit > 0 {
		limit = fmt.Sprintf(" key_limit=%g api_429_pct=%.1f", c.keyLimit, r.API429Pct)
	}
	fmt.Printf("BENCH n=%d runs=%d ready_s=%.1f floor_s=%.1f ratio=%.2f ratio_same_work=%.2f api_calls_per_obj=%.2f "+
		"kube_writes_per_obj=%.1f idle_api_calls=%d idle_kube_writes=%d rss_mib=%.0f cpu_s=%.1f%s\n",
		r.N, s.Runs, r.ReadyS, r.FloorS, r.Ratio, r.RatioSameWork, r.APICallsPerObj, r.KubeWritesPerObj,
		r.IdleAPICalls, r.IdleKubeWrites, r.RSSMiB, r.CPUS, limit)
	return nil
}

// medians returns, for every number in Result, its median over runs (each ratio is the median of the
// runs' own ratios, never a ratio of medians); other fields are the first run's.
func medians(runs []Result) Result {
	out := runs[0]
	ov := reflect.ValueOf(&out).Elem()
	for f := range ov.NumField() {
		var vals []float64
		for _, r := range runs {
			v := reflect.ValueOf(r).Field(f)
			switch v.Kind() {
			case reflect.Float64:
				vals = append(vals, v.Float())
			case reflect.Int, reflect.Int64:
				vals = append(vals, float64(v.Int()))
			}
		}
		if vals == nil {
			continue
		}
		m := median(vals)
		if ov.Field(f).Kind() == reflect.Float64 {
			ov.Field(f).SetFloat(round(m, 2))
		} else {
			ov.Field(f).SetInt(int64(math.Round(m)))
		}
	}
	return out
}

func median(vals []float64) float64 {
	s := slices.Sorted(slices.Values(vals))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(v float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(v*p) / p
}
