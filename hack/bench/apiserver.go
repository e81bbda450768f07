package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
)

// stateResources are the resources whose writes count as the operator's Kubernetes writes.
var stateResources = map[string]bool{"taskdownloads": true, "configmaps": true, "secrets": true}

type writes struct {
	state, events, reads float64
	// all counts every request by verb, resource, subresource and code.
	all map[string]float64
}

// requestsBetween lists the requests made between two readings, most frequent first.
func requestsBetween(before, after writes) string {
	type row struct {
		key string
		n   float64
	}
	var rows []row
	for k, v := range after.all {
		if d := v - before.all[k]; d > 0 {
			rows = append(rows, row{k, d})
		}
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(b.n, a.n) })
	var sb strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&sb, "  %6.0f %s\n", r.n, r.key)
	}
	return sb.String()
}

// kubeWrites reads the API server's request counter: writes to TaskDownloads, ConfigMaps and Secrets
// (state) and to Events, separately.
func kubeWrites(ctx context.Context, cs *kubernetes.Clientset) (writes, error) {
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return writes{}, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return writes{}, err
	}
	var w writes
	f := families["apiserver_request_total"]
	if f == nil {
		return w, errors.New("apiserver_request_total not found")
	}
	w.all = map[string]float64{}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		key := fmt.Sprintf("%s %s/%s %s", labels["verb"], labels["resource"], labels["subresource"], labels["code"])
		w.all[key] += m.GetCounter().GetValue()
		switch labels["verb"] {
		case "POST", "PUT", "PATCH", "DELETE", "APPLY":
		case "GET":
			if stateResources[labels["resource"]] {
				w.reads += m.GetCounter().GetValue()
			}
			continue
		default:
			continue
		}
		switch {
		case labels["verb"] == "DELETE":
			continue // the floor's clean-up
		case stateResources[labels["resource"]]:
			w.state += m.GetCounter().GetValue()
		case labels["resource"] == "events":
			w.events += m.GetCounter().GetValue()
		}
	}
	return w, nil
}
