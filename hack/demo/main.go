// Command demo runs the operator end to end on this machine: a local control plane (the same
// kube-apiserver and etcd the tests use), a local fake of the platform's download endpoint (or the
// real API when PIXXEL_API_KEY and task IDs are given), and the operator; it applies the sample
// TaskDownloads, shows them move from Pending to Ready, prints what was published and how a pod
// consumes it, and cleans up. Run it with `make demo` (KEEP=1 keeps everything running).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/signedurl"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/fakepixxel"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/teardown"
)

const namespace = "demo"

func main() {
	keep := flag.Bool("keep", os.Getenv("KEEP") == "1", "keep everything running until Ctrl-C")
	timeout := flag.Duration("timeout", 5*time.Minute, "how long to wait for the TaskDownloads to settle")
	flag.Parse()
	// SIGINT, SIGTERM or the end of `go run` cancel ctx; run's defers then stop what it started.
	ctx, stop := teardown.Context(context.Background())
	defer stop()
	if err := run(ctx, *keep, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, keep bool, timeout time.Duration) error {
	workDir, err := os.MkdirTemp("", "taskdownload-demo-")
	if err != nil {
		return err
	}
	logPath := filepath.Join(workDir, "manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile)))

	step("Starting a local control plane (kube-apiserver + etcd, with the TaskDownload CRD)")
	env, cfg, err := envtestutil.Start()
	if err != nil {
		return err
	}
	defer func() {
		step("Cleaning up")
		_ = env.Stop()
		_ = os.RemoveAll(workDir) // the kubeconfig and logs are of no use once the control plane is gone
	}()

	real := os.Getenv("PIXXEL_API_KEY") != ""
	o := manager.DefaultOptions()
	o.Manager = ctrl.Options{Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"}
	apiKey := "demo-api-key"
	if real {
		apiKey = os.Getenv("PIXXEL_API_KEY")
		if u := os.Getenv("PIXXEL_API_URL"); u != "" {
			o.APIURL = u
		}
		step("Using the real platform API at " + o.APIURL)
	} else {
		fake := fakepixxel.New()
		defer fake.Close()
		fake.RequireAPIKey(apiKey)
		fake.SetLatency(200 * time.Millisecond)
		fake.SetDefaultPending(3)
		o.APIURL = fake.URL
		o.PollInterval, o.MaxPollInterval = 700*time.Millisecond, 5*time.Second
		step("Started a local fake of the platform's download endpoint at " + fake.URL +
			" (each task is pending 3 times, then ready)")
	}

	mgr, err := manager.New(cfg, o)
	if err != nil {
		return err
	}
	mgrCtx, stopMgr := context.WithCancel(ctx)
	defer stopMgr()
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	step("Started the operator (logs: " + logPath + ")")

	c, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	tds, err := createObjects(ctx, c, apiKey, real)
	if err != nil {
		return err
	}

	step("Watching the TaskDownloads (kubectl get td -n demo)")
	if err := watch(ctx, c, timeout); err != nil {
		return err
	}
	if err := showPublished(ctx, c, tds); err != nil {
		return err
	}

	if keep {
		kubeconfig, err := envtestutil.WriteKubeconfig(env, workDir, "demo")
		if err != nil {
			return err
		}
		step("Everything keeps running until Ctrl-C. In another shell:")
		fmt.Printf("\n    export KUBECONFIG=%s\n    kubectl get td -n %s\n    kubectl describe td -n %s\n\n",
			kubeconfig, namespace, namespace)
		<-ctx.Done()
	}
	stopMgr()
	if err := <-mgrDone; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func step(msg string) { fmt.Printf("==> %s\n", msg) }

// createObjects creates the demo namespace, the API-key Secret and the TaskDownloads of config/samples
// (or one TaskDownload for the real task named by PIXXEL_WORKFLOW_ID, PIXXEL_JOB_ID, PIXXEL_TASK_ID).
func createObjects(ctx context.Context, c client.Client, apiKey string,
	real bool) ([]*downloadsv1alpha1.TaskDownload, error) {
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return nil, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "pixxel-api-key"},
		StringData: map[string]string{"api-key": apiKey},
	}
	if err := c.Create(ctx, secret); err != nil {
		return nil, err
	}
	var tds []*downloadsv1alpha1.TaskDownload
	if real {
		ids := []string{os.Getenv("PIXXEL_WORKFLOW_ID"), os.Getenv("PIXXEL_JOB_ID"), os.Getenv("PIXXEL_TASK_ID")}
		if slices.Contains(ids, "") {
			return nil, errors.New("with PIXXEL_API_KEY, also set PIXXEL_WORKFLOW_ID, PIXXEL_JOB_ID and PIXXEL_TASK_ID")
		}
		tds = append(tds, &downloadsv1alpha1.TaskDownload{
			ObjectMeta: metav1.ObjectMeta{Name: "my-task"},
			Spec: downloadsv1alpha1.TaskDownloadSpec{
				WorkflowID: downloadsv1alpha1.ResourceID(ids[0]), JobID: downloadsv1alpha1.ResourceID(ids[1]),
				TaskID:          downloadsv1alpha1.ResourceID(ids[2]),
				APIKeySecretRef: downloadsv1alpha1.SecretKeySelector{Name: "pixxel-api-key"},
				Target:          &downloadsv1alpha1.Target{Kind: downloadsv1alpha1.TargetSecret},
			},
		})
	} else {
		var err error
		if tds, err = sampleTaskDownloads(); err != nil {
			return nil, err
		}
	}
	for _, td := range tds {
		td.Namespace = namespace
		if err := c.Create(ctx, td); err != nil {
			return nil, fmt.Errorf("creating TaskDownload %s: %w", td.Name, err)
		}
		fmt.Printf("    created taskdownload/%s\n", td.Name)
	}
	return tds, nil
}

// sampleTaskDownloads reads the TaskDownloads from config/samples.
func sampleTaskDownloads() ([]*downloadsv1alpha1.TaskDownload, error) {
	files, err := filepath.Glob(filepath.Join(envtestutil.RepoRoot(), "config", "samples", "*.yaml"))
	if err != nil {
		return nil, err
	}
	var out []*downloadsv1alpha1.TaskDownload
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var td downloadsv1alpha1.TaskDownload
			if err := dec.Decode(&td); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if td.Kind == "TaskDownload" {
				out = append(out, &td)
			}
		}
	}
	return out, nil
}

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

