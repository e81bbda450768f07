package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	downloadsv1alpha1 "github.com/pixxel-space/taskdownload-operator/api/v1alpha1"
	"github.com/pixxel-space/taskdownload-operator/internal/manager"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/envtestutil"
	"github.com/pixxel-space/taskdownload-operator/internal/testsupport/managerproc"
)

// cluster is a kube-apiserver + etcd started for one bench run, with the bench's own clients.
type cluster struct {
	env *envtest.Environment
	// cfg is unthrottled: the bench must not measure its own client's rate limiter.
	cfg        *rest.Config
	k8s        client.Client
	clientset  *kubernetes.Clientset
	kubeconfig string // for the manager process, as user bench-manager
}

// startCluster starts envtest with the operator's CRDs; dir receives the manager's kubeconfig.
func startCluster(dir string) (*cluster, error) {
	logf("starting kube-apiserver + etcd")
	env, cfg, err := envtestutil.Start(func(e *envtest.Environment) {
		if path := os.Getenv("BENCH_APISERVER_LOG"); path != "" {
			f, err := os.Create(path)
			if err == nil {
				e.ControlPlane.GetAPIServer().Out, e.ControlPlane.GetAPIServer().Err = f, f
			}
		}
	})
	if err != nil {
		return nil, err
	}
	c := &cluster{env: env, cfg: envtestutil.Unthrottled(cfg)}
	if c.k8s, err = client.New(c.cfg, client.Options{Scheme: manager.NewScheme()}); err == nil {
		if c.clientset, err = kubernetes.NewForConfig(c.cfg); err == nil {
			c.kubeconfig, err = envtestutil.WriteKubeconfig(env, dir, "bench-manager")
		}
	}
	if err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) stop() {
	if err := c.env.Stop(); err != nil {
		logf("stopping envtest: %v", err)
	}
}

// watchReady follows a namespace's TaskDownloads with a watch (not repeated lists, so that the bench
// takes as little as possible from the API server it measures), re-listing only when the server ends
// the watch. It calls seen once per TaskDownload, with the time it was first seen Ready, and closes the
// returned channel once n are Ready. Times come from the bench's clock when the watch event arrives:
// conditions' lastTransitionTime has only whole seconds.
func watchReady(ctx context.Context, cfg *rest.Config, ns string, n int,
	seen func(name string, at time.Time)) (<-chan struct{}, error) {
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: manager.NewScheme()})
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	ready := map[string]bool{}
	// see records td and reports whether all n are Ready.
	see := func(td *downloadsv1alpha1.TaskDownload) bool {
		if !ready[td.Name] && apimeta.IsStatusConditionTrue(td.Status.Conditions, downloadsv1alpha1.ConditionReady) {
			ready[td.Name] = true
			if seen != nil {
				seen(td.Name, time.Now())
			}
		}
		return len(ready) == n
	}
	go func() {
		for ctx.Err() == nil {
			var list downloadsv1alpha1.TaskDownloadList
			if err := wc.List(ctx, &list, client.InNamespace(ns)); err != nil {
				time.Sleep(time.Second)
				continue
			}
			for i := range list.Items {
				see(&list.Items[i])
			}
			if len(ready) == n {
				close(done)
				return
			}
			w, err := wc.Watch(ctx, &downloadsv1alpha1.TaskDownloadList{}, client.InNamespace(ns),
				&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
			if err != nil {
				continue
			}
			for ev := range w.ResultChan() {
				if td, ok := ev.Object.(*downloadsv1alpha1.TaskDownload); ok && see(td) {
					w.Stop()
					close(done)
					return
				}
			}
			w.Stop()
		}
	}()
	return done, nil
}

// waitReady waits for a watchReady channel, the manager's exit, or the timeout.
func waitReady(done <-chan struct{}, mgr *managerproc.Process, n int, timeout time.Duration) error {
	select {
	case <-done:
		return nil
	case <-mgr.Exited:
		return explain(mgr, errors.New("the manager exited"))
	case <-time.After(timeout):
		return explain(mgr, fmt.Errorf("not all %d TaskDownloads became Ready in %s", n, timeout))
	}
}
