# One-command set-up: every target creates .venv and installs what it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 3000
DATA   ?= ../shared/data

.PHONY: install-system serve test lint typecheck install install-test install-train train-teacher train-sentiment export-sentiment eval-sentiment train-translation export-translation eval-translation bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

## Debian packages the tests run for real: Prometheus (+ promtool) and Chromium; skipped when present
install-system:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v chromium >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus chromium >/dev/null)

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
	$(BIN)/python -m models.translation.train --data-dir $(DATA)/multi30k --out runs/translation

export-translation: install-train
	$(BIN)/python -m models.translation.export --run runs/translation --data-dir $(DATA)/multi30k

eval-translation: install-train
	$(BIN)/python -m models.translation.evaluate --data-dir $(DATA)/multi30k

## bench: the benchmark behind the README's speed figures
bench: install-test
	$(BIN)/python -m loadtests.bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
