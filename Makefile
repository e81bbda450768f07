# The operator's release version. The VERSION file is its one source; internal/releasetest keeps
# dist/chart/Chart.yaml and config/manager's image in step with it.
VERSION ?= $(shell cat VERSION)
# Registry (and owner) the release's image references point to.
REGISTRY ?= ghcr.io/pixxel-space
# Image URL to use all building/pushing image targets
IMG ?= $(REGISTRY)/taskdownload-operator:$(VERSION)
# Stamped into the binaries and the image labels; -dirty when tracked files differ from the commit.
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
# Every timestamp in the image: the commit's time, so that a commit always builds the same digest.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# YEAR is the year in generated files' license header; fixed so that regenerating is reproducible.
YEAR ?= 2026

# CONTAINER_TOOL defines the container tool to be used for building images.
CONTAINER_TOOL ?= docker

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate ClusterRole and CustomResourceDefinition objects.
	"$(CONTROLLER_GEN)" rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	hack/sync-chart-crds.sh

.PHONY: generate
generate: controller-gen ## Generate code containing DeepCopy, DeepCopyInto, and DeepCopyObject method implementations.
	"$(CONTROLLER_GEN)" object:headerFile="hack/boilerplate.go.txt",year=$(YEAR) paths="./..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

.PHONY: demo
demo: envtest-assets ## Run the operator end to end locally (control plane, fake API, samples); KEEP=1 keeps it running.
	go run ./hack/demo $(if $(filter 1,$(KEEP)),--keep)

N ?= 1000
RUNS ?= 1
FETCH_RUNS ?= 3
PROFILE ?= bench
KEY_LIMIT ?= 0
BENCH_ARGS ?=
.PHONY: bench
bench: envtest-assets ## Benchmark N TaskDownloads (1000) on envtest; RUNS=3 (medians), PROFILE=defaults, KEY_LIMIT=20 (calls/s); writes bench-result.json.
	go run ./hack/bench -n $(N) -runs $(RUNS) -profile $(PROFILE) -key-limit $(KEY_LIMIT) $(BENCH_ARGS)

.PHONY: bench-fetch
bench-fetch: ## fetch against curl | tar and curl + unzip on a local server (1 GiB package, 100,000-file variant), FETCH_RUNS=3; writes bench-fetch.json.
	go build -o bin/fetch ./cmd/fetch
	go run ./hack/benchfetch -fetch bin/fetch -cache bin/bench-fetch-cache -runs $(FETCH_RUNS) $(BENCH_FETCH_ARGS)

.PHONY: bench-latency
bench-latency: envtest-assets ## How late a pending package is noticed: tasks ready 1 s, 6 s, 30 s after the first call; writes bench-latency.json.
	go run ./hack/bench -mode=latency $(BENCH_ARGS)

.PHONY: test
test: manifests generate fmt vet envtest-assets kustomize helm image ## Run all tests: unit, and integration on a real kube-apiserver + etcd.
	# -count=1: some tests run the manager binary, kustomize and helm, whose inputs Go's test cache cannot see.
	# internal/imagetest checks the layout make image just wrote. -timeout 30m: internal/deploytest starts
	# an API server and the manager for each install rendering, which takes minutes on a loaded 2-core
	# machine (go test's default is 10 minutes per package).
	KUBEBUILDER_ASSETS="$$($(ENVTEST_ASSETS))" IMAGE_LAYOUT="$(abspath $(IMAGE_LAYOUT))" \
		go test -count=1 -timeout 30m ./... -coverprofile cover.out
	go -C hack/image test -count=1 ./...
	go -C test/alerts test -count=1 ./...

# Packages whose tests need no API server, no process of the manager and no built artefact: pure tables
# and httptest fakes. The envtest suites (internal/controllertest, internal/*test, and the envtest tests
# in internal/metrics, internal/recorder, internal/schedulinggate) run only under make test.
UNIT_PKGS ?= ./cmd/... ./hack/bench ./hack/benchfetch ./internal/budget ./internal/controller ./internal/fetch ./internal/injection \
	./internal/manager ./internal/pixxel ./internal/signedurl ./internal/target ./internal/tlsroots ./internal/testsupport/envtestutil \
	./internal/testsupport/fakepixxel ./internal/testsupport/teardown

