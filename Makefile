# aerie's make targets. CI and people use the same ones: `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# gomlx's pure-Go backend has SIMD matmul kernels behind this experiment:
# about 2.6x the training throughput on amd64 (measured in bench-train).
export GOEXPERIMENT := simd

# The store speaks GCS's JSON API; this tag drops the storage client's gRPC
# DirectPath and xDS dependencies: the edge binary shrinks from 47 to 34 MB
# and its peak RSS from 57 to 43 MiB (bench-edge).
export GOFLAGS := -tags=disable_grpc_modules

BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

STATICCHECK_VERSION := v0.8.2
ACTIONLINT_VERSION := v1.7.12

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install the Debian packages and Go modules the tests and demo need.
	@hack/deps.sh

.PHONY: test
test: deps test-edge-arm64 e2e-cluster ## Run every test tier CI runs (the README's test command).
	go test -count=1 -timeout 30m ./...

.PHONY: demo
demo: deps ## The whole mission on this machine: train 2 workers, store, promote, fly an edge agent (about 5 min).
	go run ./tools/demo/cmd/demo

.PHONY: promote
promote: $(BIN)/aerie ## aerie promote: RUN, FLEET, VERSION (or newest), CANARY (percent), STORE, LOCAL_FLEET=1 (file:// demo devices); PR text in out/promotion.md.
	@test -n "$${RUN:-}" && test -n "$${FLEET:-}" && test -n "$${VERSION:-}" || { echo "promote: set RUN, FLEET and VERSION (aerie model list RUN lists them; VERSION=newest takes the newest)" >&2; exit 2; }
	mkdir -p out
	aerie promote --run "$$RUN" --fleet "$$FLEET" --version "$$VERSION" \
		--canary "$${CANARY:-0}" --store "$${STORE:-}" $${LOCAL_FLEET:+--local-fleet} --description out/promotion.md

.PHONY: test-edge
test-edge: ## Run the edge agent's tests and the packages it shares.
	go test ./edge/... ./internal/pins/... ./internal/selftest/... ./internal/manifest/...

# GOEXPERIMENT= : the SIMD experiment is for amd64. Tests that start child
# processes skip themselves under emulation (a fork inside qemu-user can hang
# under load) and run natively in `go test ./...`.
.PHONY: test-edge-arm64
test-edge-arm64: ## Run the edge tests as linux/arm64 binaries under qemu-aarch64-static (pure code; process tests run natively).
	GOARCH=arm64 CGO_ENABLED=0 GOEXPERIMENT= go test -timeout 10m -exec qemu-aarch64-static ./edge/... ./internal/pins/... ./internal/selftest/... ./internal/manifest/...

.PHONY: edge-arm64
edge-arm64: ## Build the static linux/arm64 edge agent: bin/aerie-edge-linux-arm64.
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 GOEXPERIMENT= go build -trimpath -ldflags "-s -w" -o $(BIN)/aerie-edge-linux-arm64 ./edge/cmd/aerie-edge

.PHONY: bench-edge
bench-edge: ## Edge agent footprint with the cnn and resnet-small: peak RSS and per-frame latency of the static binary (ARCH=arm64 under qemu).
	bench/edge.sh

.PHONY: test-short
test-short: ## Run the fast unit tests only.
	go test -short ./...

.PHONY: lint
lint: $(BIN)/staticcheck lint-infra ## Run go vet, staticcheck, and lint-infra.
	go vet ./...
	staticcheck ./...

# Packages whose tests take -update.
GOLDEN_PKGS = $(sort $(dir $(shell grep -rl --include='*_test.go' '"update", false' .)))

.PHONY: golden
golden: ## Rewrite the golden files under testdata/ (review the diff!).
	go test $(GOLDEN_PKGS) -update

# Always rebuilt (go build is a no-op when nothing changed), so a wrapper
# never runs a stale aerie.
.PHONY: $(BIN)/aerie
$(BIN)/aerie:
	go build -o $@ ./tools/aerie/cmd/aerie

.PHONY: trainer
trainer: ## Build the trainer into bin/trainer.
	go build -o $(BIN)/trainer ./trainer/cmd/trainer

.PHONY: aerie
aerie: $(BIN)/aerie ## Build the aerie CLI into bin/aerie (on PATH inside make).

.PHONY: site
site: $(BIN)/aerie ## aerie site build: the web view into out/site (STORE overrides the runs' stores, STATUS_STORE shows devices).
	aerie site build --out out/site $${STORE:+--store "$$STORE"} $${STATUS_STORE:+--status-store "$$STATUS_STORE"}

