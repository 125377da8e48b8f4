# Two entry points for a fresh machine: `make demo` and `make test` (see README).
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
SAMPLE_QUESTION ?= What did the US ambassador to the UN say Russia was doing in Syria?

.PHONY: demo test check install install-dev browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The app alone: offline defaults, no model server, no compiler needed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

# Tests also need the dev tools and the local-model extra (llama-cpp-python builds from
# source once, then pip's wheel cache makes later installs quick).
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/pip install -q -e '.[dev,local]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/rag ingest examples/articles
	$(BIN)/rag ask "$(SAMPLE_QUESTION)"

browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

check: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest

test: install-dev browser check

clean:
	rm -rf $(VENV) .rag
