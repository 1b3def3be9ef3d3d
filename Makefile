# Two commands for a new user: `make run` (the whole pipeline) and `make test` (the test suite).
# Both create .venv and install the pinned requirements first; `make setup` does only that.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
STAMP := $(VENV)/.installed
# The official archive by default; `make cpu DATA=path/to/aclImdb_v1.tar.gz` for a local copy.
DATA ?= https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz
SOURCE := $(if $(findstring ://,$(DATA)),$(DATA),$(abspath $(DATA)))

export TF_USE_LEGACY_KERAS := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run test cpu bench lint mlflow-ui services services-down services-env

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $(STAMP)

run: setup
	dvc repro

test: setup
	python -m pytest -q --durations=8

lint: setup
	ruff check .

# The Bi-LSTM and the TF-IDF baseline on a 2-core CPU, as a DVC experiment (settings in README);
# EXTRA adds settings, e.g. EXTRA='-S lstm.tune.workers=2'.
cpu: setup
	dvc exp run $(CPU_OVERRIDES) $(EXTRA)

CPU_OVERRIDES = \
	  -S 'models=[tfidf_logreg,lstm]' \
	  -S 'data.source=$(SOURCE)' \
	  -S lstm.model.seq_len=600 \
	  -S lstm.model.truncate=pre \
	  -S lstm.model.vocab_size=30000 \
	  -S lstm.model.dropout=0.5 \
	  -S lstm.model.optimizer.schedule=linear_warmup_decay \
	  -S lstm.model.optimizer.warmup_fraction=0.05 \
	  -S lstm.tune.epochs=2 \
	  -S lstm.tune.max_train=8000 \
	  -S 'lstm.tune.grid.optimizer=[adam,rmsprop]' \
	  -S 'lstm.tune.grid.batch_size=[64]' \
	  -S 'lstm.tune.grid.learning_rate=[0.002,0.001]' \
	  -S lstm.retrain.epochs=3 \
	  -S lstm.retrain.patience=1

# Every benchmark; each prints its figures and writes metrics/bench/<name>.json.
# DATA: the IMDB archive (default: ../shared/data/aclImdb_v1_labeled.tar.gz beside the repo).
BENCHES := minilm_convert input_pipeline encoder_speed encoder_vs_torch minilm_imdb serving startup pruning workers
bench: setup $(VENV)/.bench-installed
	for b in $(BENCHES); do DATA='$(if $(findstring ://,$(DATA)),,$(SOURCE))' python -m bench.$$b || exit 1; done

$(VENV)/.bench-installed: requirements-bench.txt
	$(VENV)/bin/pip install -q -r requirements-bench.txt
	touch $@

# Prints the link that opens the experiment on its runs, then starts `mlflow ui` on the pipeline's store.
mlflow-ui: setup
	python -m imdbclf ui --port $(MLFLOW_PORT)

# The team's PostgreSQL + mlflow server (README: Team set-up). `make services` prints two export lines;
# `eval "$$(make -s services)"` applies them. SERVICES_HOST: the address to bind to and to put in the URLs.
SERVICES_DIR ?= .services
SERVICES_HOST ?= 127.0.0.1
PG_PORT ?= 5433
MLFLOW_PORT ?= 5000
MLFLOW_WORKERS ?= 2
SERVICES := python -m imdbclf services --dir $(SERVICES_DIR)

services: setup
	@$(SERVICES) --host $(SERVICES_HOST) --pg-port $(PG_PORT) --mlflow-port $(MLFLOW_PORT) --workers $(MLFLOW_WORKERS) up

services-env: setup
	@$(SERVICES) env

services-down: setup
	@$(SERVICES) down
