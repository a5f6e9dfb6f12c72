# One-command set-up: every target creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 3000
DATA   ?= ../shared/data

.PHONY: install-system image test-container serve test lint typecheck install install-test install-train train-teacher train-sentiment export-sentiment eval-sentiment train-translation train-translation-gpu export-translation eval-translation bench bench-gpu gpu-check loadtest clean up down dashboard-snapshot soak audit screenshot explain-overhead

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

## Debian packages the tests and the benchmark run for real: Prometheus (+ promtool), Chromium, wrk; skipped when present;
## and a container engine for tests/test_container.py: none when a Docker engine answers, else podman set up to run here
install-system:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v chromium >/dev/null && command -v wrk >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus chromium wrk >/dev/null)
	@bash deploy/install-engine.sh

$(VENV)/.installed-train: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[train]'
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test
install-train: $(VENV)/.installed-train

## serve: start the service with the shipped models on $(PORT) (Ctrl-C stops it)
serve: install
	PORT=$(PORT) $(BIN)/bentoml serve service.service:LSTMService --port $(PORT)

## test: lint, types and the whole test suite (what .ci/run calls)
test: install-test install-system lint typecheck
	$(BIN)/python -m pytest -q

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-test
	$(BIN)/mypy

## training, export, evaluation of the sentiment model (see models/README.md)
train-teacher: install-train
	$(BIN)/python -m models.sentiment.teacher --data-dir $(DATA)/sst2 --out runs/teacher

train-sentiment: install-train
	$(BIN)/python -m models.sentiment.train --data-dir $(DATA)/sst2 --out runs/sentiment --teacher runs/teacher/model

export-sentiment: install-train
	$(BIN)/python -m models.sentiment.export --checkpoint runs/sentiment/best.pt --data-dir $(DATA)/sst2

eval-sentiment: install
	$(BIN)/python -m models.sentiment.evaluate --data-dir $(DATA)/sst2

## training, export, evaluation of the translator
train-translation: install-train
	$(BIN)/python -m models.translation.train --data-dir $(DATA)/multi30k --out runs/translation --input-feeding --batch-size 128 --lr 1.5e-3 --epochs 16

## train-translation-gpu: the same recipe on one lent GPU (about 10 minutes), exported beside the run; ship it only if it beats the shipped artifact on val
GPU_RUN ?= runs/translation-gpu
train-translation-gpu: install-train
	$(BIN)/python -m models.translation.train --data-dir $(DATA)/multi30k --out $(GPU_RUN) --device cuda --threads 8 --input-feeding --batch-size 128 --lr 1.5e-3 --epochs 16
	$(BIN)/python -m models.translation.export --run $(GPU_RUN) --data-dir $(DATA)/multi30k --average 1 2 3 4 --out $(GPU_RUN)/translator-lstm.pt

export-translation: install-train
	$(BIN)/python -m models.translation.export --run runs/translation --data-dir $(DATA)/multi30k --average 1 2 3 4

eval-translation: install-train
	$(BIN)/python -m models.translation.evaluate --data-dir $(DATA)/multi30k

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

## bench: the benchmark behind the README's speed figures (about 15 minutes; BENCH_ARGS=--quick: about 3) -> docs/benchmarks.md
bench: $(VENV)/.installed-bench install-system
	$(BIN)/python -m loadtests.bench $(BENCH_ARGS)

## bench-gpu: the same on a GPU machine (DEVICE=cuda for every system) -> docs/benchmarks-gpu.md
bench-gpu: $(VENV)/.installed-bench install-system
	$(BIN)/python -m loadtests.bench --device cuda $(BENCH_ARGS)

## gpu-check: on a GPU machine, the GPU tests with DEVICE=cuda and a quick bench-gpu (under 8 minutes; docs/gpu.md); without CUDA it says so and exits 0
gpu-check: $(VENV)/.installed-test $(VENV)/.installed-bench
	$(BIN)/python -m tools.gpu_check

## loadtest: Locust, headless, against a running service at HOST; CSV + HTML report in RESULTS; exits 1 when an SLO of deploy/slo.yml is missed
HOST       ?= http://localhost:$(PORT)
USERS      ?= 32
SPAWN_RATE ?= 8
DURATION   ?= 60s
USER_CLASS ?= MixedUser
SHAPE      ?= none
RESULTS    ?= loadtests/results
loadtest: install-test
	@mkdir -p $(RESULTS)
	LOAD_SHAPE=$(SHAPE) $(BIN)/locust -f loadtests/locustfile.py $(USER_CLASS) --headless --host $(HOST) -u $(USERS) -r $(SPAWN_RATE) -t $(DURATION) \
	  --csv $(RESULTS)/locust --html $(RESULTS)/locust.html --only-summary

## image: the service image, with docker or podman, with or without a registry (deploy/build-image.sh; docs/deploy.md)
image:
	bash deploy/build-image.sh

## test-container: the image and the compose stack for real, and the Bento (also part of make test)
test-container: install-test install-system
	$(BIN)/python -m pytest -q tests/test_container.py tests/test_bento.py

## up / down: the docker compose stack (service, Prometheus, Grafana: see docker-compose.yml); GPU=1 runs the CUDA image
COMPOSE ?= docker compose
up:
	PORT=$(PORT) COMPOSE_PROFILES=$(if $(GPU),gpu,cpu) $(COMPOSE) up -d --build --wait
	@echo "service http://localhost:$(PORT)  Prometheus http://localhost:9090  Grafana http://localhost:3001"

down:
	$(COMPOSE) --profile cpu --profile gpu down

## dashboard-snapshot: the dashboard's key panels from a live service and Prometheus under load -> docs/dashboard.png
dashboard-snapshot: install-test install-system
	$(BIN)/python -m tools.dashboard_snapshot

## soak: SOAK_DURATION seconds (default 1800 = 30 minutes) of ordinary load against a fresh server; fails on any error or RSS growth over 5% after warm-up
SOAK_DURATION ?= 1800
soak: install-test
	$(BIN)/python -m loadtests.soak --duration $(SOAK_DURATION) --out test-artifacts/soak.json

## audit: known vulnerabilities in the installed dependencies (pip-audit; needs PyPI's JSON API or OSV, so not part of make test)
audit: install-test
	$(BIN)/pip-audit --strict --skip-editable --local --desc on --progress-spinner off

## screenshot: the playground in headless Chromium (the browser test) -> docs/playground.png
screenshot: install-test install-system
	UPDATE_SCREENSHOT=1 $(BIN)/python -m pytest -q tests/test_ui.py -k screenshot

## explain-overhead: plain requests before the explain/alignment flags (commit 002eb9b) against this tree, side by side (about 10 minutes)
explain-overhead: install-test
	$(BIN)/python -m experiments.explain_overhead --out docs/explain_overhead.md

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
