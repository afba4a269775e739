# Platform targets (issue 7): infrastructure lint, images, Terraform, PR
# comments and the end-to-end cluster tier. Included by the Makefile; the
# workflows under .github/workflows call these targets and hold no logic.

TFLINT_VERSION := v0.64.0
KO_VERSION := v0.19.1

OUT := $(CURDIR)/out
ENV ?= dev
TF_DIR = infra/terraform/envs/$(ENV)

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

# --- terraform ----------------------------------------------------------------
.PHONY: tf-validate
tf-validate: ## terraform init (no backend) and validate ENV (needs network for the providers).
	terraform -chdir=$(TF_DIR) init -input=false -backend=false
	terraform -chdir=$(TF_DIR) validate

.PHONY: tf-plan
tf-plan: ## terraform plan ENV into out/tfplan-ENV (and a text rendering for PR comments).
	mkdir -p $(OUT)
	terraform -chdir=$(TF_DIR) init -input=false
	terraform -chdir=$(TF_DIR) plan -input=false -no-color -lock-timeout=5m -out=$(OUT)/tfplan-$(ENV)
	terraform -chdir=$(TF_DIR) show -no-color $(OUT)/tfplan-$(ENV) > $(OUT)/tfplan-$(ENV).txt

.PHONY: tf-apply
tf-apply: ## terraform apply ENV (plans again, then applies exactly that plan).
	$(MAKE) tf-plan ENV=$(ENV)
	terraform -chdir=$(TF_DIR) apply -input=false -lock-timeout=5m $(OUT)/tfplan-$(ENV)

# --- pull requests ------------------------------------------------------------
.PHONY: jobs-check
jobs-check: ## jobgen check: every overlay current, every declaration valid, every overlay builds.
	go run ./tools/jobgen/cmd/jobgen check

.PHONY: jobs-diff
jobs-diff: ## What jobgen render would change, into out/jobgen-diff.txt.
	mkdir -p $(OUT)
	go run ./tools/jobgen/cmd/jobgen diff > $(OUT)/jobgen-diff.txt

.PHONY: pr-comment
pr-comment: ## Post FILE as a PR comment titled TITLE (needs gh, GH_TOKEN and PR).
	hack/pr-comment.sh "$(PR)" "$(TITLE)" "$(FILE)"

.PHONY: promote-pr
promote-pr: ## Commit the changed fleet pins on a branch and open a PR (after make promote).
	hack/open-pr.sh "promote/$${GITHUB_RUN_ID:-local}" "edge/fleets: promote model" edge/fleets
