# Platform targets (issue 7): infrastructure lint, images, Terraform, PR
# comments and the end-to-end cluster tier. Included by the Makefile; the
# workflows under .github/workflows call these targets and hold no logic.

TFLINT_VERSION := v0.64.0
KO_VERSION := v0.19.1

OUT := $(CURDIR)/out
ENV ?= dev
# One root module, infra/terraform/platform; envs/<env>/ holds each
# environment's values and backend, and each gets its own .terraform.
TF_DIR := infra/terraform/platform
TF_ENV = $(CURDIR)/infra/terraform/envs/$(ENV)
TF = TF_DATA_DIR=$(OUT)/terraform/$(ENV) terraform -chdir=$(TF_DIR)

.PHONY: lint-infra
lint-infra: $(BIN)/tflint $(BIN)/actionlint ## Lint Terraform (fmt, tflint core rules) and the GitHub workflows (actionlint).
	terraform fmt -recursive -check infra/terraform
	tflint --chdir=infra/terraform --recursive --config=$(CURDIR)/infra/terraform/.tflint.hcl
	actionlint

$(BIN)/tflint:
	GOBIN=$(BIN) go install github.com/terraform-linters/tflint@$(TFLINT_VERSION)

$(BIN)/ko:
	GOBIN=$(BIN) go install github.com/google/ko@$(KO_VERSION)

