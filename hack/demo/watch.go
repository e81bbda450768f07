package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
)

// watch prints a kubectl-like table whenever it changes, until every TaskDownload is Ready or Failed.
func watch(ctx context.Context, c client.Client, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		var list downloadsv1alpha1.TaskDownloadList
		if err := c.List(ctx, &list, client.InNamespace(namespace)); err != nil {
			return err
		}
		table, settled, failed := render(list.Items)
		if table != last {
			fmt.Printf("\n%s", table)
			last = table
		}
		if settled {
			if failed > 0 {
				return fmt.Errorf("%d TaskDownload(s) failed; see kubectl describe", failed)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not all TaskDownloads were Ready within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func render(items []downloadsv1alpha1.TaskDownload) (string, bool, int) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 3, ' ', 0)
	_, _ = fmt.Fprintln(w, "NAME\tREADY\tSTATUS\tPHASE\tEXPIRES\tREASON")
	settled, failed := true, 0
	for _, td := range items {
		ready, reason := "", ""
		if c := apimeta.FindStatusCondition(td.Status.Conditions, downloadsv1alpha1.ConditionReady); c != nil {
			ready, reason = string(c.Status), c.Reason
		}
		expires := ""
		if td.Status.ExpiresAt != nil {
			expires = "in " + duration.HumanDuration(time.Until(td.Status.ExpiresAt.Time).Round(time.Minute))
		}
		_, _ = fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n",
			td.Name, ready, td.Status.TaskStatus, td.Status.Phase, expires, reason)
		switch td.Status.Phase {
		case downloadsv1alpha1.PhaseReady:
		case downloadsv1alpha1.PhaseFailed:
			failed++
		default:
			settled = false
		}
	}
	_ = w.Flush()
	return b.String(), settled, failed
}
