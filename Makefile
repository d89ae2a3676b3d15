# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8080

.PHONY: install run test lint typecheck bench clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python >= 3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m face.weights install
	touch $(STAMP)

install: $(STAMP)  ## create .venv with pinned dependencies

run: $(STAMP)  ## serve on 127.0.0.1:$(PORT) with embedded Redis and SQLite
	PORT=$(PORT) $(PY) -m bot serve --demo

test: $(STAMP)  ## the whole suite (real Redis/PostgreSQL when they answer, else embedded)
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy bot handlers dialogs nlu faq face

bench: $(STAMP)  ## benchmarks; figures go to BENCHMARKS.md
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
