# Signoff: `make demo` runs it, `make test` proves it. Both build .venv on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

# Django 6 needs Python >= 3.12. Take PYTHON=... when given, else the first interpreter on PATH
# that really runs and is new enough (a pyenv shim may exist but refuse to run), else the newest
# suitable pyenv installation.
PYTHON ?= $(shell \
  ok() { "$$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; }; \
  for p in python3.13 python3.12 python3; do \
    if ok "$$p"; then command -v "$$p"; exit 0; fi; \
  done; \
  if command -v pyenv >/dev/null 2>&1; then \
    for p in $$(ls -d "$$(pyenv root)"/versions/3.1[2-9]* 2>/dev/null | sort -Vr); do \
      if ok "$$p/bin/python"; then echo "$$p/bin/python"; exit 0; fi; \
    done; \
  fi)

.PHONY: help install install-dev demo test bench lint typecheck clean worker scheduler

help:
	@echo "make demo   install, migrate, seed demo data, serve http://$(HOST):$(PORT)"
	@echo "make test   install the test dependencies and run the whole suite"
	@echo "make bench  run the benchmarks (needs PostgreSQL; see bench/README.md)"
	@echo "make lint   ruff;  make typecheck   mypy"
	@echo "make worker / make scheduler   a background worker / the periodic scheduler, for"
	@echo "            SIGNOFF_WORKERS=rq or celery (see README, Running in production: workers)"

$(BIN)/python:
	@if [ -z "$(PYTHON)" ]; then echo "Signoff needs Python 3.12 or newer; set PYTHON=/path/to/python3.12" >&2; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The demo runs with DEBUG on unless the environment says otherwise (then it needs SECRET_KEY).
DEMO := DEBUG=$${DEBUG:-true} $(BIN)/python manage.py

demo: install
	$(DEMO) migrate --no-input
	$(DEMO) quickstart --base-url http://$(HOST):$(PORT)
	$(DEMO) runserver $(HOST):$(PORT)

# One worker process (start as many as the load needs) and the one scheduler, for the backend
# SIGNOFF_WORKERS names. `make demo` needs neither: it runs jobs in-process.
worker: install
	@case "$${SIGNOFF_WORKERS:-}" in \
	  rq) exec $(BIN)/python manage.py rqworker "$${SIGNOFF_QUEUE:-signoff}" --with-scheduler ;; \
	  celery) exec $(BIN)/celery -A config worker --loglevel INFO ;; \
	  *) echo "make worker: set SIGNOFF_WORKERS=rq or SIGNOFF_WORKERS=celery" >&2; exit 2 ;; \
	esac

scheduler: install
	@case "$${SIGNOFF_WORKERS:-}" in \
	  rq) exec $(BIN)/python manage.py rqcron config.task_backends.rq_cron ;; \
	  celery) exec $(BIN)/celery -A config beat --loglevel INFO --schedule /tmp/signoff-celerybeat-schedule ;; \
	  *) echo "make scheduler: set SIGNOFF_WORKERS=rq or SIGNOFF_WORKERS=celery" >&2; exit 2 ;; \
	esac

test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Benchmarks are not tests: they print figures and ratios and write bench/results/.
bench: install-dev
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache .mypy_cache
