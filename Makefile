# org-operator

K8S_VERSION ?= v1.37.2
MODULE := github.com/orgoperator/org-operator
IMG ?= ghcr.io/orgoperator/org-operator:dev

# Everything runs from the repository root with absolute paths, so the control plane is built once.
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BIN := $(ROOT)/bin
CONTROL_PLANE_DIR := $(BIN)/k8s/$(K8S_VERSION)
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo $(CONTROL_PLANE_DIR)/kubectl)
CONTROLLER_GEN := go tool controller-gen
GENERATED := api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml config/webhook \
	charts/org-operator/files/health docs/gitops.md

# Go test flags; e.g. make test TEST_ARGS='-run TestControllers -v'.
TEST_ARGS ?=

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Generate CRDs, RBAC and webhook configuration from the controller-gen markers.
	$(CONTROLLER_GEN) rbac:roleName=org-operator-manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: ## Generate DeepCopy methods, and the chart's Argo CD health checks from internal/health/health.lua.tmpl.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."
	go run ./hack/gen-health

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: vet ## Fail on unformatted files, go vet findings and internal/ packages importing upward.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@up=$$(go list -f '{{.ImportPath}}:{{range .Imports}} {{.}}{{end}}' ./internal/... | grep -E ' $(MODULE)/(controllers|test)(/| |$$)' || true); \
		if [ -n "$$up" ]; then echo "internal/ must not import controllers/ or test/:"; echo "$$up"; exit 1; fi

.PHONY: verify
verify: manifests generate ## Fail when generated code or manifests differ from what is committed.
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "Generated files are out of date; run 'make manifests generate' and commit:"; \
		git status --porcelain -- $(GENERATED); git --no-pager diff --stat -- $(GENERATED); exit 1; fi

# The big-organization shape: one organization of 1,000 members in 20 namespaces, where members
# sharing RoleBindings matters most. Its results go next to the default shape's, as <date>-bigorg.
# One organization's admissions are decided in rounds, one after another, so converge takes
# longer than the default phase timeout for one organization allows on a slow machine.
BENCH_BIG_ORG_SHAPE := -orgs 1 -members 1000 -namespaces 19 -scenarios converge,idle,join -phase-timeout 15m
BENCH_BIG_ORG_ARGS ?=

.PHONY: bench
bench: build control-plane ## Benchmark the default shape (make bench BENCH_ARGS=-orgs=1000), then the big organization; writes bench/results.
	go run ./test/bench -manager $(BIN)/manager -bin-dir $(CONTROL_PLANE_DIR) $(BENCH_ARGS)
	$(MAKE) --no-print-directory bench-big-org

.PHONY: bench-big-org
bench-big-org: build control-plane ## Benchmark one organization of 1,000 members in 20 namespaces (make bench-big-org BENCH_BIG_ORG_ARGS=-joins=10).
	go run ./test/bench -manager $(BIN)/manager -bin-dir $(CONTROL_PLANE_DIR) $(BENCH_BIG_ORG_SHAPE) \
		-out $(ROOT)/bench/results/$$(date +%Y-%m-%d)-bigorg.json $(BENCH_BIG_ORG_ARGS)

.PHONY: bench-go
bench-go: ## Go benchmarks of the hot pure functions, with allocations.
	go test -run '^$$' -bench . -benchmem ./internal/podcache/ ./internal/membership/ ./internal/quota/ ./internal/ledger/

.PHONY: control-plane
control-plane: ## Build etcd, kube-apiserver, kube-controller-manager and kubectl from Go modules (cached).
	@K8S_VERSION=$(K8S_VERSION) CONTROL_PLANE_DIR=$(CONTROL_PLANE_DIR) $(ROOT)/hack/build-control-plane.sh >/dev/null

.PHONY: test
test: verify lint control-plane ## Run every test against a real API server (builds the control plane on first use), fuzz briefly, then the fault suite at a small size.
	KUBEBUILDER_ASSETS=$(CONTROL_PLANE_DIR) go test ./... -count=1 -timeout 40m $(TEST_ARGS)
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory test-faults FAULTS_ARGS="-orgs 20 -out $$(mktemp -d)/faults.json"

# The fault suite (docs/reliability.md): the manager killed, the control plane restarted, the
# webhook gone, failovers and a partition between two replicas. Its default size is the issue's:
# 100 organizations per converge; make test runs it at 20.
FAULTS_ARGS ?=