.PHONY: test-unit
test-unit: ## Run the pure tests only (no API server, no image): the inner loop, in seconds.
	go test -count=1 $(UNIT_PKGS)

.PHONY: test-alerts
test-alerts: ## Run the alerting rules' unit tests (test/alerts/rules_test.yaml, promtool's format) on Prometheus's rule engine.
	go -C test/alerts test -count=1 ./...

# The oldest Kubernetes the operator supports (the chart's kubeVersion, the README): make test-oldest runs
# the CRD's validation, the samples and the lifecycle on its kube-apiserver. Its envtest binaries are
# built from source the first time (about 15 minutes on 2 cores), then kept.
OLDEST_K8S_VERSION ?= 1.30.14
OLDEST_TESTS ?= TestSchemaRejectsBadSpecs|TestPendingThenReadyPublishesInStatus|TestReadyPublishesToConfigMap|TestKstatusFollowsTheLifecycle
.PHONY: test-oldest
test-oldest: kustomize ## Run the CRD, samples and lifecycle tests on the oldest supported kube-apiserver (OLDEST_K8S_VERSION).
	@assets="$$(SETUP_ENVTEST="$(ENVTEST)" hack/envtest-binaries.sh $(OLDEST_K8S_VERSION))"; \
	"$$assets/kube-apiserver" --version | grep -qx "Kubernetes v$(OLDEST_K8S_VERSION)" || \
		{ echo "test-oldest: $$assets/kube-apiserver is not v$(OLDEST_K8S_VERSION)" >&2; exit 1; }; \
	echo "test-oldest: kube-apiserver v$(OLDEST_K8S_VERSION) from $$assets"; \
	KUBEBUILDER_ASSETS="$$assets" go test -count=1 ./internal/controllertest -run '^($(OLDEST_TESTS))$$'; \
	KUBEBUILDER_ASSETS="$$assets" go test -count=1 ./internal/deploytest -run '^TestSamplesApply$$'

.PHONY: test-chaos
test-chaos: envtest-assets ## Kill, restart and fail over managers with 1000 TaskDownloads in flight (CHAOS_N).
	CHAOS_N=$${CHAOS_N:-1000} KUBEBUILDER_ASSETS="$$($(ENVTEST_ASSETS))" go test -count=1 -v ./internal/chaostest/

.PHONY: e2e
e2e: kustomize helm image-builder ## Start a single-node cluster here (root; builds what is missing), run test/e2e on it, tear it down; KEEP=1 leaves it up, CLUSTER=existing uses $$KUBECONFIG.
	KEEP="$(KEEP)" CLUSTER="$(CLUSTER)" E2E_RUN="$(E2E_RUN)" KUSTOMIZE="$(KUSTOMIZE)" HELM="$(HELM)" \
		IMAGE_BUILDER="$(IMAGE_BUILDER)" K8S_VERSION="$(ENVTEST_K8S_VERSION)" VERSION="$(VERSION)" hack/e2e/run.sh

.PHONY: e2e-down
e2e-down: ## Stop the cluster make e2e KEEP=1 left up, and remove what it left on the machine.
	go run ./hack/cluster down

.PHONY: envtest-assets
envtest-assets: ## Provide kube-apiserver and etcd for envtest (setup-envtest, else built from the Go module proxy).
	@$(MAKE) --no-print-directory envtest >/dev/null 2>&1 || echo "setup-envtest could not be installed; building the envtest binaries instead"
	@$(ENVTEST_ASSETS) >/dev/null