$(BIN)/staticcheck:
	GOBIN=$(BIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(BIN)/actionlint:
	GOBIN=$(BIN) go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

# Infrastructure, images, Terraform and the end-to-end cluster tier.
include platform.mk

.PHONY: bench-train
bench-train: ## Training throughput vs PyTorch, 1×2 and 2×1 (DDP), cnn and resnet-small at batch 64 (BENCH_TRAIN_STEPS, BENCH_TRAIN_REPS).
	bench/train.sh $(or $(BENCH_TRAIN_STEPS),200) $(or $(BENCH_TRAIN_REPS),5)

.PHONY: bench-data
bench-data: ## Dataset figures, A B A B, 5 runs: cnn new format vs old IDX trainer, peak RSS on Fashion-MNIST vs 10x, ingest s and MB/s (RUNS, MAX_STEPS).
	bench/data.sh

.PHONY: bench-memory
bench-memory: ## Memory used / requested: one replica of each committed Fashion-MNIST run with its rendered env, peak RSS over the request (BENCH_MEMORY_STEPS, BENCH_MEMORY_REPS).
	bench/memory.sh $(or $(BENCH_MEMORY_STEPS),300) $(or $(BENCH_MEMORY_REPS),3)

.PHONY: bench-dist
bench-dist: ## Distributed figures beside their bounds: 2×1 vs 1×1 core scaling, all-reduce busbw over loopback and 1 Gbit/s veths between netns (root).
	bench/dist.sh

# The cnn on the real dataset (Debian's dataset-fashion-mnist), aiming at
# >= 91.5% test accuracy. Resumes from its last checkpoint when re-run.
REFERENCE_OUT ?= $(CURDIR)/out/train-reference
REFERENCE_FLAGS ?= --arch=cnn --epochs=30 --batch-size=64 --lr=1e-3 --schedule=cosine \
	--rotation=0 --crop-padding=2 --label-smoothing=0 --seed=1 --checkpoint-every=200

# Fashion-MNIST as ingest writes it from Debian's dataset-fashion-mnist: the
# same digest on every machine (tools/aerie/internal/ingest's TestDebianPackage checks it).
FMNIST_DIGEST := b0357547c5cfd67f4249e525e277519f0fd76294d93e0a14afb0208adf693b02
DATA_STORE ?= $(CURDIR)/out/store

.PHONY: fmnist
fmnist: ## Ingest Debian's Fashion-MNIST into the local store DATA_STORE (out/store); a no-op when it is there.
	go build -o $(BIN)/aerie ./tools/aerie/cmd/aerie
	$(BIN)/aerie dataset ingest --to file://$(DATA_STORE) --sha256 $(FMNIST_DIGEST)

.PHONY: train-reference
train-reference: fmnist ## Train the cnn on the real dataset to full accuracy (about 1 h on 2 idle cores).
	go build -o $(BIN)/trainer ./trainer/cmd/trainer
	$(BIN)/trainer train --name=reference --output=$(REFERENCE_OUT) \
		--data=file://$(DATA_STORE)/datasets/fashion-mnist/$(FMNIST_DIGEST)/ \
		--dataset-sha256=$(FMNIST_DIGEST) $(REFERENCE_FLAGS)

# Our residual network on the real dataset: apps/jobs/runs/fmnist-resnet.yaml
# (models/resnet-small.yaml, >= 93.5% test accuracy with Shirt >= 80%)
# trained in one local process, then its per-class test accuracy. About 3 h
# on 2 idle cores (~180 img/s); resumes from its last checkpoint when re-run.
RESNET_REFERENCE_OUT ?= $(CURDIR)/out/train-resnet-reference
# aerie model reads a run's models under its team's part of a store root
# (teams/<team>/); the trainer writes where --output says.
RESNET_REFERENCE_TEAM := $(shell sed -n 's/^  team: //p' apps/jobs/fmnist-resnet/run.yaml)

.PHONY: train-resnet-reference
train-resnet-reference: fmnist $(BIN)/aerie ## Train resnet-small by apps/jobs/runs/fmnist-resnet.yaml locally (hours) and print per-class test accuracy (RESNET_REFERENCE_FLAGS).
	go build -o $(BIN)/trainer ./trainer/cmd/trainer
	$(BIN)/trainer train --run=apps/jobs/runs/fmnist-resnet.yaml --output=$(RESNET_REFERENCE_OUT)/teams/$(RESNET_REFERENCE_TEAM) \
		--data=file://$(DATA_STORE)/datasets/fashion-mnist/$(FMNIST_DIGEST)/ \
		--checkpoint-every=200 $(RESNET_REFERENCE_FLAGS)
	aerie model show fmnist-resnet $$(aerie model list fmnist-resnet --store file://$(RESNET_REFERENCE_OUT) | awk 'NR == 2 {print $$1}') \
		--store file://$(RESNET_REFERENCE_OUT)

.PHONY: jobs-render
jobs-render: $(BIN)/aerie ## aerie run render: apps/jobs/runs/*.yaml into the overlays under apps/jobs (jobs-check and jobs-diff in platform.mk).
	aerie run render

.PHONY: bench
bench: bench-run-check ## Run the benchmarks that have a peer in the same run (see also bench-train, bench-dist).

.PHONY: bench-run-check
bench-run-check: ## aerie run check vs kustomize build on 1,000 generated runs: medians and ratio (BENCH_RUNS, BENCH_REPS).
	bench/run-check.sh $(or $(BENCH_RUNS),1000) $(or $(BENCH_REPS),3)