# --- images -----------------------------------------------------------------
# ko builds from source and pushes to $KO_DOCKER_REPO (Artifact Registry; the
# credentials come from google-github-actions/auth in CI); the image
# references, pinned by digest, land in out/images/<name>.ref.
TRAINER_PKG := ./trainer/cmd/trainer
EDGE_PKG ?= ./$(firstword $(wildcard edge/cmd/*))
# Artifact Registry tags are immutable (infra/terraform/modules/
# artifact-registry): tag with the commit, never latest.
KO_FLAGS = --base-import-paths --sbom=spdx --tags=$(shell git rev-parse HEAD) \
	--image-label=org.opencontainers.image.revision=$(shell git rev-parse HEAD)

.PHONY: images
images: $(BIN)/ko ## Build and push the trainer (linux/amd64) and edge agent (linux/arm64) images; digests in out/images/.
	@test -n "$${KO_DOCKER_REPO:-}" || { echo "images: set KO_DOCKER_REPO (terraform output registry)" >&2; exit 2; }
	mkdir -p $(OUT)/images
	ko build $(KO_FLAGS) --platform=linux/amd64 $(TRAINER_PKG) > $(OUT)/images/trainer.ref
	ko build $(KO_FLAGS) --platform=linux/arm64 $(EDGE_PKG) > $(OUT)/images/edge.ref
	cat $(OUT)/images/*.ref

.PHONY: sign-images
sign-images: ## Sign the images in out/images/*.ref with cosign (keyless, GitHub OIDC).
	for ref in $(OUT)/images/*.ref; do cosign sign --yes "$$(cat "$$ref")"; done

# The release record: one home for the newest released digests. The refs
# come from $TRAINER_REF and $EDGE_REF (the workflow's build job) or else
# out/images/*.ref; the file's header comment is kept.
IMAGES_FILE := apps/jobs/images.yaml

.PHONY: images-record
images-record: ## Write the released image references (TRAINER_REF, EDGE_REF, or out/images/*.ref) into apps/jobs/images.yaml.
	@trainer="$${TRAINER_REF:-$$(cat $(OUT)/images/trainer.ref 2>/dev/null || true)}"; \
	edge="$${EDGE_REF:-$$(cat $(OUT)/images/edge.ref 2>/dev/null || true)}"; \
	if [ -z "$$trainer" ] || [ -z "$$edge" ]; then echo "images-record: no trainer or edge reference: set TRAINER_REF and EDGE_REF, or run make images" >&2; exit 2; fi; \
	{ sed -n '/^#/p' $(IMAGES_FILE); printf 'apiVersion: aerie.dev/v1alpha1\nkind: ImageRelease\ntrainer: %s\nedge: %s\n' "$$trainer" "$$edge"; } > $(IMAGES_FILE).tmp; \
	mv $(IMAGES_FILE).tmp $(IMAGES_FILE)

.PHONY: images-pr
images-pr: ## Commit apps/jobs/images.yaml on a branch and open a PR (after make images-record).
	hack/open-pr.sh "images/$${GITHUB_RUN_ID:-local}" "apps/jobs/images.yaml: record the released images" \
		"Opened by the images workflow (run $${GITHUB_RUN_ID:-local}) after it built and signed these images. Merged, new runs render with this trainer; rendered runs keep theirs." \
		$(IMAGES_FILE)

# --- terraform ----------------------------------------------------------------
.PHONY: tf-validate
tf-validate: ## terraform init (no backend) and validate the platform for ENV (needs network for the providers).
	$(TF) init -input=false -backend=false
	$(TF) validate

.PHONY: tf-plan
tf-plan: ## terraform plan ENV into out/tfplan-ENV (and a text rendering for PR comments).
	mkdir -p $(OUT)
	$(TF) init -input=false -reconfigure -backend-config=$(TF_ENV)/backend.hcl
	$(TF) plan -input=false -no-color -lock-timeout=5m -var-file=$(TF_ENV)/terraform.tfvars -out=$(OUT)/tfplan-$(ENV)
	$(TF) show -no-color $(OUT)/tfplan-$(ENV) > $(OUT)/tfplan-$(ENV).txt

.PHONY: tf-apply
tf-apply: ## terraform apply ENV (plans again, then applies exactly that plan).
	$(MAKE) tf-plan ENV=$(ENV)
	$(TF) apply -input=false -lock-timeout=5m $(OUT)/tfplan-$(ENV)

# --- pull requests ------------------------------------------------------------
.PHONY: jobs-check
jobs-check: $(BIN)/aerie ## aerie run check: every overlay current, every declaration valid, every overlay builds.
	aerie run check

.PHONY: jobs-diff
jobs-diff: $(BIN)/aerie ## What aerie run render would change, into out/run-diff.txt.
	mkdir -p $(OUT)
	aerie run diff > $(OUT)/run-diff.txt

.PHONY: pr-comment
pr-comment: ## Post FILE as a PR comment titled TITLE (needs gh, GH_TOKEN and PR).
	hack/pr-comment.sh "$(PR)" "$(TITLE)" "$(FILE)"

.PHONY: promote-pr
promote-pr: ## Commit the changed fleet pins on a branch and open a PR (after make promote).
	hack/open-pr.sh "promote/$${GITHUB_RUN_ID:-local}" "fleets: promote model" \
		"Opened by the promote workflow (run $${GITHUB_RUN_ID:-local}). Review the gate report in the run's log before merging." \
		fleets

# --- end-to-end cluster tier --------------------------------------------------
# Real binaries built from their Go modules (recipes: tools/e2e/recipes/*/
# go.mod) into a cache keyed by version, so a version bump rebuilds and
# nothing else does. Cold, on 2 idle cores: kube-apiserver about 11 min,
# source-controller 6.5, kustomize-controller 8, training operator 2.5, Kueue
# about 40 on a loaded machine; etcd
# is Debian's etcd-server (.ci/apt-packages.txt). Builds run one at a time at
# the lowest priority.
# AERIE_E2E_CACHE moves the cache out of the checkout (.ci/run does, so
# that CI's fresh clones share it).
E2E_CACHE := $(or $(AERIE_E2E_CACHE),$(CURDIR)/.cache/bin)
RECIPES := tools/e2e/recipes
KUBE_VERSION := v1.37.2
FLUX_SOURCE_VERSION := v1.9.6
FLUX_KUSTOMIZE_VERSION := v1.9.6
TRAINING_OPERATOR_VERSION := v1.8.1
KUEUE_VERSION := v0.19.2

KUBE_APISERVER := $(E2E_CACHE)/kube-apiserver-$(KUBE_VERSION)/kube-apiserver
SOURCE_CONTROLLER := $(E2E_CACHE)/source-controller-$(FLUX_SOURCE_VERSION)/source-controller
KUSTOMIZE_CONTROLLER := $(E2E_CACHE)/kustomize-controller-$(FLUX_KUSTOMIZE_VERSION)/kustomize-controller
TRAINING_OPERATOR := $(E2E_CACHE)/training-operator-$(TRAINING_OPERATOR_VERSION)/training-operator
KUEUE := $(E2E_CACHE)/kueue-$(KUEUE_VERSION)/kueue
ETCD ?= /usr/bin/etcd

# GOEXPERIMENT= : the binaries are not ours; build them as upstream does.
E2E_BUILD = mkdir -p $(dir $@) && cd $(RECIPES)/$(1) && GOEXPERIMENT= nice -n 19 go build -trimpath -ldflags "-s -w $(3)" -o $@.tmp $(2) && mv $@.tmp $@

$(KUBE_APISERVER):
	$(call E2E_BUILD,kube-apiserver,k8s.io/kubernetes/cmd/kube-apiserver,-X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37)

$(SOURCE_CONTROLLER):
	$(call E2E_BUILD,source-controller,github.com/fluxcd/source-controller)

$(KUSTOMIZE_CONTROLLER):
	$(call E2E_BUILD,kustomize-controller,github.com/fluxcd/kustomize-controller)

$(TRAINING_OPERATOR):
	$(call E2E_BUILD,training-operator,github.com/kubeflow/training-operator/cmd/training-operator.v1)

# Kueue's controller manager: about 40 min cold on a loaded machine.
$(KUEUE):
	$(call E2E_BUILD,kueue,sigs.k8s.io/kueue/cmd/kueue)

.PHONY: e2e-kueue
e2e-kueue: $(KUEUE) ## Build Kueue's controller manager (tools/e2e/recipes/kueue) into the e2e cache.

.PHONY: e2e-bins
e2e-bins: $(TRAINING_OPERATOR) $(SOURCE_CONTROLLER) $(KUSTOMIZE_CONTROLLER) $(KUBE_APISERVER) $(KUEUE) ## Build the e2e tier's binaries into .cache/bin/<name>-<version>/ (once per version).
	@test -x $(ETCD) || { echo "e2e-bins: no etcd at $(ETCD): make deps installs Debian's etcd-server" >&2; exit 1; }

.PHONY: e2e-cluster
e2e-cluster: deps e2e-bins ## End-to-end: Flux syncs clusters/dev into a real kube-apiserver; Kueue admits the jobs, the training operator runs them.
	E2E_ETCD=$(ETCD) E2E_KUBE_APISERVER=$(KUBE_APISERVER) \
	E2E_SOURCE_CONTROLLER=$(SOURCE_CONTROLLER) E2E_KUSTOMIZE_CONTROLLER=$(KUSTOMIZE_CONTROLLER) \
	E2E_TRAINING_OPERATOR=$(TRAINING_OPERATOR) E2E_KUEUE=$(KUEUE) \
	go test -tags e2e -count=1 -timeout 20m -v ./tools/e2e/... ./tools/aerie/internal/status/