.PHONY: verify
verify: manifests generate ## Fail if generated files (CRDs, RBAC, deepcopy) or go.mod/go.sum are stale.
	go mod tidy
	go -C hack/image mod tidy
	go -C test/alerts mod tidy
	@if [ -n "$$(git status --porcelain -- api config dist go.mod go.sum hack/image/go.mod hack/image/go.sum test/alerts/go.mod test/alerts/go.sum)" ]; then \
		echo "Generated files are stale. Run 'make manifests generate' and 'go mod tidy', then commit:"; \
		git status --porcelain -- api config dist go.mod go.sum hack/image/go.mod hack/image/go.sum test/alerts/go.mod test/alerts/go.sum; \
		exit 1; \
	fi

.PHONY: lint
lint: golangci-lint ## Run golangci-lint linter
	"$(GOLANGCI_LINT)" run
	cd hack/image && "$(GOLANGCI_LINT)" run
	cd test/alerts && "$(GOLANGCI_LINT)" run

.PHONY: lint-fix
lint-fix: golangci-lint ## Run golangci-lint linter and perform fixes
	"$(GOLANGCI_LINT)" run --fix

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager (bin/manager) and the fetch helper (bin/fetch).
	go build -o bin/manager ./cmd
	go build -o bin/fetch ./cmd/fetch

.PHONY: run
run: manifests generate fmt vet ## Run the manager from your host against the current kubeconfig; pass flags with ARGS="...".
	go run ./cmd $(ARGS)

# The image is built without a container engine: hack/image compiles /manager and /fetch per platform
# and writes an OCI image layout. The Dockerfile describes the same image for those who have one.
IMAGE_LAYOUT ?= bin/image
PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_BUILDER ?= $(LOCALBIN)/image-builder

.PHONY: image
image: image-builder ## Build the image for PLATFORMS as an OCI image layout in IMAGE_LAYOUT (bin/image), no engine needed.
	"$(IMAGE_BUILDER)" build --root . --out "$(IMAGE_LAYOUT)" --platforms "$(PLATFORMS)" \
		--version "$(VERSION)" --revision "$(REVISION)" --created "$(SOURCE_DATE_EPOCH)"

# make image-push publishes the release: the layout make release wrote, which must be VERSION's.
PUSH_LAYOUT ?= $(DIST)/image
.PHONY: image-push
image-push: image-builder ## Push the release's image layout (DIST/image, from make release) to IMG; PUSH_LAYOUT=bin/image pushes make image's. Credentials from docker login.
	"$(IMAGE_BUILDER)" push --layout "$(PUSH_LAYOUT)" "$(IMG)"

.PHONY: image-builder
image-builder: $(LOCALBIN) ## Build hack/image (its own module, so go-containerregistry stays out of go.mod).
	go -C hack/image build -o "$(IMAGE_BUILDER)" .

.PHONY: docker-build
docker-build: ## Build the image for the engine's platform with CONTAINER_TOOL (docker, podman).
	$(CONTAINER_TOOL) build --build-arg VERSION="$(VERSION)" --build-arg REVISION="$(REVISION)" \
		--build-arg CREATED="$$(date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)" -t ${IMG} .

.PHONY: docker-push
docker-push: ## Push the image built by docker-build.
	$(CONTAINER_TOOL) push ${IMG}

.PHONY: build-installer
build-installer: manifests generate kustomize ## Write dist/install.yaml: every object a cluster needs, with the image IMG.
	mkdir -p dist
	hack/image/render-installer.sh "$(KUSTOMIZE)" "$(IMG)" > dist/install.yaml

.PHONY: set-version
set-version: ## Move the repository to VERSION=vX.Y.Z in one step: VERSION, the chart, config/manager and the READMEs' install commands.
	@test "$(origin VERSION)" = "command line" || { echo "set-version: say which, e.g. make set-version VERSION=v0.2.0" >&2; exit 1; }
	hack/set-version.sh "$(VERSION)"

