# org-operator

K8S_VERSION ?= v1.37.2
IMG ?= ghcr.io/orgoperator/org-operator:dev

# Everything runs from the repository root with absolute paths, so the control plane is built once.
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BIN := $(ROOT)/bin
CONTROL_PLANE_DIR := $(BIN)/k8s/$(K8S_VERSION)
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo $(CONTROL_PLANE_DIR)/kubectl)
CONTROLLER_GEN := go tool controller-gen
GENERATED := api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml config/webhook

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
generate: ## Generate DeepCopy methods from the API types.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run go fmt.
	go fmt ./...

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: vet ## Fail on unformatted files and go vet findings.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: verify
verify: manifests generate ## Fail when generated code or manifests differ from what is committed.
	@if [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		echo "Generated files are out of date; run 'make manifests generate' and commit:"; \
		git status --porcelain -- $(GENERATED); git --no-pager diff --stat -- $(GENERATED); exit 1; fi

.PHONY: control-plane
control-plane: ## Build etcd, kube-apiserver, kube-controller-manager and kubectl from Go modules (cached).
	@K8S_VERSION=$(K8S_VERSION) CONTROL_PLANE_DIR=$(CONTROL_PLANE_DIR) $(ROOT)/hack/build-control-plane.sh >/dev/null

.PHONY: test
test: verify lint control-plane ## Run every test against a real API server (builds the control plane on first use).
	KUBEBUILDER_ASSETS=$(CONTROL_PLANE_DIR) go test ./... -count=1 -timeout 40m $(TEST_ARGS)

.PHONY: test-cover
test-cover: control-plane ## Run the tests with a coverage profile in cover.out.
	KUBEBUILDER_ASSETS=$(CONTROL_PLANE_DIR) go test ./... -count=1 -timeout 40m -coverprofile cover.out -coverpkg ./... $(TEST_ARGS)
	go tool cover -func cover.out | tail -1

##@ Build

.PHONY: build
build: ## Build the manager binary into bin/manager.
	go build -o $(BIN)/manager .

.PHONY: run
run: manifests generate build control-plane ## Run the operator: on the cluster in KUBECONFIG, or on a local control plane it starts.
	KUBEBUILDER_ASSETS=$(CONTROL_PLANE_DIR) go run ./hack/run --manager $(BIN)/manager --kubectl $(KUBECTL) -- $(ARGS)

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