// showPublished prints each published ConfigMap or Secret, with the URL's signature hidden, and how a
// pod uses it.
func showPublished(ctx context.Context, c client.Client, tds []*downloadsv1alpha1.TaskDownload) error {
	step("What the operator published")
	for _, td := range tds {
		t := td.Spec.Target
		if t == nil {
			cur := &downloadsv1alpha1.TaskDownload{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(td), cur); err != nil {
				return err
			}
			fmt.Printf("\n  taskdownload/%s status.signedURL: %s\n", td.Name, redacted(cur.Status.SignedURL))
			continue
		}
		name := t.Name
		if name == "" {
			name = td.Name
		}
		data := map[string]string{}
		key := client.ObjectKey{Namespace: namespace, Name: name}
		kind := strings.ToLower(string(t.Kind))
		if t.Kind == downloadsv1alpha1.TargetSecret {
			s := &corev1.Secret{}
			if err := c.Get(ctx, key, s); err != nil {
				return err
			}
			for k, v := range s.Data {
				data[k] = string(v)
			}
		} else {
			cm := &corev1.ConfigMap{}
			if err := c.Get(ctx, key, cm); err != nil {
				return err
			}
			data = cm.Data
		}
		fmt.Printf("\n  %s/%s (owned by taskdownload/%s):\n", kind, name, td.Name)
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := data[k]
			if k == downloadsv1alpha1.KeySignedURL {
				v = redacted(v)
			}
			fmt.Printf("    %-12s %s\n", k+":", v)
		}
	}
	fmt.Print(`
==> How a pod consumes it
  Mount the ConfigMap or Secret as a volume and let the operator's fetch helper download and unpack
  the package into a shared emptyDir (config/samples/taskdownload_job_fetch.yaml):

`)
	fmt.Print(indent(podSnippet(releaseImage(), "scene-42-download"), "    "))
	fmt.Print(`
  A mounted volume follows the operator's URL refreshes; envFrom fixes the values at pod start.
`)
	return nil
}

func redacted(u string) string {
	if u == "" {
		return ""
	}
	return signedurl.Redact(u) + "?…(signature hidden)"
}