DIST ?= dist
.PHONY: release
release: manifests generate kustomize helm image-builder cyclonedx-gomod ## Write DIST (dist/): install.yaml, the chart package, the image layout (image/), the SBOM and checksums.txt of VERSION, images in REGISTRY.
	KUSTOMIZE="$(KUSTOMIZE)" HELM="$(HELM)" IMAGE_BUILDER="$(IMAGE_BUILDER)" CYCLONEDX_GOMOD="$(CYCLONEDX_GOMOD)" \
		hack/image/release.sh \
		"$(DIST)" "$(VERSION)" "$(REGISTRY)/taskdownload-operator" "$(REVISION)" "$(SOURCE_DATE_EPOCH)" "$(PLATFORMS)"

# The chart is pushed as an OCI artifact under CHART_REPO (helm registry login for credentials).
CHART_REPO ?= oci://$(REGISTRY)/charts
.PHONY: release-push
release-push: image-builder helm ## Push the release in DIST (checked against its checksums.txt): the image to IMG, the chart to CHART_REPO; prints both by digest, to sign.
	"$(IMAGE_BUILDER)" release-push --dist "$(DIST)" --image "$(IMG)" --chart-repo "$(CHART_REPO)" --helm "$(HELM)"

##@ Deployment

ifndef ignore-not-found
  ignore-not-found = false
endif

.PHONY: install
install: manifests kustomize ## Install CRDs into the K8s cluster specified in ~/.kube/config.
	"$(KUSTOMIZE)" build config/crd | "$(KUBECTL)" apply -f -

.PHONY: uninstall
uninstall: manifests kustomize ## Uninstall CRDs from the K8s cluster specified in ~/.kube/config.
	"$(KUSTOMIZE)" build config/crd | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

.PHONY: deploy
deploy: manifests kustomize ## Deploy controller to the K8s cluster specified in ~/.kube/config.
	hack/image/render-installer.sh "$(KUSTOMIZE)" "$(IMG)" | "$(KUBECTL)" apply -f -

.PHONY: undeploy
undeploy: kustomize ## Undeploy controller from the K8s cluster specified in ~/.kube/config.
	"$(KUSTOMIZE)" build config/default | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

## Location to install dependencies to
LOCALBIN ?= $(shell pwd)/bin
$(LOCALBIN):
	mkdir -p "$(LOCALBIN)"

## Tool Binaries
KUBECTL ?= kubectl
KUSTOMIZE ?= $(LOCALBIN)/kustomize
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
ENVTEST ?= $(LOCALBIN)/setup-envtest
GOLANGCI_LINT = $(LOCALBIN)/golangci-lint
HELM ?= $(LOCALBIN)/helm
CYCLONEDX_GOMOD ?= $(LOCALBIN)/cyclonedx-gomod

## Tool Versions
KUSTOMIZE_VERSION ?= v5.8.1
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION ?= v3.22.0
CYCLONEDX_GOMOD_VERSION ?= v1.10.0
# setup-envtest is tagged on its own; v0.25.1 is its newest tag, matching controller-runtime v0.25.
ENVTEST_VERSION ?= v0.25.1
# Kubernetes version of the envtest control plane.
ENVTEST_K8S_VERSION ?= 1.37.2
# Prints the envtest binaries' directory, providing them first when needed. They are kept in
# setup-envtest's store outside the clone, so later runs reuse them.
ENVTEST_ASSETS = SETUP_ENVTEST="$(ENVTEST)" hack/envtest-binaries.sh $(ENVTEST_K8S_VERSION)

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Download kustomize locally if necessary.
$(KUSTOMIZE): $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Download controller-gen locally if necessary.
$(CONTROLLER_GEN): $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: envtest
envtest: $(ENVTEST) ## Download setup-envtest locally if necessary.
$(ENVTEST): $(LOCALBIN)
	$(call go-install-tool,$(ENVTEST),sigs.k8s.io/controller-runtime/tools/setup-envtest,$(ENVTEST_VERSION))

