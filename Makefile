# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8080

.PHONY: install run test lint typecheck bench clean rasa rasa-venv rasa-serve nlu-eval dialog-eval \
	i18n-extract i18n-update i18n-compile i18n-check

# The Rasa backend needs its own venv: Rasa 3.6.21 pins Python 3.10 and old libraries.
RASA_PYTHON ?= PYENV_VERSION=3.10.13 python3.10
RASA_VENV := .venv-rasa
RASA_STAMP := $(RASA_VENV)/.installed

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

test: $(STAMP) rasa i18n-check  ## the whole suite (real Redis/PostgreSQL when they answer, else embedded)
	$(PY) -m ruff check .
	$(PY) -m mypy bot handlers dialogs nlu faq face
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest

lint: $(STAMP)  ## ruff, mypy and the import-linter layers contract (pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m mypy bot handlers dialogs nlu faq face
	$(VENV)/bin/lint-imports --no-cache

bench: $(STAMP)  ## benchmarks; figures go to BENCHMARKS.md
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

$(RASA_STAMP):
	@if $(RASA_PYTHON) --version >/dev/null 2>&1; then \
	  echo "building $(RASA_VENV) (rasa==3.6.21, about 2.7 GB, a few minutes)"; \
	  test -x $(RASA_VENV)/bin/python || $(RASA_PYTHON) -m venv $(RASA_VENV); \
	  $(RASA_VENV)/bin/pip install --quiet --upgrade pip && \
	  $(RASA_VENV)/bin/pip install --quiet rasa==3.6.21 jieba==0.42.1 && touch $@; \
	else echo "python3.10 not found: skipping the Rasa backend (.venv-rasa); its tests will skip"; fi

rasa-venv: $(RASA_STAMP)  ## .venv-rasa with Rasa 3.6.21 (skipped without Python 3.10)

rasa: $(STAMP) rasa-venv  ## train the Rasa NLU model from nlu/data/nlu.yml (cached by its hash)
	@if [ -x $(RASA_VENV)/bin/rasa ]; then $(PY) -m nlu.rasa_model train; \
	else echo "no $(RASA_VENV): skipping Rasa model training"; fi

rasa-serve: rasa  ## serve the Rasa model on 127.0.0.1:5005 (NLU_BACKEND=rasa make run uses it)
	$(PY) -m nlu.rasa_model serve --host 127.0.0.1 --port 5005

nlu-eval: $(STAMP) rasa  ## both backends on the held-out test set; report in docs/nlu-eval.md
	$(PY) -m nlu.evaluate

dialog-eval: $(STAMP)  ## replay both conversation sets (nlu/data/conversations*.yml) through the pipeline; report in docs/dialog-eval.md
	$(PY) -m bench.dialog_eval

# Message catalogs (README "Languages and message catalogs"). Chinese is the source
# language; locale/<lang>/LC_MESSAGES/messages.po holds each translation.
BABEL := $(PY) -m babel.messages.frontend
LOCALES := bo

i18n-extract: $(STAMP)  ## every tr("...") text and FAQ answer into locale/messages.pot
	$(BABEL) extract --mapping-file=babel.cfg --keywords=tr --no-default-keywords \
	  --add-comments=i18n: --sort-by-file --no-wrap --project=pension-assistant \
	  --msgid-bugs-address=none --copyright-holder=none -o locale/messages.pot .
	$(PY) -m bot.i18n_check --annotate

i18n-update: $(STAMP)  ## merge the template into each language's .po (new entries empty)
	for lang in $(LOCALES); do \
	  $(BABEL) update --input-file=locale/messages.pot --output-dir=locale --locale=$$lang \
	    --no-wrap --ignore-obsolete --no-fuzzy-matching; done

i18n-compile: $(STAMP)  ## compile the .po files into .mo (the app also reads a .po directly)
	$(BABEL) compile --directory=locale --statistics

i18n-check: $(STAMP)  ## list missing / fuzzy / to-review entries; fail on a missing one
	$(PY) -m bot.i18n_check
