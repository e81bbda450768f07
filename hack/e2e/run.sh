#!/usr/bin/env bash
# make e2e: builds what is missing, starts a single-node cluster on this machine (hack/cluster), runs
# the end-to-end suite (test/e2e) against it and tears the cluster down, also after a failure or Ctrl-C.
#
#   KEEP=1             leave the cluster up and print an export KUBECONFIG=... line (make e2e-down stops it)
#   CLUSTER=existing   run the suite against $KUBECONFIG instead (images loaded there beforehand: docs/e2e.md)
#   E2E_RUN=regexp     run only the scenarios matching regexp (go test -run)
#
# Everything stays on loopback: the API server, the node (127.0.0.1), the fake platform and the
# storage server the suite starts. Pods that talk to anything use hostNetwork.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

: "${KEEP:=}" "${CLUSTER:=local}" "${E2E_RUN:=.}"
: "${GO:=go}" "${KUSTOMIZE:=$root/bin/kustomize}" "${HELM:=$root/bin/helm}" "${IMAGE_BUILDER:=$root/bin/image-builder}"
: "${K8S_VERSION:=1.37.2}" "${VERSION:=$(cat VERSION)}"
out=$root/bin/e2e
arch=$($GO env GOARCH)
export E2E_STATE=${E2E_STATE:-/var/lib/taskdownload-e2e}
export E2E_LOGS=${E2E_LOGS:-$out/logs}

step() { printf '\n=== e2e: %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

# Each long step runs as a background job in its own process group (set -m), and this script waits
# for it: a signal to make or to this script (Ctrl-C, timeout, CI cancelling) then interrupts the
# wait at once, reaches the step through stop_step, and the cluster is torn down, instead of the
# tear-down waiting for a suite that never heard the signal.
set -m
step_pid=0
run_step() {
	"$@" &
	step_pid=$!
	wait "$step_pid"
}
stop_step() {
	if ((step_pid)) && kill -0 "$step_pid" 2>/dev/null; then
		kill -INT -- "-$step_pid" 2>/dev/null || true
		wait "$step_pid" 2>/dev/null || true
	fi
	step_pid=0
}

case $CLUSTER in
local | existing) ;;
*) echo "e2e: CLUSTER=$CLUSTER: want local (the default) or existing" >&2; exit 2 ;;
esac

if [[ $CLUSTER == local ]]; then
	# Root and the runtime's packages first: a missing one should not wait for half an hour of builds.
	"$GO" build -o "$out/cluster" ./hack/cluster
	"$out/cluster" preflight
fi

step "binaries: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl $K8S_VERSION"
bins=$(hack/envtest-binaries.sh "$K8S_VERSION" etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

step "the release (make release) and the images"
rm -rf "$out/release" "$out/images"
make --no-print-directory release DIST="$out/release" PLATFORMS="linux/$arch"
# A second build of the same code under a newer version: the upgrade scenario's target.
"$IMAGE_BUILDER" build --root . --out "$out/images/operator-next" --platforms "linux/$arch" \
	--version "$VERSION-e2e.next" --revision "$(git rev-parse HEAD 2>/dev/null || echo unknown)" --created 0
for tool in pause checker; do
	"$IMAGE_BUILDER" tool --root . --main "./test/e2e/images/$tool" --out "$out/images/$tool" --tag e2e
done

if [[ $CLUSTER == local ]]; then
	export KUBECONFIG=$E2E_STATE/kubeconfig
	down() {
		local rc=$?
		trap - EXIT INT TERM
		stop_step
		if [[ -n $KEEP && $rc -eq 0 ]]; then
			printf '\nThe cluster is up (make e2e-down stops it):\n  export KUBECONFIG=%s\n' "$KUBECONFIG"
			printf '  export PATH=%s:$PATH   # kubectl %s\n' "$bins" "$K8S_VERSION"
			exit 0
		fi
		step "tear-down"
		"$out/cluster" down --state "$E2E_STATE" --logs "$E2E_LOGS" || rc=1
		[[ $rc -eq 0 ]] || echo "e2e: failed; the components' logs are in $E2E_LOGS (docs/e2e.md)" >&2
		exit "$rc"
	}
	trap down EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	step "cluster up"
	run_step "$out/cluster" up --state "$E2E_STATE" --logs "$E2E_LOGS" --bin-dir "$bins" \
		--image "e2e.local/pause=$out/images/pause" \
		--image "e2e.local/checker=$out/images/checker" \
		--image "e2e.local/taskdownload-operator=$out/release/image" \
		--image "e2e.local/taskdownload-operator=$out/images/operator-next"
	# Clients in pods reach the API server here, never through the kubernetes Service's ClusterIP.
	export E2E_APISERVER_HOST=127.0.0.1 E2E_APISERVER_PORT=6443
	# The failover scenario kills a container through the runtime with this, plus the container's ID.
	export E2E_KILL_CONTAINER="ctr --address $E2E_STATE/containerd/containerd.sock --namespace k8s.io tasks kill --signal SIGKILL"
fi

step "the suite (test/e2e)"
export E2E_RELEASE_DIR=$out/release
export E2E_IMAGE=${E2E_IMAGE:-e2e.local/taskdownload-operator:$VERSION}
export E2E_IMAGE_NEXT=${E2E_IMAGE_NEXT:-e2e.local/taskdownload-operator:$VERSION-e2e.next}
export E2E_CHECKER_IMAGE=${E2E_CHECKER_IMAGE:-e2e.local/checker:e2e}
export E2E_KUBECTL=${E2E_KUBECTL:-$bins/kubectl} E2E_KUSTOMIZE=$KUSTOMIZE E2E_HELM=$HELM
run_step "$GO" test -tags e2e -count=1 -v -timeout 50m -run "$E2E_RUN" ./test/e2e/
