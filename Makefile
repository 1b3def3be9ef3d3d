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

.PHONY: setup run test cpu bench lint mlflow-ui

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements-dev.txt
	touch $(STAMP)

run: setup
	dvc repro

test: setup
	python -m pytest -q

lint: setup
	ruff check .

# The Bi-LSTM and the TF-IDF baseline on a 2-core CPU, as a DVC experiment (settings in README).
cpu: setup
	dvc exp run \
	  -S 'models=[tfidf_logreg,lstm]' \
	  -S 'data.source=$(SOURCE)' \
	  -S lstm.model.seq_len=500 \
	  -S lstm.model.vocab_size=30000 \
	  -S lstm.model.truncate=post \
	  -S lstm.tune.epochs=2 \
	  -S lstm.tune.max_train=8000 \
	  -S 'lstm.tune.grid.optimizer=[adam,rmsprop]' \
	  -S 'lstm.tune.grid.batch_size=[64]' \
	  -S 'lstm.tune.grid.learning_rate=[0.001,0.003]' \
	  -S lstm.retrain.epochs=6 \
	  -S lstm.retrain.patience=2

mlflow-ui: setup
	mlflow ui --backend-store-uri sqlite:///mlflow.db --default-artifact-root ./mlartifacts