# bin/helm is built with the -ldflags of Helm's own release builds: its version, and the Kubernetes
# version helm template and helm lint assume without a cluster, from the client-go Helm is built with
# (v0.37 -> 1.37). Without them helm assumes Kubernetes 1.20, which the chart's kubeVersion refuses.
HELM_BUILD = $(HELM)-$(HELM_VERSION)-release
.PHONY: helm
helm: $(LOCALBIN) ## Build helm into bin/ if necessary, as Helm's release builds are.
	@[ -f "$(HELM_BUILD)" ] && [ "$$(readlink -- "$(HELM)" 2>/dev/null)" = "$(HELM_BUILD)" ] || { \
	set -e; \
	echo "Building helm $(HELM_VERSION)"; \
	gomod=$$(go mod download -json helm.sh/helm/v3@$(HELM_VERSION) | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$$/\1/p'); \
	k8s=$$(sed -n 's|^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*|\1|p' "$$gomod"); \
	[ -n "$$k8s" ] || { echo "helm: no k8s.io/client-go in $$gomod" >&2; exit 1; }; \
	pkg=helm.sh/helm/v3; \
	tmp=$$(mktemp -d); \
	GOBIN="$$tmp" CGO_ENABLED=0 go install -trimpath -ldflags "-w -s \
		-X $$pkg/internal/version.version=$(HELM_VERSION) -X $$pkg/internal/version.gitTreeState=clean \
		-X $$pkg/pkg/lint/rules.k8sVersionMajor=1 -X $$pkg/pkg/lint/rules.k8sVersionMinor=$$k8s \
		-X $$pkg/pkg/chartutil.k8sVersionMajor=1 -X $$pkg/pkg/chartutil.k8sVersionMinor=$$k8s" \
		$$pkg/cmd/helm@$(HELM_VERSION); \
	mv "$$tmp/helm" "$(HELM_BUILD)"; \
	rmdir "$$tmp"; \
	}; \
	ln -sf "$$(realpath "$(HELM_BUILD)")" "$(HELM)"

.PHONY: cyclonedx-gomod
cyclonedx-gomod: $(CYCLONEDX_GOMOD) ## Download cyclonedx-gomod (the release's SBOM) locally if necessary.
$(CYCLONEDX_GOMOD): $(LOCALBIN)
	$(call go-install-tool,$(CYCLONEDX_GOMOD),github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod,$(CYCLONEDX_GOMOD_VERSION))

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Download golangci-lint locally if necessary.
$(GOLANGCI_LINT): $(LOCALBIN)
	$(call go-install-tool,$(GOLANGCI_LINT),github.com/golangci/golangci-lint/v2/cmd/golangci-lint,$(GOLANGCI_LINT_VERSION))

# go-install-tool will 'go install' any package with custom target and name of binary, if it doesn't exist
# $1 - target path with name of binary
# $2 - package url which can be installed
# $3 - specific version of package
define go-install-tool
@[ -f "$(1)-$(3)" ] && [ "$$(readlink -- "$(1)" 2>/dev/null)" = "$(1)-$(3)" ] || { \
set -e; \
package=$(2)@$(3) ;\
echo "Downloading $${package}" ;\
rm -f "$(1)" ;\
GOBIN="$(LOCALBIN)" go install $${package} ;\
mv "$(LOCALBIN)/$$(basename "$(1)")" "$(1)-$(3)" ;\
} ;\
ln -sf "$$(realpath "$(1)-$(3)")" "$(1)"
endef

##@ Fuzzing

FUZZTIME ?= 30s
FUZZ_TARGETS = ./internal/pixxel:FuzzDecodeDownload ./internal/pixxel:FuzzDecodeError ./internal/pixxel:FuzzParseRetryAfter ./internal/signedurl:FuzzParse
# Targets that write every input to disk (tens of runs per second, not thousands) get their own budget.
FUZZ_DISK_TARGETS = ./internal/fetch:FuzzExtractTar
FUZZ_DISK_TIME ?= $(FUZZTIME)

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME, a duration or an execution count like 200000x (seed corpora are the f.Add calls).
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh $(FUZZ_TARGETS)
	FUZZTIME=$(FUZZ_DISK_TIME) hack/fuzz.sh $(FUZZ_DISK_TARGETS)