.PHONY: test-faults
test-faults: build control-plane ## Run the fault suite; writes bench/results/<date>-faults (make test-faults FAULTS_ARGS=-faults=kill,failover).
	go run ./test/bench -manager $(BIN)/manager -bin-dir $(CONTROL_PLANE_DIR) -scenarios faults $(FAULTS_ARGS)

# A number of inputs rather than a duration: a duration ends fuzzing on a deadline, and when that
# falls while the fuzzer is shrinking a new input, go test reports "context deadline exceeded" as a
# failure. 100,000 inputs take 10 to 15 s here.
FUZZTIME ?= 100000x
FUZZ_TARGETS := FuzzOrganizationName FuzzEmail FuzzMember

.PHONY: fuzz
fuzz: ## Fuzz the admission validation functions, FUZZTIME each (none may panic).
	for f in $(FUZZ_TARGETS); do go test ./internal/validation -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; done

.PHONY: test-cover
test-cover: control-plane ## Run the tests with a coverage profile in cover.out.
	KUBEBUILDER_ASSETS=$(CONTROL_PLANE_DIR) go test ./... -count=1 -timeout 40m -coverprofile cover.out -coverpkg ./... $(TEST_ARGS)
	go tool cover -func cover.out | tail -1

##@ Build

.PHONY: build
build: ## Build the manager binary into bin/manager.
	go build -o $(BIN)/manager .

# Managers make run starts on a local control plane; above 1 they elect a leader (make run REPLICAS=2).
REPLICAS ?= 1

.PHONY: run
run: manifests generate build control-plane ## Run the operator: on the cluster in KUBECONFIG, or on a local control plane it starts (REPLICAS=2: two).
	KUBEBUILDER_ASSETS=$(CONTROL_PLANE_DIR) go run ./hack/run --manager $(BIN)/manager --kubectl $(KUBECTL) --replicas=$(REPLICAS) -- $(ARGS)

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the cluster in KUBECONFIG.
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests ## Remove the CRDs (and every organization) from the cluster in KUBECONFIG.
	$(KUBECTL) delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator with kustomize (config/default) to the cluster in KUBECONFIG.
	cd config/manager && $(KUBECTL) kustomize . >/dev/null
	$(KUBECTL) apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove what deploy created.
	$(KUBECTL) delete --ignore-not-found -k config/default

##@ Packaging

HELM := go tool helm
CHART := charts/org-operator
# Tag of the image `make image` builds; IMG above names it for docker-build.
IMAGE_TAG ?= dev

.PHONY: chart-sync
chart-sync: manifests generate ## Copy the generated CRDs and RBAC of config/ into the Helm chart (charts/org-operator/files).
	$(ROOT)/hack/sync-chart.sh

.PHONY: chart-lint
chart-lint: chart-sync ## Lint the Helm chart with the default values and with every option on.
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f test/packaging/testdata/all-options.yaml

.PHONY: chart-package
chart-package: chart-sync ## Package the Helm chart into bin/charts.
	$(HELM) package $(CHART) -d $(BIN)/charts

.PHONY: helm-install
helm-install: chart-sync ## Install or upgrade the chart into the cluster in KUBECONFIG (HELM_ARGS for more).
	$(HELM) upgrade --install org-operator $(CHART) -n org-operator-system --create-namespace $(HELM_ARGS)

.PHONY: helm-uninstall
helm-uninstall: ## Uninstall the chart; the CRDs and the organizations stay.
	$(HELM) uninstall org-operator -n org-operator-system

.PHONY: deploy-prometheus
deploy-prometheus: manifests ## Deploy with kustomize and a ServiceMonitor (config/default-with-prometheus).
	$(KUBECTL) apply --server-side -k config/default-with-prometheus

.PHONY: image
image: ## Build the manager image with ko, offline, into bin/image (OCI layout, image.tar, image-ref).
	$(ROOT)/hack/build-image.sh $(BIN)/image $(IMAGE_TAG)

.PHONY: docker-build
docker-build: ## Build the manager image with Docker from the Dockerfile, as $(IMG).
	docker build -t $(IMG) .

.PHONY: docs
docs: ## Generate the CRD reference pages of docs/reference from config/crd/bases.
	go run ./hack/gen-docs

.PHONY: test-packaging
test-packaging: control-plane ## Run the chart, kustomize, image, metrics and GitOps health tests.
	KUBEBUILDER_ASSETS=$(CONTROL_PLANE_DIR) go test ./test/packaging/ ./internal/metrics/ ./internal/health/ -count=1 -timeout 40m $(TEST_ARGS)
